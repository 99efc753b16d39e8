"""``sublens edit learn MODEL``: learn sparse per-component OV (and, with ``--qk-movers``/``--qk-heads``, the
movers' QK) scales, sweep the penalties (a Pareto front).

Registered on ``sublens edit`` by :mod:`apps.cli.edit`. Every flag is checked before the model loads;
items and templates files are read then, their tokens once the tokenizer is there. The run folder
(``runs/edit-learn/…``, :func:`probes.runs.open_run`) gets ``front.jsonl`` point by point, so
``--resume DIR`` continues a killed run; each point's edit is ``specs/<key>.json`` for ``sublens edit apply``.
"""

from __future__ import annotations

import shlex

import typer

from apps.cli import checks, task_files
from apps.cli.edit import _heads, _load, _ns, app, console
from apps.cli.tables import print_frame
from probes.errors import InputError

_FLAGS = {
    "l1": "--l1",
    "lm_weight": "--lm-weight",
    "dev_n": "--dev-n-min/--dev-n-max",
    "test_n": "--test-n-min/--test-n-max",
    "scale_min": "--scale-min",
    "scale_max": "--scale-max",
}


def _components(value: str) -> tuple[tuple[int, int, int], ...]:
    """``--components L.H.C,L.H.C`` as ``((L, H, C), …)``."""
    out = []
    for part in (x.strip() for x in value.split(",") if x.strip()):
        try:
            layer, head, comp = (int(x) for x in part.split("."))
        except ValueError:
            raise InputError(
                f"--components items must look like LAYER.HEAD.COMPONENT (e.g. 21.5.2), got {part!r}."
            ) from None
        if min(layer, head, comp) < 0:
            raise InputError(f"--components item {part!r}: layer, head and component must be >= 0.")
        out.append((layer, head, comp))
    return tuple(out)


def _check_for_model(handle, config, items_path: str | None) -> None:
    """Checks that need the tokenizer or the model's size, before any compute."""
    from analysis.tasks.sources import check_item_lengths, check_item_tokens

    info = handle.info
    if config.min_receiver_layer is not None and config.min_receiver_layer >= info.n_layers:
        raise InputError(
            f"--min-receiver-layer {config.min_receiver_layer} is out of range: {handle.name} has layers "
            f"0..{info.n_layers - 1}."
        )
    if config.layers_from is not None and config.layers_from >= info.n_layers:
        raise InputError(
            f"--layers-from {config.layers_from} is out of range: {handle.name} has layers 0..{info.n_layers - 1}."
        )
    for flag, heads in (("--heads", config.heads), ("--qk-heads", config.qk_heads)):
        for layer, head in heads:
            if layer >= info.n_layers or head >= info.n_heads:
                raise InputError(
                    f"{flag} {layer}.{head} is out of range: {handle.name} has layers 0..{info.n_layers - 1} "
                    f"and heads 0..{info.n_heads - 1}."
                )
    if config.items:
        where = items_path or "(saved run)"
        check_item_tokens(list(config.items), handle.tokenizer, where)
        lengths = {"dev": (config.dev_n, "--dev-n-max"), "test": (config.test_n, "--test-n-max")}
        check_item_lengths(list(config.items), lengths, where)
    else:
        checks.check_list_vocab(handle.tokenizer, config.dev_n, "dev", "--dev-n-max")
        checks.check_list_vocab(handle.tokenizer, config.test_n, "test", "--test-n-max")


