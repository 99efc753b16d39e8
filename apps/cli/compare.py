"""``sublens compare layers|nets``: representation similarity between models.

* ``compare layers MODEL_A MODEL_B``: layer x layer CKA of two language models on the same prompts
  (:func:`analysis.compare_layers.compare_layers`);
* ``compare nets``: convergent learning across seeds on small digits CNNs
  (:func:`analysis.convergent.run_convergent`).

Each writes a run directory (parquet tables, HTML figures sharing one ``plotly.min.js``, ``run.json``).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from apps.cli.tables import print_frame
from probes.errors import InputError

app = typer.Typer(
    help="Compare representations: two LMs layer by layer, or CNNs across seeds.", no_args_is_help=True
)
console = Console()


def _write_figure(fig, path: Path) -> Path:
    """Write a plotly figure as HTML next to a shared offline ``plotly.min.js`` (no network needed)."""
    fig.write_html(path, include_plotlyjs="directory")
    return path


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a text file: one per line; blank lines and lines starting with ``#`` are skipped."""
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"prompts file {str(p)!r} does not exist; pass a text file with one prompt per line."
        )
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    prompts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise InputError(f"prompts file {str(p)!r} holds no prompts; write one prompt per line.")
    return prompts


def _split(value: str, name: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise InputError(f"--{name} is empty; give a comma-separated list.")
    return items


@app.command("layers")
def layers(
    model_a: str = typer.Argument(..., help="packaged model name or local path"),
    model_b: str = typer.Argument(..., help="packaged model name or local path (may equal MODEL_A)"),
    prompts_file: str = typer.Option(None, "--prompts-file", help="text file, one prompt per line"),
    pooling: str = typer.Option("last", help="last (last prompt token) or mean (over real tokens)"),
    n_prompts: int = typer.Option(None, "--n-prompts", help="use only the first N prompts"),
    metrics: str = typer.Option("linear_cka", help="comma-separated similarity metrics (e.g. debiased_cka)"),
    chat: bool = typer.Option(True, "--chat/--no-chat", help="apply each model's chat template"),
    backend: str = typer.Option("tl", help="capture backend: tl or nnsight"),
    batch_size: int = typer.Option(8, help="prompts per forward pass"),
    threads: int = typer.Option(None, help="torch threads (default: torch's own setting)"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
) -> None:
    """Layer x layer CKA between the residual streams (resid_post.*) of two models on the same prompts."""
    import torch
    from safetensors.torch import save_file

    from analysis.compare_layers import DEFAULT_PROMPTS, POOLINGS, best_matches, compare_layers
    from probes.loading import load_model
    from probes.runs import new_run_dir, write_sidecar, write_table

    started = time.time()
    if pooling not in POOLINGS:
        raise InputError(f"--pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}.")
    prompts = read_prompts(prompts_file) if prompts_file else list(DEFAULT_PROMPTS)
    if n_prompts is not None:
        if n_prompts < 3:
            raise InputError(f"--n-prompts must be >= 3 (CKA needs several samples), got {n_prompts}.")
        prompts = prompts[:n_prompts]
    metric_list = _split(metrics, "metrics")
    config = {
        "model_a": model_a,
        "model_b": model_b,
        "prompts_file": prompts_file,
        "n_prompts": len(prompts),
        "pooling": pooling,
        "metrics": metric_list,
        "chat": chat,
        "backend": backend,
        "sites": "resid_post.*",
        "seed": 0,
    }
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    try:
        with console.status(f"loading {model_a} …"):
            handle_a = load_model(model_a, backend="hf", progress=False)
        if model_b == model_a:
            handle_b = handle_a
        else:
            with console.status(f"loading {model_b} …"):
                handle_b = load_model(model_b, backend="hf", progress=False)
        console.print(f"[green]loaded[/] {handle_a!r}\n[green]loaded[/] {handle_b!r}")
        res = compare_layers(
            handle_a,
            handle_b,
            prompts,
            pooling=pooling,
            metrics=metric_list,
            chat=chat,
            backend=backend,
            batch_size=batch_size,
            progress=True,
        )
    finally:
        torch.set_num_threads(old_threads)
    best = best_matches(res.grid)
    run_dir = new_run_dir("compare-layers", config, root=out)
    write_table(res.grid, run_dir / "grid.parquet")
    write_table(best, run_dir / "best_matches.parquet")
    import pandas as pd

    write_table(pd.DataFrame({"prompt": prompts}), run_dir / "prompts.parquet")
    save_file({k: v.contiguous() for k, v in res.pooled_a.items()}, str(run_dir / "pooled_a.safetensors"))
    if handle_b is not handle_a:
        save_file({k: v.contiguous() for k, v in res.pooled_b.items()}, str(run_dir / "pooled_b.safetensors"))
    _write_figure(res.figure, run_dir / "grid.html")
    print_frame(
        best[["layer_a", "best_b", "value", "diagonal"]],
        f"{metric_list[0]}: best layer of {handle_b.name} for each layer of {handle_a.name} "
        f"({pooling} pooling, {len(prompts)} prompts)",
        console,
    )
    write_sidecar(
        run_dir,
        command="compare layers",
        config=config,
        model=handle_a.name,
        pack_sha256=handle_a.pack_sha256,
        seed=0,
        started=started,
        extra={"model_b": handle_b.name, "pack_sha256_b": handle_b.pack_sha256},
    )
    console.print(f"results: {run_dir}")


@app.command("nets")
def nets(
    seeds: int = typer.Option(3, help="number of nets (seeds first_seed, first_seed+1, ...)"),
    first_seed: int = typer.Option(0, help="seed of the first net"),
    epochs: int = typer.Option(15, help="training epochs per net"),
    layers: str = typer.Option("conv1,conv2,fc1", help="comma-separated layers: conv1, conv2, fc1, logits"),
    alphas: str = typer.Option("0.003,0.01,0.03,0.1,0.3", help="comma-separated lasso penalties"),
    conv_units: str = typer.Option("positions", help="conv maps for matching: positions or mean"),
    cka_conv: str = typer.Option("mean", help="conv maps for CKA: mean or flatten"),
    cka_metric: str = typer.Option("linear_cka", help="layer-similarity metric"),
    n_clusters: int = typer.Option(None, help="spectral clusters per layer (default: units // 4)"),
    n_random: int = typer.Option(100, help="random draws for the baselines"),
    seed: int = typer.Option(0, help="seed of baselines, subsampling and clustering"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
) -> None:
    """Convergent learning: train digits CNNs with different seeds and match their units and layers."""
    from analysis.convergent import (
        ConvergentConfig,
        cka_figure,
        matching_figure,
        run_convergent,
        sparse_figure,
    )
    from probes.runs import new_run_dir, write_sidecar, write_table

    started = time.time()
    if seeds < 2:
        raise InputError(f"--seeds must be >= 2 (nets to compare), got {seeds}.")
    try:
        alpha_list = [float(a) for a in _split(alphas, "alphas")]
    except ValueError:
        raise InputError(f"--alphas must be comma-separated numbers, got {alphas!r}.") from None
    cfg = ConvergentConfig(
        seeds=list(range(first_seed, first_seed + seeds)),
        epochs=epochs,
        layers=_split(layers, "layers"),
        lasso_alphas=alpha_list,
        conv_units=conv_units,  # type: ignore[arg-type]
        cka_conv=cka_conv,  # type: ignore[arg-type]
        cka_metric=cka_metric,
        n_clusters=n_clusters,
        n_random=n_random,
        seed=seed,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("training", total=None)

        def progress(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, description=message)

        res = run_convergent(cfg, progress=progress)
    run_dir = new_run_dir("compare-nets", cfg, root=out)
    for name, df in res.tables().items():
        write_table(df, run_dir / f"{name}.parquet")
    _write_figure(matching_figure(res.matching), run_dir / "matching.html")
    _write_figure(sparse_figure(res.sparse), run_dir / "sparse.html")
    _write_figure(cka_figure(res.cka), run_dir / "cka.html")

    print_frame(res.accuracy, "digits CNNs: accuracy per seed", console)
    print_frame(
        res.matching_overview(),
        "mean matched correlation (held-out; Hungarian one-to-one, semi = best partner, random pairing)",
        console,
    )
    sp = res.sparse_overview()
    print_frame(
        sp.assign(alpha=sp.alpha.map(lambda a: "" if a != a else f"{a:g}")),
        "predicting net B's units from net A's: held-out normalised squared error",
        console,
    )
    cs = res.cluster_summary.groupby("layer", sort=False)[
        ["n_clusters", "frac_mixed", "between_abs_corr", "between_abs_corr_random"]
    ].mean()
    cs["n_clusters"] = cs["n_clusters"].round().astype(int)
    print_frame(cs.reset_index(), "spectral clusters of both nets' units (|corr| affinity)", console)
    console.print(
        f"layer identification ({cfg.cka_metric}, argmax over layers): "
        f"[bold]{res.layer_id_accuracy():.3f}[/] of {len(res.layer_id)} lookups"
    )
    write_sidecar(
        run_dir,
        command="compare nets",
        config=cfg,
        model="digits-cnn",
        seed=seed,
        started=started,
        extra={
            "test_accuracy": dict(
                zip(res.accuracy.seed.astype(str), res.accuracy.test_accuracy, strict=True)
            ),
            "layer_identification_accuracy": res.layer_id_accuracy(),
        },
    )
    console.print(f"results: {run_dir}")
