"""``sublens align run CONFIG.toml``: 3D <-> text subspace alignment (Hadgi et al.) on procedural shapes.

The TOML file's top-level keys are the fields of :class:`analysis.alignment.AlignmentConfig` (missing
keys keep their defaults; an unknown key or a bad value stops with an error naming the key), e.g.::

    seeds = [0, 1, 2]
    encoders_3d = ["pointnet"]
    encoders_text = ["minilm"]
    n_anchors = [1000, 4000, 16000]
    dims = [4, 8, 16, 32, 64, 128]

Writes a run directory (``results``/``summary``/``diagnostics``/``semantics`` parquet, HTML figures
sharing one ``plotly.min.js``, ``run.json``) and prints the summary tables.
"""

from __future__ import annotations

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from apps.cli import checks
from apps.cli.tables import print_frame

app = typer.Typer(
    help="Align 3D and text encoders through a CCA subspace (procedural shapes).", no_args_is_help=True
)
console = Console()


@app.callback()
def _group() -> None:
    """Align 3D and text encoders through a CCA subspace (procedural shapes)."""


def best_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per encoders x method at the largest anchor count: the row with the best mean text->3D top-1."""
    top = summary[summary["n_anchors"] == summary["n_anchors"].max()]
    idx = top.groupby(["encoder_3d", "encoder_text", "method"], sort=False)["t2s_top1_mean"].idxmax()
    return top.loc[idx].reset_index(drop=True)


def format_table(summary: pd.DataFrame) -> pd.DataFrame:
    """``mean ± sd`` strings (in %) for the headline metrics."""
    out = summary[["encoder_3d", "encoder_text", "method", "n_anchors", "d"]].copy()
    out["d"] = out["d"].map(lambda d: "full" if d == 0 else str(d))
    for m in ("t2s_top1", "t2s_top5", "s2t_top1", "matching"):
        out[m] = [
            f"{100 * a:.1f} ± {100 * b:.1f}"
            for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_sd"], strict=True)
        ]
    return out


@app.command("run")
def run(
    config: str = typer.Argument(..., help="TOML file with AlignmentConfig fields"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
) -> None:
    """Generate shapes, encode both modalities, align (full space and CCA subspaces) and evaluate retrieval."""
    from analysis.alignment import load_config
    from probes.runs import open_run

    checks.input_file(config, "CONFIG", "alignment TOML")
    cfg = load_config(config)
    with open_run("align run", cfg, folder="align", root=out, flag="--out" if out else None) as run:
        res, summary = _align(run, cfg)
    diag = res.diagnostics.groupby(["encoder_3d", "encoder_text"], sort=False)[
        ["raw_linear_cka", "chance_top1", "chance_label"]
    ].mean()
    print_frame(diag.reset_index(), "raw spaces: linear CKA of the query embeddings; chance levels", console)
    print_frame(
        format_table(best_table(summary)),
        f"best d per method at {max(cfg.n_anchors)} anchors (%, mean ± sd over {len(cfg.seeds)} seeds; t2s = text -> 3D)",
        console,
    )
    if len(res.semantics):
        sem = res.semantics[res.semantics.space != "attribute_vs_chamfer"]
        print_frame(
            sem[["space", "rho_attr", "rho_geom", "partial_attr", "partial_geom"]],
            "semantics vs geometry: Spearman of embedding distance with caption-attribute / Chamfer distance",
            console,
        )
    console.print(f"results: {run.dir}")


def _align(run, cfg):
    """Run the experiment and write its tables into the open run folder."""
    from analysis.alignment import run_experiment, summary_table, write_run

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"generating {cfg.n_pool} shapes and encoding", total=None)

        def progress(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, description=message)

        res = run_experiment(cfg, progress=progress)
    write_run(res, cfg, root=run.root, started=run.started)  # joins the open run's folder
    return res, summary_table(res.results)
