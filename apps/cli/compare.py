"""``sublens compare layers|nets``: representation similarity between models.

* ``compare layers MODEL_A MODEL_B``: layer x layer CKA of two language models on the same prompts
  (:func:`analysis.compare_layers.compare_layers`);
* ``compare nets``: convergent learning across seeds on small digits CNNs
  (:func:`analysis.convergent.run_convergent`).

Each writes a run directory (parquet tables, HTML figures sharing one ``plotly.min.js``, ``run.json``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from apps.cli import checks
from apps.cli.tables import print_frame
from probes.errors import InputError
from probes.runs import open_run

app = typer.Typer(
    help="Compare representations: two LMs layer by layer, or CNNs across seeds.", no_args_is_help=True
)
console = Console()


def _write_figure(fig, path: Path) -> Path:
    """Write a plotly figure as HTML next to a shared offline ``plotly.min.js`` (no network needed)."""
    fig.write_html(path, include_plotlyjs="directory")
    return path


def read_prompts(path: str | Path, flag: str = "--prompts-file") -> list[str]:
    """Prompts from a text file: one per line; blank lines and lines starting with ``#`` are skipped."""
    from probes.datasets import load_prompt_lines

    p = checks.input_file(str(path), flag, "prompts (one prompt per line)")
    try:
        return load_prompt_lines(p)
    except InputError as err:
        raise InputError(f"{flag}: {err}") from None


def _split(value: str, name: str) -> list[str]:
    return checks.items(value, f"--{name}")


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

    from analysis.compare_layers import DEFAULT_PROMPTS, POOLINGS

    checks.one_of(pooling, POOLINGS, "--pooling")
    checks.one_of(backend, ("tl", "nnsight"), "--backend")
    checks.at_least(batch_size, 1, "--batch-size")
    checks.at_least(threads, 1, "--threads")
    metric_list = [_metric(m, "--metrics") for m in _split(metrics, "metrics")]
    prompts = read_prompts(prompts_file) if prompts_file else list(DEFAULT_PROMPTS)
    if n_prompts is not None:
        checks.at_least(n_prompts, 1, "--n-prompts")
        prompts = prompts[:n_prompts]
    _check_samples(len(prompts), metric_list)
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
        torch.set_num_threads(threads)
    try:
        with open_run("compare layers", config, root=out, flag="--out" if out else None, seed=0) as run:
            _layers_run(run, model_a, model_b, prompts, config, batch_size)
    finally:
        torch.set_num_threads(old_threads)
    console.print(f"results: {run.dir}")


def _metric(name: str, flag: str) -> str:
    from analysis.similarity import METRICS

    return checks.one_of(name, sorted(METRICS), flag)


def _check_samples(n: int, metric_list: list[str]) -> None:
    """Refuse (or warn about) too few prompts for CKA before any model is loaded."""
    from analysis.similarity.cka import check_cka_samples

    ckas = [m for m in metric_list if m.endswith("cka")]
    if not ckas:
        return
    try:
        check_cka_samples(n, "prompts", debiased=ckas == ["debiased_cka"])
    except InputError as err:
        raise InputError(f"{err} Give more with --prompts-file, or raise --n-prompts.") from None


def _layers_run(run, model_a: str, model_b: str, prompts: list[str], config: dict, batch_size: int) -> None:
    import pandas as pd
    from safetensors.torch import save_file

    from analysis.compare_layers import best_matches, compare_layers
    from probes.loading import load_model

    with console.status(f"loading {model_a} …"):
        handle_a = load_model(model_a, backend="hf", progress=False)
    if model_b == model_a:
        handle_b = handle_a
    else:
        with console.status(f"loading {model_b} …"):
            handle_b = load_model(model_b, backend="hf", progress=False)
    run.record(model=handle_a.name, pack_sha256=handle_a.pack_sha256)
    run.record(model_b=handle_b.name, pack_sha256_b=handle_b.pack_sha256)
    console.print(f"[green]loaded[/] {handle_a!r}\n[green]loaded[/] {handle_b!r}")
    res = compare_layers(
        handle_a,
        handle_b,
        prompts,
        pooling=config["pooling"],
        metrics=config["metrics"],
        chat=config["chat"],
        backend=config["backend"],
        batch_size=batch_size,
        progress=True,
    )
    best = best_matches(res.grid)
    run.table(res.grid, "grid.parquet")
    run.table(best, "best_matches.parquet")
    run.table(pd.DataFrame({"prompt": prompts}), "prompts.parquet")
    save_file({k: v.contiguous() for k, v in res.pooled_a.items()}, str(run.dir / "pooled_a.safetensors"))
    if handle_b is not handle_a:
        save_file({k: v.contiguous() for k, v in res.pooled_b.items()}, str(run.dir / "pooled_b.safetensors"))
    _write_figure(res.figure, run.dir / "grid.html")
    print_frame(
        best[["layer_a", "best_b", "value", "diagonal"]],
        f"{config['metrics'][0]}: best layer of {handle_b.name} for each layer of {handle_a.name} "
        f"({config['pooling']} pooling, {len(prompts)} prompts)",
        console,
    )


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
    from analysis.convergent import ConvergentConfig

    checks.at_least(seeds, 2, "--seeds", "nets to compare")
    checks.at_least(first_seed, 0, "--first-seed")
    checks.at_least(epochs, 1, "--epochs")
    layer_list = [
        checks.one_of(x, ("conv1", "conv2", "fc1", "logits"), "--layers") for x in _split(layers, "layers")
    ]
    alpha_list = list(checks.floats(alphas, "--alphas", "0.003,0.01,0.03"))
    if any(a <= 0 for a in alpha_list):
        raise InputError(f"--alphas {alphas} must all be > 0 (lasso penalties).")
    checks.one_of(conv_units, ("positions", "mean"), "--conv-units")
    checks.one_of(cka_conv, ("mean", "flatten"), "--cka-conv")
    _metric(cka_metric, "--cka-metric")
    checks.at_least(n_clusters, 2, "--n-clusters")
    checks.at_least(n_random, 1, "--n-random")
    checks.at_least(seed, 0, "--seed")
    with checks.as_flags({"seeds": "--seeds", "lasso_alphas": "--alphas"}):
        cfg = ConvergentConfig(
            seeds=list(range(first_seed, first_seed + seeds)),
            epochs=epochs,
            layers=layer_list,
            lasso_alphas=alpha_list,
            conv_units=conv_units,  # type: ignore[arg-type]
            cka_conv=cka_conv,  # type: ignore[arg-type]
            cka_metric=cka_metric,
            n_clusters=n_clusters,
            n_random=n_random,
            seed=seed,
        )
    with open_run(
        "compare nets", cfg, root=out, flag="--out" if out else None, model="digits-cnn", seed=seed
    ) as run:
        _nets_run(run, cfg)
    console.print(f"results: {run.dir}")


def _nets_run(run, cfg) -> None:
    from analysis.convergent import cka_figure, matching_figure, run_convergent, sparse_figure

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("training", total=None)

        def progress(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, description=message)

        res = run_convergent(cfg, progress=progress)
    for name, df in res.tables().items():
        run.table(df, f"{name}.parquet")
    _write_figure(matching_figure(res.matching), run.dir / "matching.html")
    _write_figure(sparse_figure(res.sparse), run.dir / "sparse.html")
    _write_figure(cka_figure(res.cka), run.dir / "cka.html")

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
    run.record(
        test_accuracy=dict(zip(res.accuracy.seed.astype(str), res.accuracy.test_accuracy, strict=True)),
        layer_identification_accuracy=res.layer_id_accuracy(),
    )
