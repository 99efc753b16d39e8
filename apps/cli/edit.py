"""``sublens edit search|apply|learn``: rank-1 OV-component weight edits (α grid, apply, learned scales)."""

from __future__ import annotations

import shlex
import time

import typer
from rich.console import Console

from apps.cli import checks, task_files
from apps.cli.tables import print_frame
from probes.errors import InputError

app = typer.Typer(help="Rank-1 OV-component weight edits (search, apply, learn).", no_args_is_help=True)
console = Console()


def _ns(n_min: int, n_max: int, prefix: str = "") -> tuple[int, ...]:
    return checks.list_lengths(n_min, n_max, f"--{prefix}n-min", f"--{prefix}n-max")


def _heads(heads: str, flag: str = "--heads") -> tuple[tuple[int, int], ...]:
    out = []
    for h in (x.strip() for x in heads.split(",") if x.strip()):
        try:
            layer, hd = (int(x) for x in h.split("."))
        except ValueError:
            raise InputError(f"{flag} items must look like LAYER.HEAD (e.g. 21.5), got {h!r}.") from None
        if layer < 0 or hd < 0:
            raise InputError(f"{flag} item {h!r}: layer and head must be >= 0.")
        out.append((layer, hd))
    return tuple(out)


_SEARCH_FLAGS = {"dev_n": "--dev-n-min/--dev-n-max", "top_k": "--top-k", "alphas": "--alphas"}


def _load(model: str):
    from probes.loading import load_model

    with console.status(f"loading {model} …"):
        return load_model(model, backend="hf", progress=False)


