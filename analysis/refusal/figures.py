"""Plotly figures for refusal probes and directions (each takes the tidy table the analysis returns)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

__all__ = ["head_figure", "probe_accuracy_figure", "projection_figure"]


def probe_accuracy_figure(table: pd.DataFrame, title: str = "Linear probe accuracy by layer") -> go.Figure:
    """Lines of train_acc, val_acc and auc against layer (columns as from ``fit_linear_probes``)."""
    fig = go.Figure()
    for col in ("train_acc", "val_acc", "auc"):
        if col in table:
            fig.add_trace(go.Scatter(x=table["layer"], y=table[col], mode="lines+markers", name=col))
    fig.add_hline(y=0.95, line_dash="dot", line_color="grey")
    fig.update_layout(
        title=title, xaxis_title="layer (resid_post)", yaxis_title="score", yaxis_range=[0.4, 1.02]
    )
    return fig


def projection_figure(proj: pd.DataFrame, layer: int | None = None) -> go.Figure:
    """Overlaid histograms of projections onto the refusal direction, harmful vs harmless."""
    fig = go.Figure()
    for label, color in (("harmful", "crimson"), ("harmless", "seagreen")):
        part = proj[proj["label"] == label]
        fig.add_trace(
            go.Histogram(x=part["projection"], name=label, marker_color=color, opacity=0.6, nbinsx=30)
        )
    where = f" (layer {layer})" if layer is not None else ""
    fig.update_layout(
        barmode="overlay",
        title=f"Projection onto the refusal direction{where}",
        xaxis_title="x · r̂",
        yaxis_title="count",
    )
    return fig


def head_figure(heads: pd.DataFrame, top: int = 20) -> go.Figure:
    """Bar chart of the ``top`` heads by direct attribution onto r̂ (harmful − harmless)."""
    part = heads.nlargest(top, "diff")
    labels = [f"L{int(a)}H{int(b)}" for a, b in zip(part["layer"], part["head"], strict=True)]
    fig = go.Figure(go.Bar(x=labels, y=part["diff"], marker_color="indianred"))
    fig.update_layout(
        title=f"Top {len(part)} heads writing the refusal direction (harmful − harmless, last token)",
        xaxis_title="head",
        yaxis_title="mean head_out · r̂ difference",
    )
    return fig
