"""Plotly figures for :func:`~analysis.convergent.experiment.run_convergent` tables.

>>> import pandas as pd
>>> df = pd.DataFrame({"layer": ["fc1"] * 3, "seed_a": 0, "seed_b": 1,
...                    "method": ["hungarian", "semi", "random"], "mean_corr": [0.7, 0.8, 0.0]})
>>> matching_figure(df).data[0].type
'bar'
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from analysis.similarity import similarity_grid_figure
from probes.errors import InputError

__all__ = ["cka_figure", "matching_figure", "sparse_figure"]


def _need(df: pd.DataFrame, cols: set[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame) or not cols <= set(df.columns) or df.empty:
        raise InputError(f"{what} needs a non-empty DataFrame with columns {sorted(cols)}.")


def matching_figure(matching: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Mean matched correlation per layer and method (bars: mean over seed pairs; error bars: sd)."""
    _need(matching, {"layer", "method", "mean_corr"}, "matching_figure")
    layers = list(dict.fromkeys(matching.layer))
    fig = go.Figure()
    for method in dict.fromkeys(matching.method):
        g = matching[matching.method == method].groupby("layer").mean_corr
        mean, sd = g.mean().reindex(layers), g.std().reindex(layers).fillna(0.0)
        fig.add_bar(x=layers, y=mean, error_y={"type": "data", "array": sd}, name=method)
    fig.update_layout(
        barmode="group",
        title=title or "Matched unit correlation across seeds",
        xaxis_title="layer",
        yaxis_title="mean correlation of matched units",
    )
    return fig


def sparse_figure(sparse: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Held-out normalised error vs lasso penalty per layer; dense and one-to-one as dashed lines."""
    _need(sparse, {"layer", "method", "alpha", "error"}, "sparse_figure")
    fig = go.Figure()
    lasso = sparse[sparse.method == "lasso"]
    alphas = sorted(lasso.alpha.unique())
    for i, layer in enumerate(dict.fromkeys(sparse.layer)):
        color = f"hsl({(i * 97) % 360}, 60%, 45%)"
        sub = lasso[lasso.layer == layer].groupby("alpha")[["error", "nonzero"]].mean().reindex(alphas)
        fig.add_scatter(
            x=alphas,
            y=sub.error,
            mode="lines+markers",
            name=f"{layer} lasso",
            line={"color": color},
            customdata=sub.nonzero,
            hovertemplate="alpha %{x}<br>error %{y:.3f}<br>nonzero %{customdata:.1f}",
        )
        for method, dash in (("dense", "dot"), ("one_to_one", "dash")):
            err = sparse[(sparse.layer == layer) & (sparse.method == method)].error.mean()
            if alphas and pd.notna(err):
                fig.add_scatter(
                    x=[alphas[0], alphas[-1]],
                    y=[err, err],
                    mode="lines",
                    name=f"{layer} {method}",
                    line={"color": color, "dash": dash},
                )
    fig.update_layout(
        title=title or "Predicting net B's units from net A's (held-out)",
        xaxis={"title": "lasso alpha", "type": "log"},
        yaxis_title="normalised squared error (1 - R²)",
    )
    return fig


def cka_figure(cka: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Layer x layer similarity averaged over seed pairs, as a :func:`similarity_grid_figure` heatmap."""
    _need(cka, {"layer_a", "layer_b", "metric", "value"}, "cka_figure")
    mean = cka.groupby(["layer_a", "layer_b", "metric"], sort=False).value.mean().reset_index()
    return similarity_grid_figure(mean, title=title or "Layer similarity across seeds (mean over pairs)")
