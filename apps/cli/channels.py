"""``sublens channels scan MODEL``: component-level composition scores with z-scores for a whole model."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from apps.cli import checks
from apps.cli.tables import print_frame
from probes.errors import InputError

app = typer.Typer(help="Head-to-head communication channels (Talking Heads).", no_args_is_help=True)
console = Console()


@app.command("scan")
def scan(
    model: str = typer.Argument(None, help="packaged model name, 'organism', or a local path"),
    modes: str = typer.Option("QKV", help="composition modes to score"),
    n_null: int = typer.Option(2000, help="random directions per receiver for the null"),
    seed: int = typer.Option(0, help="seed of the null directions"),
    center_writing: bool = typer.Option(False, help="centre W_O rows (off the all-ones direction)"),
    top: int = typer.Option(20, help="rows in the printed top-channels table"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
    models: str = typer.Option(
        None, help="several models, comma-separated (instead of MODEL): one scan each, resumable"
    ),
    run_dir: str = typer.Option(None, help="with --models: this folder (an existing one is resumed)"),
    ray: str = checks.RAY_OPTION,
    workers: int = checks.WORKERS_OPTION,
) -> None:
    """Score every (sender head, SVD component) against every later receiver head in Q, K and V."""
    from analysis.channels import ScanConfig, head_pair_summary, scan_channels, top_channels
    from probes.loading import load_model
    from probes.runs import open_run
    from probes.weights import head_weights

    modes = checks.modes(modes)
    checks.at_least(n_null, 2, "--n-null", "random directions per receiver")
    checks.at_least(top, 1, "--top", "rows in the printed table")
    checks.at_least(seed, 0, "--seed")
    with checks.as_flags():
        config = ScanConfig(modes=modes, n_null=n_null, seed=seed)
    if (model is None) == (models is None):
        raise InputError("Give one MODEL, or several with --models A,B,C (not both).")
    if models is not None:
        return _scan_many(checks.items(models, "--models"), config, center_writing, top, out, run_dir,
                          checks.ray_config(ray, workers))  # fmt: skip
    if ray is not None or run_dir is not None:
        raise InputError("--ray and --run-dir go with --models A,B,C; a single MODEL scans in this process.")
    # the scan takes the weights as read; how they were read is part of the run's record
    run_config = {**config.to_json(), "fold_ln": True, "center_writing": center_writing}
    flag = "--out" if out else None
    with open_run("channels scan", {"model": model, **run_config}, root=out, flag=flag, seed=seed) as run:
        run.record(config=run_config)
        with console.status(f"loading {model} …"):
            handle = load_model(model, backend="hf")
        run.record(model=handle.name, pack_sha256=handle.pack_sha256)
        with console.status("reading per-head weights (LayerNorm folded) …"):
            weights = head_weights(handle, fold_ln=True, center_writing=center_writing)
        with console.status(
            f"scoring {weights.n_layers}×{weights.n_heads} heads × {weights.d_head} components "
            f"in {config.modes} with a {n_null}-direction null …"
        ):
            df = scan_channels(weights, config)
        run.table(df, "channels.parquet")
        run.table(head_pair_summary(df), "head_pairs.parquet")
        best = top_channels(df, top)
        run.table(best, "top_channels.parquet")
        cols = [
            "sender_layer",
            "sender_head",
            "component",
            "receiver_layer",
            "receiver_head",
            "mode",
            "score",
            "z",
        ]
        print_frame(
            best[cols].astype({"score": float, "z": float, "mode": str}),
            f"top channels ({handle.name}, {len(df):,} scores)",
            console,
        )
        run.record(n_scores=len(df), seconds=round(time.time() - run.started, 1))
    console.print(f"results: {run.dir}")


def _scan_many(models: list[str], config, center_writing: bool, top: int, out, run_dir, ray) -> None:
    """``--models``: one scan per model in one run folder (``analysis.channels.many``), resumable."""
    import shlex

    from analysis.channels.many import scan_models
    from probes.loading import looks_like_path, no_such_path
    from probes.runs import open_run

    for m in models:  # before any cluster starts or model loads
        if looks_like_path(m) and not Path(m).expanduser().exists():
            raise no_such_path(m)

    run_config = {**config.to_json(), "models": models, "fold_ln": True, "center_writing": center_writing}
    where = (
        {"run_dir": run_dir, "flag": "--run-dir"}
        if run_dir
        else {"root": out, "flag": "--out" if out else None}
    )
    with open_run("channels scan", run_config, seed=config.seed, **where) as run:
        run.resume = shlex.join(
            ["sublens", "channels", "scan", "--models", ",".join(models), "--run-dir", str(run.dir)]
        )
        summary = scan_models(models, config, run.dir, center_writing=center_writing, top=top, ray=ray)
        run.table(summary, "scans.parquet")
        print_frame(summary, f"channel scans ({len(models)} models)", console)
        run.record(n_models=len(summary))
    console.print(f"results: {run.dir}")