@app.command("search")
def search(
    model: str = typer.Argument(..., help="packaged model name or local path"),
    top_k: int = typer.Option(24, help="distinct sender components taken from the channel scan"),
    alphas: str = typer.Option("0,0.5,2,3", help="comma-separated rescaling factors"),
    modes: str = typer.Option("Q", help="composition modes used to rank senders"),
    min_receiver_layer: int = typer.Option(None, help="receivers at/after this layer (default 2/3 depth)"),
    heads: str = typer.Option("", help="also try these heads' top components: L.H,L.H"),
    head_components: int = typer.Option(4, help="components per head in --heads"),
    dev_n_min: int = typer.Option(4, help="smallest dev list length"),
    dev_n_max: int = typer.Option(10, help="largest dev list length"),
    dev_per_n: int = typer.Option(10, help="dev prompts per list length"),
    n_weight_power: float = typer.Option(0.0, help="weight dev N by N**power"),
    n_combine: int = typer.Option(3, help="best single edits combined greedily"),
    test_per_n: int = typer.Option(
        30, help="test prompts per list length (N = 2..--test-n-max) for the report"
    ),
    test_n_max: int = typer.Option(10, help="largest list length of the test report"),
    ioi_prompts: int = typer.Option(100, help="IOI prompts for the logit-difference side effect"),
    seed: int = typer.Option(0, help="prompt and null seed"),
    resume: str = typer.Option(None, help="resume this run directory (its saved config is used)"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
    items: str = task_files.ITEMS_OPTION,
    templates: str = task_files.TEMPLATES_OPTION,
    ray: str = checks.RAY_OPTION,
    workers: int = checks.WORKERS_OPTION,
) -> None:
    """Search (candidate, α) rescalings on the dev split, combine the best, report on the test split."""
    from analysis.edit_search import EditSearchConfig, check_resume, run_edit_search
    from probes.runs import check_writable, open_run

    ray_cfg = checks.ray_config(ray, workers)

    if resume:
        from analysis.edit_search import EditSearchConfig

        run_dir, config = checks.resume_config(resume, EditSearchConfig, "edit search")
        check_writable(run_dir, "--resume")
        handle = _load(model)
        check_resume(run_dir, handle.name, config)
        where = {"run_dir": run_dir, "flag": "--resume"}
    else:
        for value, flag in (
            (top_k, "--top-k"),
            (head_components, "--head-components"),
            (n_combine, "--n-combine"),
        ):
            checks.at_least(value, 0, flag)
        for value, flag in ((dev_per_n, "--dev-per-n"), (test_per_n, "--test-per-n")):
            checks.at_least(value, 1, flag)
        checks.at_least(ioi_prompts, 0, "--ioi-prompts", "0 skips IOI")
        checks.at_least(min_receiver_layer, 0, "--min-receiver-layer")
        checks.at_least(seed, 0, "--seed")
        alpha_list = checks.floats(alphas, "--alphas")
        if 1.0 in alpha_list:
            raise InputError(
                f"--alphas {alphas}: 1 is the unedited model (always scored as the baseline); drop it."
            )
        dev_n = _ns(dev_n_min, dev_n_max, "dev-")
        checks.at_least(test_n_max, 2, "--test-n-max")
        test_n = tuple(range(2, test_n_max + 1))
        lengths = {"dev": (dev_n, "--dev-n-max"), "test": (test_n, "--test-n-max")}
        with checks.as_flags(_SEARCH_FLAGS):
            config = EditSearchConfig(
                top_k=top_k,
                alphas=alpha_list,
                modes=checks.modes(modes),
                min_receiver_layer=min_receiver_layer,
                heads=_heads(heads),
                head_components=head_components,
                dev_n=dev_n,
                dev_per_n=dev_per_n,
                n_weight_power=n_weight_power,
                n_combine=n_combine,
                test_n=test_n,
                test_per_n=test_per_n,
                ioi_prompts=ioi_prompts,
                seed=seed,
                items=task_files.read_items(items, lengths),
                templates=task_files.read_templates(templates),
            )
        handle = None
        where = {"root": out, "flag": "--out" if out else None}
    with open_run("edit search", {"model": model, **config.to_json()}, seed=config.seed, **where) as run:
        run.record(config=config)
        run.resume = shlex.join(["sublens", "edit", "search", model, "--resume", str(run.dir)])
        console.print(f"run directory: {run.dir}")
        handle = handle or _load(model)
        run.record(model=handle.name, pack_sha256=handle.pack_sha256)
        task_files.check_tokens(config.items, items or "(saved config)", handle.tokenizer)
        _check_for_model(handle, config)
        res = run_edit_search(handle, config, run.dir, progress=True, ray=ray_cfg)
    _print_search(res, handle.name)
    console.print(f"results: {run.dir}")


def _check_for_model(handle, config) -> None:
    """Checks that need the model's size, before any compute."""
    n_layers = handle.info.n_layers
    if config.min_receiver_layer is not None and config.min_receiver_layer >= n_layers:
        raise InputError(
            f"--min-receiver-layer {config.min_receiver_layer} is out of range: {handle.name} has layers "
            f"0..{n_layers - 1}."
        )
    for layer, head in config.heads:
        if layer >= n_layers or head >= handle.info.n_heads:
            raise InputError(
                f"--heads {layer}.{head} is out of range: {handle.name} has layers 0..{n_layers - 1} and "
                f"heads 0..{handle.info.n_heads - 1}."
            )
    if not config.items:
        checks.check_list_vocab(handle.tokenizer, config.dev_n, "dev", "--dev-n-max")
        checks.check_list_vocab(handle.tokenizer, config.test_n, "test", "--test-n-max")


def _print_search(res, name: str) -> None:
    console.print(
        f"dev score: baseline {res.baseline['score']:.3f} → best {res.best['score']:.3f} ({res.best['key']})"
    )
    if res.test_by_n is None:
        console.print("[yellow]no edit beat the baseline on the dev split; nothing saved[/]")
        return
    print_frame(res.test_by_n, f"Laundry List test accuracy by N ({name})", console)
    rep = res.report
    console.print(
        f"largest gain: {rep['max_gain_pp']:+.1f} pp at N={rep['max_gain_n']}; IOI logit diff "
        f"{rep['ioi_logit_diff'][0]} → {rep['ioi_logit_diff'][1]}; LM loss {rep['lm_loss'][0]:.4f} → "
        f"{rep['lm_loss'][1]:.4f} ({rep['lm_loss_rel_change_pct']:+.2f}%)"
    )
    console.print(f"edit saved: {res.spec_path}")


@app.command("apply")
def apply(
    model: str = typer.Argument(..., help="packaged model name or local path"),
    edit: str = typer.Argument(..., help="an edit spec .json written by 'edit search' or EditSpec.save"),
    n_min: int = typer.Option(2, help="smallest list length"),
    n_max: int = typer.Option(10, help="largest list length"),
    per_n: int = typer.Option(30, help="test prompts per list length"),
    seed: int = typer.Option(0, help="prompt seed"),
    items: str = task_files.ITEMS_OPTION,
    templates: str = task_files.TEMPLATES_OPTION,
) -> None:
    """Apply a saved edit and print held-out Laundry List accuracy by N (test items, held-out template
    family or --templates) and the LM-loss change."""
    from analysis.tasks.evaluate import evaluate_prompts, laundry_gain
    from analysis.tasks.heldout import heldout_texts
    from analysis.tasks.laundry import heldout_laundry_prompts
    from probes.edits import EditSpec
    from probes.lm_loss import lm_loss

    started = time.time()
    ns = list(_ns(n_min, n_max))
    checks.at_least(per_n, 1, "--per-n")
    checks.at_least(seed, 0, "--seed")
    checks.input_file(edit, "EDIT", "edit spec .json")
    item_list = task_files.read_items(items, {"test": (ns, "--n-max")})
    template_list = task_files.read_templates(templates)
    spec = EditSpec.load(edit)
    handle = _load(model)
    spec.check(handle)  # wrong model → InputError before any work
    task_files.check_tokens(item_list, items, handle.tokenizer)
    if not item_list:
        checks.check_list_vocab(handle.tokenizer, ns, "test", "--n-max")
    prompts = heldout_laundry_prompts(
        handle.tokenizer, ns, per_n, seed, list(item_list) or None, list(template_list) or None
    )
    texts = heldout_texts()

    def measure():
        return evaluate_prompts(handle, prompts, progress=False).by_n, lm_loss(handle, texts)

    before, loss0 = measure()
    with spec.apply(handle):
        after, loss1 = measure()
    table = laundry_gain(before, after)
    edits = ", ".join(
        f"{e.layer}.{e.head}[{e.component}{' QK' if e.kind == 'qk' else ''}]×{e.alpha:g}" for e in spec.edits
    )
    print_frame(table, f"Laundry List held-out accuracy by N ({handle.name}; edit {edits})", console)
    console.print(
        f"LM loss {loss0:.4f} → {loss1:.4f} ({100 * (loss1 - loss0) / loss0:+.2f}%) "
        f"[{time.time() - started:.0f} s]"
    )


from apps.cli import edit_learn  # noqa: E402, F401  (registers `sublens edit learn`)
