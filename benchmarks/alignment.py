"""Benchmark: 3D <-> text alignment (Hadgi et al.) on procedural shapes, the table of issue 5.

Usage::

    python benchmarks/alignment.py                       # pointnet x minilm, 16k anchors, 3 seeds (CPU minutes)
    python benchmarks/alignment.py --quick               # 2k anchors, 2 seeds: about a minute
    python benchmarks/alignment.py --encoders-3d pointnet,modelnet --encoders-text minilm,tfidf

Runs :func:`analysis.alignment.experiment.run_experiment` (a run directory as ``sublens align run``
writes, plus ``report.md``) and prints:

1. raw spaces: linear CKA between the query embeddings, chance levels;
2. per method, its best ``d`` at the largest anchor count: text -> 3D top-1 / top-5, 3D -> text top-1,
   Hungarian matching, and same-caption-meaning top-1 (``t2s_top1_label``), mean ± sd over seeds (%);
3. the ``d`` sweep (text -> 3D top-1) at the largest anchor count;
4. the anchor sweep (text -> 3D top-1, each method at its best ``d``);
5. the headline ratio: best CCA-subspace top-1 over best full-space top-1, and where it peaks;
6. semantics vs geometry (Spearman / partial Spearman of pairwise distances with caption-attribute and
   Chamfer distances).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import pandas as pd


def _md(df: pd.DataFrame, floatfmt: str = "{:.3f}", index: bool = False) -> str:
    """A DataFrame as a markdown table (no tabulate dependency)."""
    if index:
        df = df.reset_index()
    cells = [
        [floatfmt.format(v) if isinstance(v, float) else str(v) for v in row]
        for row in df.itertuples(index=False)
    ]
    head = [str(c) for c in df.columns]
    return "\n".join(
        ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        + ["| " + " | ".join(r) + " |" for r in cells]
    )


def _pct(mean: float, sd: float) -> str:
    return f"{100 * mean:.1f} ± {100 * sd:.1f}"


def report(res, cfg) -> str:
    """The benchmark's tables as markdown."""
    from analysis.alignment.experiment import summary_table

    metrics = ("t2s_top1", "t2s_top5", "s2t_top1", "matching", "t2s_top1_label")
    summ = summary_table(res.results, metrics)
    n_max = max(cfg.n_anchors)
    lines = [
        f"# 3D <-> text alignment benchmark\n\nmachine: {platform.machine()} {os.cpu_count()} CPUs, "
        f"torch threads {cfg.threads}; pool {cfg.n_pool} shapes, {cfg.n_query} queries, seeds {cfg.seeds}; "
        f"timings (s): {', '.join(f'{k} {v:.0f}' for k, v in res.seconds.items())}\n",
    ]
    diag = res.diagnostics.groupby(["encoder_3d", "encoder_text"], sort=False)[
        ["raw_linear_cka", "chance_top1", "chance_top5", "chance_label", "oracle_top1"]
    ].mean()
    lines += ["## Raw spaces and chance\n", _md(diag.reset_index(), "{:.4f}"), ""]
    for (e3, et), s in summ.groupby(["encoder_3d", "encoder_text"], sort=False):
        top = s[s.n_anchors == n_max]
        best = top.loc[top.groupby("method", sort=False)["t2s_top1_mean"].idxmax()]
        tab = pd.DataFrame(
            {
                "method": best.method,
                "d": best.d.map(lambda d: "full" if d == 0 else str(d)),
                **{
                    m: [_pct(a, b) for a, b in zip(best[f"{m}_mean"], best[f"{m}_sd"], strict=True)]
                    for m in metrics
                },
            }
        )
        lines += [
            f"## {e3} x {et}: best d per method, {n_max} anchors (%, mean ± sd over {len(cfg.seeds)} seeds)\n"
        ]
        lines += [_md(tab), ""]
        sweep = top[top.d > 0].pivot(index="d", columns="method", values="t2s_top1_mean") * 100
        lines += [
            f"### d sweep: text -> 3D top-1 (%), {n_max} anchors\n",
            _md(sweep, "{:.1f}", index=True),
            "",
        ]
        rows = []
        for method, g in s.groupby("method", sort=False):
            d_best = g.groupby("d")["t2s_top1_mean"].mean().idxmax()
            h = g[g.d == d_best].set_index("n_anchors")
            rows.append(
                {
                    "method": method,
                    "d": "full" if d_best == 0 else d_best,
                    **{n: _pct(h.t2s_top1_mean[n], h.t2s_top1_sd[n]) for n in h.index},
                }
            )
        lines += [
            "### anchor sweep: text -> 3D top-1 (%), each method at its best d\n",
            _md(pd.DataFrame(rows)),
            "",
        ]
        full = top[top.d == 0]["t2s_top1_mean"].max()
        sub = top[top.d > 0]
        i = sub["t2s_top1_mean"].idxmax()
        ratio = sub.loc[i, "t2s_top1_mean"] / max(full, 1e-12)
        oracle = float(diag.loc[(e3, et), "oracle_top1"])
        per_aligner = []
        for full_m, sub_m in (("affine", "cca_affine"), ("local_cka", "cca_local_cka")):
            f, s_ = top[top.method == full_m], top[top.method == sub_m]
            if len(f) and len(s_):
                a, b = float(f.t2s_top1_mean.max()), float(s_.t2s_top1_mean.max())
                per_aligner.append(
                    f"{sub_m} / {full_m} {100 * b:.1f} / {100 * a:.1f}% = {b / max(a, 1e-12):.1f}x"
                )
        lines += [
            f"**Headline ({e3} x {et}, {n_max} anchors):** best subspace top-1 {100 * sub.loc[i, 't2s_top1_mean']:.1f}% "
            f"({sub.loc[i, 'method']}, d = {sub.loc[i, 'd']}) vs best full-space {100 * full:.1f}%: "
            f"**{ratio:.1f}x** (target >= 3x; chance {100 / cfg.n_query:.1f}%). Per aligner: "
            f"{'; '.join(per_aligner) or 'n/a'}. Caption-oracle ceiling of instance top-1 (queries sharing a "
            f"caption meaning are indistinguishable from text): {100 * oracle:.1f}%, i.e. at most "
            f"{oracle / max(full, 1e-12):.1f}x over this full-space baseline.\n"
        ]
    if len(res.semantics):
        sem = res.semantics[
            ["encoder_3d", "encoder_text", "space", "rho_attr", "rho_geom", "partial_attr", "partial_geom"]
        ]
        lines += [
            "## Semantics vs geometry (Spearman with caption-attribute / Chamfer distance)\n",
            _md(sem),
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2k anchors, 2 seeds, 300 queries")
    ap.add_argument("--encoders-3d", default="pointnet")
    ap.add_argument("--encoders-text", default="minilm")
    ap.add_argument("--anchors", default=None, help="comma-separated anchor counts")
    ap.add_argument("--dims", default="4,8,16,32,64,128")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--n-query", type=int, default=None)
    ap.add_argument("--cca-reg", type=float, default=1e-2)
    ap.add_argument("--n-points", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="run directory root (default ./runs)")
    args = ap.parse_args(argv)

    import torch
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from analysis.alignment.experiment import AlignmentConfig, run_experiment
    from analysis.alignment.run_folder import write_run

    torch.set_num_threads(args.threads)
    ints = lambda s: [int(v) for v in s.split(",") if v.strip()]  # noqa: E731
    cfg = AlignmentConfig(
        seeds=ints(args.seeds) if args.seeds else ([0, 1] if args.quick else [0, 1, 2]),
        encoders_3d=args.encoders_3d.split(","),
        encoders_text=args.encoders_text.split(","),
        n_anchors=ints(args.anchors)
        if args.anchors
        else ([500, 2000] if args.quick else [1000, 4000, 16000]),
        n_query=args.n_query or (300 if args.quick else 500),
        dims=ints(args.dims),
        cca_reg=args.cca_reg,
        n_points=args.n_points,
        n_semantic=150 if args.quick else 300,
        threads=args.threads,
    )
    console = Console()
    started = time.time()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"generating {cfg.n_pool} shapes and encoding", total=None)
        res = run_experiment(
            cfg, progress=lambda d, t, m: bar.update(task, completed=d, total=t, description=m)
        )
    run_dir = write_run(res, cfg, root=args.out, started=started)
    text = report(res, cfg)
    (run_dir / "report.md").write_text(text + "\n")
    console.print(Markdown(text))
    console.print(f"results: {run_dir}  ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
