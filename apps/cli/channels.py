"""``sublens channels scan MODEL``: component-level composition scores with z-scores for a whole model."""

from __future__ import annotations

import time

import typer
from rich.console import Console

from apps.cli.tables import print_frame

app = typer.Typer(help="Head-to-head communication channels (Talking Heads).", no_args_is_help=True)
console = Console()


@app.command("scan")
def scan(
    model: str = typer.Argument(..., help="packaged model name, 'organism', or a local path"),
    modes: str = typer.Option("QKV", help="composition modes to score"),
    n_null: int = typer.Option(2000, help="random directions per receiver for the null"),
    seed: int = typer.Option(0, help="seed of the null directions"),
    center_writing: bool = typer.Option(False, help="centre W_O rows (off the all-ones direction)"),
    top: int = typer.Option(20, help="rows in the printed top-channels table"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
) -> None:
    """Score every (sender head, SVD component) against every later receiver head in Q, K and V."""
    from analysis.channels import ScanConfig, head_pair_summary, scan_channels, top_channels
    from probes.loading import load_model
    from probes.runs import new_run_dir, write_sidecar, write_table
    from probes.weights import head_weights

    started = time.time()
    config = ScanConfig(modes=modes.upper(), n_null=n_null, seed=seed)
    # the scan takes the weights as read; how they were read is part of the run's record
    run_config = {**config.to_json(), "fold_ln": True, "center_writing": center_writing}
    with console.status(f"loading {model} …"):
        handle = load_model(model, backend="hf")
    with console.status("reading per-head weights (LayerNorm folded) …"):
        weights = head_weights(handle, fold_ln=True, center_writing=center_writing)
    with console.status(
        f"scoring {weights.n_layers}×{weights.n_heads} heads × {weights.d_head} components "
        f"in {config.modes} with a {n_null}-direction null …"
    ):
        df = scan_channels(weights, config)
    run_dir = new_run_dir("channels-scan", {"model": model, **run_config}, root=out)
    write_table(df, run_dir / "channels.parquet")
    write_table(head_pair_summary(df), run_dir / "head_pairs.parquet")
    best = top_channels(df, top)
    write_table(best, run_dir / "top_channels.parquet")
    print_frame(
        best[
            [
                "sender_layer",
                "sender_head",
                "component",
                "receiver_layer",
                "receiver_head",
                "mode",
                "score",
                "z",
            ]
        ].astype({"score": float, "z": float, "mode": str}),
        f"top channels ({handle.name}, {len(df):,} scores)",
        console,
    )
    write_sidecar(
        run_dir,
        command="channels scan",
        config=run_config,
        model=handle.name,
        pack_sha256=handle.pack_sha256,
        seed=seed,
        started=started,
        extra={"n_scores": len(df), "seconds": round(time.time() - started, 1)},
    )
    console.print(f"results: {run_dir}")
