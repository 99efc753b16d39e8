"""Layer-by-layer similarity grids: a tidy DataFrame and a plotly heatmap of it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from analysis.arrays import Activations, Device, as_matrix, resolve_device
from probes.errors import InputError

from .cca import cca_similarity, pwcca, svcca
from .cka import cka, linear_cka
from .knn import cknna, mutual_knn
from .rsa import rsa
from .shape import procrustes_distance, procrustes_similarity, shape_distance

__all__ = ["METRICS", "similarity_grid", "similarity_grid_figure"]

MetricFn = Callable[..., float]

METRICS: dict[str, MetricFn] = {
    "linear_cka": linear_cka,
    "debiased_cka": partial(linear_cka, debiased=True),
    "rbf_cka": partial(cka, kernel="rbf"),
    "cca": cca_similarity,
    "svcca": svcca,
    "pwcca": pwcca,
    "procrustes": procrustes_similarity,
    "procrustes_distance": procrustes_distance,
    "shape_distance": shape_distance,
    "rsa": rsa,
    "mutual_knn": mutual_knn,
    "cknna": cknna,
}
"""Built-in metrics by name; each is ``f(x, y, *, dtype, device) -> float`` with default options."""


def _layers(acts: Sequence[Activations] | Mapping[Any, Activations], name: str) -> list[tuple[str, Any]]:
    if isinstance(acts, Mapping):
        items = [(str(k), v) for k, v in acts.items()]
    elif isinstance(acts, Sequence) and not isinstance(acts, str):
        items = [(str(i), v) for i, v in enumerate(acts)]
    else:
        raise InputError(
            f"{name} must be a list of [n, d] activation matrices or a dict layer name -> matrix, "
            f"got {type(acts).__name__}."
        )
    if not items:
        raise InputError(f"{name} is empty; pass at least one layer's activations.")
    return items


def _resolve_metrics(
    metrics: str | Sequence[str] | Mapping[str, MetricFn],
) -> list[tuple[str, MetricFn, bool]]:
    """(name, function, built-in?) triples."""
    if isinstance(metrics, str):
        metrics = [metrics]
    if isinstance(metrics, Mapping):
        out = []
        for name, fn in metrics.items():
            if not callable(fn):
                raise InputError(
                    f"metric {name!r} must be a callable f(x, y) -> float, got {type(fn).__name__}."
                )
            out.append((str(name), fn, False))
        return out
    out = []
    for name in metrics:
        if name not in METRICS:
            raise InputError(
                f"unknown metric {name!r}; choose from {sorted(METRICS)} or pass a dict name -> f(x, y)."
            )
        out.append((name, METRICS[name], True))
    if not out:
        raise InputError("no metrics given; pass e.g. metrics=['linear_cka'].")
    return out


def similarity_grid(
    acts_a: Sequence[Activations] | Mapping[Any, Activations],
    acts_b: Sequence[Activations] | Mapping[Any, Activations] | None = None,
    *,
    metrics: str | Sequence[str] | Mapping[str, MetricFn] = "linear_cka",
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> pd.DataFrame:
    """Every layer of ``acts_a`` against every layer of ``acts_b`` (default: ``acts_a`` itself).

    Layers are ``[n, d_l]`` matrices over the same n samples (widths may differ), given as a list (names
    "0", "1", ...) or a dict (names = keys). ``metrics`` are names from :data:`METRICS` or a dict
    ``name -> f(x, y) -> float`` (custom functions receive converted tensors). Returns a tidy DataFrame
    with columns ``layer_a, layer_b, metric, value``, ``layer_a`` outermost.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(40, 6))
    >>> df = similarity_grid({"l0": x, "l1": np.tanh(x)}, metrics=["linear_cka", "rsa"])
    >>> df.shape, list(df.columns)
    ((8, 4), ['layer_a', 'layer_b', 'metric', 'value'])
    >>> float(df.query("layer_a == 'l0' and layer_b == 'l0' and metric == 'linear_cka'").value.iloc[0])
    1.0
    """
    la = _layers(acts_a, "acts_a")
    lb = la if acts_b is None else _layers(acts_b, "acts_b")
    fns = _resolve_metrics(metrics)
    dev = resolve_device(device, *(v for _, v in la), *(v for _, v in lb))
    free = all(builtin for _, _, builtin in fns)  # the built-in metrics are all scale invariant
    ta = [(n, as_matrix(v, f"acts_a[{n!r}]", dtype=dtype, device=dev, scale_free=free)) for n, v in la]
    tb = (
        ta
        if acts_b is None
        else [(n, as_matrix(v, f"acts_b[{n!r}]", dtype=dtype, device=dev, scale_free=free)) for n, v in lb]
    )
    sizes = {t.shape[0] for _, t in ta} | {t.shape[0] for _, t in tb}
    if len(sizes) > 1:
        raise InputError(
            f"all layers must have the same number of samples (rows), got {sorted(sizes)}; every layer must "
            f"be evaluated on the same inputs."
        )
    rows = []
    for name_a, xa in ta:
        for name_b, xb in tb:
            for mname, fn, builtin in fns:
                value = fn(xa, xb, dtype=dtype, device=dev) if builtin else fn(xa, xb)
                rows.append((name_a, name_b, mname, float(value)))
    return pd.DataFrame(rows, columns=["layer_a", "layer_b", "metric", "value"])


def similarity_grid_figure(df: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Heatmap(s) of a :func:`similarity_grid` DataFrame: one panel per metric, layer_a rows, layer_b columns.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(30, 4))
    >>> fig = similarity_grid_figure(similarity_grid([x, x**2]))
    >>> len(fig.data), fig.data[0].type
    (1, 'heatmap')
    """
    required = {"layer_a", "layer_b", "metric", "value"}
    if not isinstance(df, pd.DataFrame) or not required <= set(df.columns):
        raise InputError(
            f"df must be a DataFrame with columns {sorted(required)} (the output of similarity_grid)."
        )
    if df.empty:
        raise InputError("df is empty; there is nothing to plot.")
    metrics = list(dict.fromkeys(df["metric"]))
    order_a = list(dict.fromkeys(df["layer_a"].astype(str)))
    order_b = list(dict.fromkeys(df["layer_b"].astype(str)))
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics, horizontal_spacing=0.08)
    for i, metric in enumerate(metrics, start=1):
        sub = df[df["metric"] == metric].assign(
            layer_a=lambda d: d["layer_a"].astype(str), layer_b=lambda d: d["layer_b"].astype(str)
        )
        grid = sub.pivot_table(index="layer_a", columns="layer_b", values="value", aggfunc="mean")
        grid = grid.reindex(index=order_a, columns=order_b)
        fig.add_trace(
            go.Heatmap(
                z=grid.to_numpy(),
                x=order_b,
                y=order_a,
                colorscale="Viridis",
                colorbar={"x": i / len(metrics) - 0.02, "len": 0.9, "thickness": 12},
                hovertemplate="layer_a %{y}<br>layer_b %{x}<br>" + metric + " %{z:.4f}<extra></extra>",
                name=metric,
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text="layer_b", type="category", row=1, col=i)
        fig.update_yaxes(title_text="layer_a" if i == 1 else None, type="category", row=1, col=i)
    fig.update_layout(title=title, width=max(420, 380 * len(metrics)), height=420)
    return fig