@app.command("learn")
def learn(
    model: str = typer.Argument(..., help="packaged model name, 'organism' or a local path"),
    top_k: int = typer.Option(24, help="sender components taken from the channel scan (0: none)"),
    modes: str = typer.Option("Q", help="composition modes used to rank senders"),
    min_receiver_layer: int = typer.Option(
        None, help="scan receivers at/after this layer (default 2/3 depth)"
    ),
    heads: str = typer.Option("", help="also learn every OV component of these heads: L.H,L.H"),
    components: str = typer.Option("21.5.2,20.1.3", help="explicit candidate components: L.H.C,L.H.C"),
    layers_from: int = typer.Option(None, help="also every component of every head in layers >= this"),
    qk_heads: str = typer.Option(
        "", help="also learn every QK component of these heads (the movers, e.g. 24.4,23.1,21.5): L.H,L.H"
    ),
    qk_movers: int = typer.Option(
        0, help="also learn every QK component of the top N mover heads, located on the dev prompts (0: none)"
    ),
    l1: str = typer.Option("0.3,0.6", help="L1 strengths swept (comma-separated, >= 0)"),
    lm_weight: str = typer.Option("0,20", help="LM-loss penalty weights swept (comma-separated, >= 0)"),
    steps: int = typer.Option(40, help="Adam steps per sweep point"),
    lr: float = typer.Option(0.1, help="Adam learning rate on the scales"),
    batch: int = typer.Option(8, help="dev prompts per step"),
    lm_batch: int = typer.Option(2, help="held-out paragraphs per step for the LM penalty"),
    tol: float = typer.Option(0.02, help="a component counts as edited when |scale - 1| > tol"),
    scale_min: float = typer.Option(-2.0, help="smallest scale allowed"),
    scale_max: float = typer.Option(4.0, help="largest scale allowed"),
    dev_n_min: int = typer.Option(4, help="smallest dev (training) list length"),
    dev_n_max: int = typer.Option(10, help="largest dev (training) list length"),
    dev_per_n: int = typer.Option(40, help="training prompts per list length"),
    dev_eval_per_n: int = typer.Option(
        10, help="dev prompts per N (another seed) for each point's dev score"
    ),
    test_n_min: int = typer.Option(2, help="smallest test list length"),
    test_n_max: int = typer.Option(10, help="largest test list length"),
    test_per_n: int = typer.Option(40, help="test prompts per list length"),
    ioi_prompts: int = typer.Option(100, help="IOI prompts for the logit-difference side effect (0: skip)"),
    lm_max_tokens: int = typer.Option(128, help="tokens per held-out paragraph"),
    items: str = task_files.ITEMS_OPTION,
    templates: str = task_files.TEMPLATES_OPTION,
    seed: int = typer.Option(0, help="prompt, batch and null seed"),
    resume: str = typer.Option(None, help="resume this run directory (its saved config is used)"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
) -> None:
    """Learn per-component scales by gradient descent for each (l1, lm-weight); report the Pareto front."""
    from analysis.edit_search import check_resume
    from analysis.edits_learned import EditLearnConfig, run_edit_learn
    from analysis.edits_learned.learn import LEARN_RUN
    from probes.runs import check_writable, open_run

    if resume:
        from analysis.edits_learned import EditLearnConfig

        run_dir, config = checks.resume_config(resume, EditLearnConfig, "edit learn")
        check_writable(run_dir, "--resume")
        where = {"run_dir": run_dir, "flag": "--resume"}
    else:
        for value, flag in ((steps, "--steps"), (batch, "--batch"), (lm_batch, "--lm-batch")):
            checks.at_least(value, 1, flag)
        for value, flag in ((dev_per_n, "--dev-per-n"), (dev_eval_per_n, "--dev-eval-per-n")):
            checks.at_least(value, 1, flag)
        checks.at_least(test_per_n, 1, "--test-per-n")
        checks.at_least(top_k, 0, "--top-k")
        checks.at_least(ioi_prompts, 0, "--ioi-prompts", "0 skips IOI")
        checks.at_least(min_receiver_layer, 0, "--min-receiver-layer")
        checks.at_least(layers_from, 0, "--layers-from")
        checks.at_least(qk_movers, 0, "--qk-movers", "0 learns no located movers' QK")
        checks.at_least(lm_max_tokens, 2, "--lm-max-tokens")
        checks.at_least(seed, 0, "--seed")
        if not lr > 0:
            raise InputError(f"--lr {lr} must be > 0 (e.g. 0.1).")
        if not tol > 0:
            raise InputError(f"--tol {tol} must be > 0 (e.g. 0.02).")
        if not scale_min < 1 < scale_max:
            raise InputError(
                f"--scale-min {scale_min} / --scale-max {scale_max}: need scale-min < 1 < scale-max (1 = unchanged)."
            )
        l1s = checks.floats(l1, "--l1", "0.3,0.6")
        lm_weights = checks.floats(lm_weight, "--lm-weight", "0,20")
        for values, flag in ((l1s, "--l1"), (lm_weights, "--lm-weight")):
            if min(values) < 0:
                raise InputError(f"{flag} {','.join(f'{v:g}' for v in values)}: every value must be >= 0.")
        cands = _components(components)
        qk = _heads(qk_heads, "--qk-heads")
        if (
            top_k == 0
            and not heads.strip()
            and not cands
            and not qk
            and not qk_movers
            and layers_from is None
        ):
            raise InputError(
                "no candidates: --top-k 0 with no --heads, --components, --qk-heads, --qk-movers or --layers-from; "
                "give at least one."
            )
        with checks.as_flags(_FLAGS):
            config = EditLearnConfig(
                top_k=top_k,
                modes=checks.modes(modes),
                min_receiver_layer=min_receiver_layer,
                heads=_heads(heads),
                components=cands,
                layers_from=layers_from,
                qk_heads=qk,
                qk_movers=qk_movers,
                l1=l1s,
                lm_weight=lm_weights,
                steps=steps,
                lr=lr,
                batch=batch,
                lm_batch=lm_batch,
                tol=tol,
                scale_min=scale_min,
                scale_max=scale_max,
                dev_n=_ns(dev_n_min, dev_n_max, "dev-"),
                dev_per_n=dev_per_n,
                dev_eval_per_n=dev_eval_per_n,
                test_n=_ns(test_n_min, test_n_max, "test-"),
                test_per_n=test_per_n,
                ioi_prompts=ioi_prompts,
                lm_max_tokens=lm_max_tokens,
                items=task_files.read_items(
                    items,
                    {
                        "dev": (_ns(dev_n_min, dev_n_max, "dev-"), "--dev-n-max"),
                        "test": (_ns(test_n_min, test_n_max, "test-"), "--test-n-max"),
                    },
                ),
                templates=task_files.read_templates(templates),
                seed=seed,
            )
        where = {"root": out, "flag": "--out" if out else None}
    rerun = shlex.join(["sublens", "edit", "learn", model, "--resume"])
    with open_run("edit learn", {"model": model, **config.to_json()}, seed=config.seed, **where) as run:
        run.record(config=config)
        run.resume = f"{rerun} {shlex.quote(str(run.dir))}"
        console.print(f"run directory: {run.dir}")
        handle = _load(model)
        run.record(model=handle.name, pack_sha256=handle.pack_sha256)
        check_resume(run.dir, handle.name, config, LEARN_RUN)
        _check_for_model(handle, config, items)
        rep = run_edit_learn(handle, config, run.dir, progress=True)
        run.record(n_points=rep["n_points"], reaches_20pp=rep["reaches_20pp"])
    _print(rep, handle.name)
    console.print(f"results: {run.dir}")


def _print(rep: dict, name: str) -> None:
    front = rep["front"]
    cols = ["key", "n_edited", "mean_gain_pp", "max_gain_pp", "max_gain_n", "max_gain_lo", "max_gain_hi",
            "lm_loss_rel_change_pct", "ioi_before", "ioi_after", "pareto"]  # fmt: skip
    print_frame(front[cols], f"Learned edits: held-out Laundry List gain vs LM loss ({name})", console)
    best = rep["best_under_2pct_lm"]
    if best is None:
        console.print("[yellow]no point kept the held-out LM loss within +2%[/]")
    else:
        console.print(
            f"best with LM loss up < 2%: {best['key']}: {best['max_gain_pp']:+.1f} pp at N={best['max_gain_n']} "
            f"(95% [{best['max_gain_lo']:+.1f}, {best['max_gain_hi']:+.1f}]), {best['n_edited']} components"
        )
