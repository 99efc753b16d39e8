"""Plotly figures of the 3D <-> text alignment experiments (the CLI, benchmark and notebooks share them).

* :func:`retrieval_vs_d_figure` - a metric against the CCA subspace dimension ``d`` (one line per
  subspace method, full-space methods as horizontal reference lines), mean +- sd over seeds;
* :func:`retrieval_vs_anchors_figure` - a metric against the number of anchors (one line per method,
  subspace methods at their best ``d``);
* :func:`point_cloud_figure` - a 3D scatter view of one point cloud, titled with its caption.

>>> import numpy as np
>>> fig = point_cloud_figure(np.zeros((10, 3)), "a small box")
>>> fig.data[0].type, fig.layout.title.text
('scatter3d', 'a small box')
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from jaxtyping import Float

from probes.errors import InputError

__all__ = ["point_cloud_figure", "retrieval_vs_anchors_figure", "retrieval_vs_d_figure"]

_KEYS = ["encoder_3d", "encoder_text", "method", "n_anchors", "d"]


def _need(df: pd.DataFrame, metric: str) -> None:
    missing = [c for c in [*_KEYS, "seed", metric] if c not in df.columns]
    if missing:
        raise InputError(f"results table lacks columns {missing}; pass the table returned by run_alignment.")


def _mean_sd(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    g = df.assign(d=df["d"].fillna(-1)).groupby(_KEYS, sort=True)[metric]
    out = g.agg(["mean", "std"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["d"] = out["d"].astype(int)
    return out


def _mean_sd_line(stats: pd.DataFrame, x: str, name: str) -> go.Scatter:
    """Mean against column ``x`` with sd error bars (rows of :func:`_mean_sd`)."""
    return go.Scatter(
        x=stats[x], y=stats["mean"], error_y={"array": stats["std"]}, mode="lines+markers", name=name
    )


def retrieval_vs_d_figure(
    results: pd.DataFrame, metric: str = "t2s_top1", *, n_anchors: int | None = None
) -> go.Figure:
    """``metric`` against ``d`` at ``n_anchors`` (default: the largest), one line per method and encoder pair.

    >>> df = pd.DataFrame({"encoder_3d": "p", "encoder_text": "t", "method": ["affine", "cca_affine", "cca_affine"],
    ...                    "n_anchors": 10, "d": [None, 2, 4], "seed": 0, "t2s_top1": [0.1, 0.3, 0.2]})
    >>> [t.name for t in retrieval_vs_d_figure(df).data]
    ['p x t: cca_affine', 'p x t: affine']
    """
    _need(results, metric)
    stats = _mean_sd(results, metric)
    n_a = int(stats["n_anchors"].max()) if n_anchors is None else int(n_anchors)
    stats = stats[stats["n_anchors"] == n_a]
    if stats.empty:
        raise InputError(
            f"no results at n_anchors = {n_a}; choose one of {sorted(results['n_anchors'].unique())}."
        )
    fig = go.Figure()
    dims = sorted(d for d in stats["d"].unique() if d > 0)
    for (e3, et, method), g in stats.groupby(["encoder_3d", "encoder_text", "method"], sort=False):
        sub = g[g["d"] > 0].sort_values("d")
        if len(sub):
            fig.add_trace(_mean_sd_line(sub, "d", f"{e3} x {et}: {method}"))
    for (e3, et, method), g in stats[stats["d"] < 0].groupby(
        ["encoder_3d", "encoder_text", "method"], sort=False
    ):
        y = float(g["mean"].iloc[0])
        fig.add_trace(
            go.Scatter(
                x=[min(dims, default=1), max(dims, default=1)],
                y=[y, y],
                mode="lines",
                line={"dash": "dash"},
                name=f"{e3} x {et}: {method}",
            )
        )
    fig.update_layout(
        title=f"{metric} vs CCA subspace dimension ({n_a} anchors; full-space methods dashed)",
        xaxis={"title": "d", "type": "log"},
        yaxis={"title": metric},
    )
    return fig


def retrieval_vs_anchors_figure(results: pd.DataFrame, metric: str = "t2s_top1") -> go.Figure:
    """``metric`` against the anchor count; subspace methods at the ``d`` with the best mean over all counts.

    >>> df = pd.DataFrame({"encoder_3d": "p", "encoder_text": "t", "method": "affine", "n_anchors": [10, 20],
    ...                    "d": None, "seed": 0, "t2s_top1": [0.1, 0.2]})
    >>> retrieval_vs_anchors_figure(df).data[0].y.tolist()
    [0.1, 0.2]
    """
    _need(results, metric)
    stats = _mean_sd(results, metric)
    fig = go.Figure()
    for (e3, et, method), g in stats.groupby(["encoder_3d", "encoder_text", "method"], sort=False):
        best_d = g.groupby("d")["mean"].mean().idxmax()
        sub = g[g["d"] == best_d].sort_values("n_anchors")
        label = f"{e3} x {et}: {method}" + (f" (d={best_d})" if best_d > 0 else "")
        fig.add_trace(_mean_sd_line(sub, "n_anchors", label))
    fig.update_layout(
        title=f"{metric} vs number of anchors",
        xaxis={"title": "anchors", "type": "log"},
        yaxis={"title": metric},
    )
    return fig


def point_cloud_figure(
    points: Float[np.ndarray, "n 3"], caption: str = "", *, size: float = 2.0, height: int = 360
) -> go.Figure:
    """3D scatter of a ``[n, 3]`` cloud (z up, equal axis scales), titled ``caption``.

    The scene is a cube whose three axes span the same range around the cloud's centre (padded 5 %), so
    a tall or flat shape keeps its proportions and the default camera sees all of it (with
    ``aspectmode="data"`` a tall shape was clipped at the bottom of a short panel); the scene takes the
    whole panel below the title.

    >>> fig = point_cloud_figure(np.array([[0, 0, 0], [0, 0, 2.0]]))
    >>> fig.layout.scene.zaxis.range, fig.layout.scene.xaxis.range
    ((-0.05, 2.05), (-1.05, 1.05))
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) == 0:
        raise InputError(f"points must be a non-empty [n, 3] array, got shape {p.shape}.")
    lo, hi = p.min(0), p.max(0)
    mid, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6) * 1.05
    axes = {
        f"{a}axis": {"range": (round(m - half, 6), round(m + half, 6)), "title": a, "showticklabels": False}
        for a, m in zip("xyz", mid, strict=True)
    }
    fig = go.Figure(
        go.Scatter3d(
            x=p[:, 0],
            y=p[:, 1],
            z=p[:, 2],
            mode="markers",
            marker={"size": size, "color": p[:, 2], "colorscale": "Viridis"},
        )
    )
    fig.update_layout(
        title={"text": caption, "font": {"size": 13}, "y": 0.97, "yanchor": "top"},
        scene={**axes, "aspectmode": "cube", "domain": {"x": [0, 1], "y": [0, 0.9]},
               "camera": {"eye": {"x": 1.3, "y": 1.3, "z": 0.8}}},
        height=height,
        margin={"l": 0, "r": 0, "b": 0, "t": 36},
    )  # fmt: skip
    return fig
