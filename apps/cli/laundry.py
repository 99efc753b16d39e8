"""``sublens laundry eval|subspace|steer MODEL``: Laundry List accuracy by N and answer position (plus IOI),
the positional subspace (located heads, effective dimension, crowding, order sensitivity), and steering
in that subspace (a dev-fitted rule and a per-prompt oracle)."""

from __future__ import annotations

import typer
from rich.console import Console

from apps.cli import checks, task_files
from apps.cli.tables import print_frame
from probes.errors import InputError

app = typer.Typer(help="The Laundry List task.", no_args_is_help=True)
console = Console()


@app.command("eval")
def evaluate(
    model: str = typer.Argument(..., help="packaged model name or local path"),
    n_min: int = typer.Option(2, help="smallest list length"),
    n_max: int = typer.Option(10, help="largest list length"),
    per_n: int = typer.Option(40, help="prompts per list length"),
    split: str = typer.Option("test", help="item vocabulary split: dev or test"),
    ioi_prompts: int = typer.Option(100, help="IOI prompts for the side table (0: skip)"),
    seed: int = typer.Option(0, help="prompt sampling seed"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
    items: str = task_files.ITEMS_OPTION,
    templates: str = task_files.TEMPLATES_OPTION,
) -> None:
    """Score the model on Laundry List prompts (and IOI) and save the tables.

    --items replaces the built-in item pool (its --split half is used), --templates the built-in templates."""
    from analysis.tasks.evaluate import evaluate_ioi, evaluate_laundry
    from probes.loading import load_model
    from probes.runs import open_run

    ns = checks.list_lengths(n_min, n_max, "--n-min", "--n-max")
    checks.at_least(per_n, 1, "--per-n")
    checks.one_of(split, ("dev", "test"), "--split")
    checks.at_least(ioi_prompts, 0, "--ioi-prompts", "0 skips IOI")
    checks.at_least(seed, 0, "--seed")
    item_list = task_files.read_items(items, {split: (ns, "--n-max")})
    template_list = task_files.read_templates(templates)
    config = {
        "model": model,
        "n_min": n_min,
        "n_max": n_max,
        "per_n": per_n,
        "split": split,
        "ioi_prompts": ioi_prompts,
        "seed": seed,
        "items": list(item_list),
        "templates": list(template_list),
    }
    with open_run("laundry eval", config, root=out, flag="--out" if out else None, seed=seed) as run:
        with console.status(f"loading {model} …"):
            handle = load_model(model, backend="hf")
        run.record(model=handle.name, pack_sha256=handle.pack_sha256)
        task_files.check_tokens(item_list, items, handle.tokenizer)
        if not item_list:
            checks.check_list_vocab(handle.tokenizer, ns, split, "--n-max")
        res = evaluate_laundry(
            handle, n_items=ns, n_per_n=per_n, split=split, seed=seed,
            items=list(item_list) or None, templates=list(template_list) or None,
        )  # fmt: skip
        run.table(res.scored.astype({"items": str, "item_ids": str}), "laundry_scored.parquet")
        run.table(res.by_n, "laundry_by_n.parquet")
        run.table(res.by_position, "laundry_by_position.parquet")
        print_frame(res.by_n, f"Laundry List accuracy by N ({handle.name}, {split} items)", console)
        if ioi_prompts:
            scored, summary = evaluate_ioi(handle, n_prompts=ioi_prompts, seed=seed)
            run.table(scored, "ioi_scored.parquet")
            run.table(summary, "ioi_summary.parquet")
            print_frame(summary, f"IOI ({handle.name})", console)
    console.print(f"results: {run.dir}")


def _subspace_config(n_min, n_max, per_n, locate_per_n, movers, suppressors, per_head, k, n_null, n_boot, seed,
                     items, templates):  # fmt: skip
    """Flag checks (before any model loads) → :class:`analysis.laundry.pipeline.SubspaceConfig`."""
    from analysis.laundry.pipeline import SubspaceConfig

    ns = checks.list_lengths(n_min, n_max, "--n-min", "--n-max")
    for value, flag in ((per_n, "--per-n"), (locate_per_n, "--locate-per-n"), (movers, "--movers"),
                        (suppressors, "--suppressors"), (per_head, "--per-head"), (k, "--k")):  # fmt: skip
        checks.at_least(value, 1, flag)
    checks.at_least(n_null, 2, "--n-null")
    checks.at_least(n_boot, 10, "--n-boot")
    checks.at_least(seed, 0, "--seed")
    if k is not None and k > suppressors * per_head:
        raise InputError(f"--k {k} is larger than the {suppressors * per_head} stacked directions "
                         "(--suppressors × --per-head); lower --k or raise them.")  # fmt: skip
    item_list = task_files.read_items(items, {"dev": (ns, "--n-max"), "test": (ns, "--n-max")})
    return SubspaceConfig(
        n_items=ns, per_n=per_n, locate_per_n=locate_per_n, n_movers=movers, n_suppressors=suppressors,
        per_head=per_head, k=k, n_null=n_null, n_boot=n_boot, seed=seed, items=item_list,
        templates=task_files.read_templates(templates),
    )  # fmt: skip


def _check_vocab(handle, config, items_path) -> None:
    task_files.check_tokens(config.items, items_path, handle.tokenizer)
    if not config.items:
        for split in ("dev", "test"):
            checks.check_list_vocab(handle.tokenizer, config.n_items, split, "--n-max")


@app.command("subspace")
def subspace(
    model: str = typer.Argument(..., help="packaged model name or local path"),
    n_min: int = typer.Option(2, help="smallest list length"),
    n_max: int = typer.Option(10, help="largest list length"),
    per_n: int = typer.Option(40, help="held-out prompts per list length (coordinates, crowding)"),
    locate_per_n: int = typer.Option(10, help="dev prompts per list length to locate the heads"),
    movers: int = typer.Option(3, help="mover heads kept"),
    suppressors: int = typer.Option(4, help="suppressor heads kept (before the first mover)"),
    per_head: int = typer.Option(2, help="write directions (OV components) per suppressor"),
    k: int = typer.Option(None, help="subspace dimension (default: 95% of the energy, at least 3)"),
    n_null: int = typer.Option(500, help="null directions per receiver for the component z-scores"),
    n_boot: int = typer.Option(1000, help="bootstrap resamples for the order-sensitivity interval"),
    seed: int = typer.Option(0, help="prompt, null and bootstrap seed"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
    items: str = task_files.ITEMS_OPTION,
    templates: str = task_files.TEMPLATES_OPTION,
) -> None:
    """Locate the Laundry List channel, measure its positional subspace and crowding (held-out prompts)."""
    from analysis.laundry.figures import subspace_figure
    from analysis.laundry.pipeline import positional_subspace
    from probes.loading import load_model
    from probes.runs import open_run, write_json

    config = _subspace_config(n_min, n_max, per_n, locate_per_n, movers, suppressors, per_head, k, n_null,
                              n_boot, seed, items, templates)  # fmt: skip
    with open_run("laundry subspace", {"model": model, **config.to_json()}, root=out,
                  flag="--out" if out else None, seed=seed) as run:  # fmt: skip
        with console.status(f"loading {model} …"):
            handle = load_model(model, backend="hf", progress=False)
        run.record(model=handle.name, pack_sha256=handle.pack_sha256, config=config)
        _check_vocab(handle, config, items)
        res = positional_subspace(handle, config, progress=True)
        for name in (
            "roles",
            "components",
            "energy",
            "angles",
            "coords",
            "decodability",
            "crowding",
            "correlation",
        ):
            run.table(res[name], f"{name}.parquet")
        write_json(res["summary"], run.dir / "summary.json")
        html = [subspace_figure(res["coords"], n).to_html(full_html=False, include_plotlyjs=i == 0)
                for i, n in enumerate(config.n_items)]  # fmt: skip
        (run.dir / "scatter.html").write_text(
            "<html><body>" + "".join(html) + "</body></html>", encoding="utf-8"
        )
    s = res["summary"]
    console.print(
        f"movers {s['movers']}, suppressors {s['suppressors']}; {s['m_directions']} directions: "
        f"k90 = {s['k90']}, k95 = {s['k95']}, participation ratio {s['participation_ratio']:.2f}"
    )
    print_frame(res["decodability"], f"Crowding: position decoded from the subspace ({handle.name})", console)
    print_frame(res["correlation"], "Order sensitivity: overlap vs accuracy by position", console)
    console.print(f"results: {run.dir}")


@app.command("steer")
def steer(
    model: str = typer.Argument(..., help="packaged model name or local path"),
    n_min: int = typer.Option(2, help="smallest list length"),
    n_max: int = typer.Option(10, help="largest list length"),
    per_n: int = typer.Option(40, help="held-out prompts per list length (test items, held-out templates)"),
    fit_per_n: int = typer.Option(30, help="dev prompts per list length the steering rule is fitted on"),
    locate_per_n: int = typer.Option(10, help="dev prompts per list length to locate the heads"),
    steps: int = typer.Option(60, help="gradient steps fitting the rule"),
    lr: float = typer.Option(0.05, help="step size of the rule's fit"),
    l2: float = typer.Option(0.01, help="pull of the rule towards no change"),
    oracle_steps: int = typer.Option(20, help="margin-ascent steps per seed of the per-prompt oracle"),
    movers: int = typer.Option(3, help="mover heads kept"),
    suppressors: int = typer.Option(4, help="suppressor heads kept (before the first mover)"),
    per_head: int = typer.Option(2, help="write directions (OV components) per suppressor"),
    k: int = typer.Option(None, help="subspace dimension (default: 95% of the energy, at least 3)"),
    n_null: int = typer.Option(500, help="null directions per receiver for the component z-scores"),
    seed: int = typer.Option(0, help="prompt and null seed"),
    resume: str = typer.Option(None, help="resume this run directory (its saved config is used)"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
    items: str = task_files.ITEMS_OPTION,
    templates: str = task_files.TEMPLATES_OPTION,
) -> None:
    """Steer the END coordinates in the positional subspace with an affine rule of the prompt's own
    coordinates fitted on dev, and a per-prompt oracle (>= the rule by construction); accuracy by N and
    position on held-out prompts, with Wilson 95% intervals. Each N is saved as it is done (--resume)."""
    import shlex

    from analysis.laundry.pipeline import SteerConfig, steering_study
    from probes.loading import load_model
    from probes.runs import check_writable, open_run, write_json

    if resume:
        run_dir, config = checks.resume_config(resume, SteerConfig, "laundry steer")
        check_writable(run_dir, "--resume")
        where = {"run_dir": run_dir, "flag": "--resume"}
    else:
        checks.at_least(fit_per_n, 2, "--fit-per-n")
        checks.at_least(steps, 1, "--steps")
        checks.at_least(oracle_steps, 0, "--oracle-steps")
        if not lr > 0:
            raise InputError(f"--lr {lr} must be > 0 (e.g. 0.05).")
        if not l2 >= 0:
            raise InputError(f"--l2 {l2} must be >= 0 (0: no pull towards no change).")
        base = _subspace_config(n_min, n_max, per_n, locate_per_n, movers, suppressors, per_head, k, n_null,
                                1000, seed, items, templates)  # fmt: skip
        config = SteerConfig(**base.model_dump(), fit_per_n=fit_per_n, steps=steps, lr=lr, l2=l2,
                             oracle_steps=oracle_steps)  # fmt: skip
        where = {"root": out, "flag": "--out" if out else None}
    with open_run("laundry steer", {"model": model, **config.to_json()}, seed=config.seed, **where) as run:
        run.record(config=config)
        run.resume = shlex.join(["sublens", "laundry", "steer", model, "--resume", str(run.dir)])
        console.print(f"run directory: {run.dir}")
        with console.status(f"loading {model} …"):
            handle = load_model(model, backend="hf", progress=False)
        run.record(model=handle.name, pack_sha256=handle.pack_sha256)
        _check_vocab(handle, config, items or "(saved config)")
        res = steering_study(handle, config, progress=True, run_dir=run.dir)
        for name in ("by_n", "by_position", "scored"):
            run.table(res[name], f"{name}.parquet")
        write_json(res["summary"], run.dir / "summary.json")
    wide = res["by_n"].pivot(index="n_items", columns="condition", values="accuracy").reset_index()
    print_frame(wide, f"Held-out Laundry List accuracy by N, steered ({handle.name})", console)
    s = res["summary"]
    console.print(f"dev accuracy {s['dev_accuracy']}; largest gain (pp): {s['max_gain_pp']}; "
                  f"oracle >= rule at every N: {s['oracle_ge_rule_every_n']}")  # fmt: skip
    console.print(f"results: {run.dir}")
