"""Plotly figures for refusal probes and directions (each takes the tidy table the analysis returns)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from analysis.channels.figures import head_label  # the project's head name, L{layer}.H{head}

__all__ = ["HISTOGRAM_MIN", "head_figure", "probe_accuracy_figure", "projection_figure"]

HISTOGRAM_MIN = 40  # fewer projections per class than this are drawn as points (a strip), not bars
_COLOURS = {"harmful": "crimson", "harmless": "seagreen"}


def probe_accuracy_figure(table: pd.DataFrame, title: str = "Linear probe accuracy by layer") -> go.Figure:
    """Lines of train_acc, val_acc and auc against layer (columns as from ``fit_linear_probes``)."""
    fig = go.Figure()
    for col in ("train_acc", "val_acc", "auc"):
        if col in table:
            fig.add_trace(go.Scatter(x=table["layer"], y=table[col], mode="lines+markers", name=col))
    fig.update_layout(
        title=title,
        xaxis={"title": "layer (resid_post)", "dtick": 1},
        yaxis_title="score",
        yaxis_range=[0.4, 1.02],
    )
    return fig


def projection_figure(proj: pd.DataFrame, layer: int | None = None) -> go.Figure:
    """Projections onto the refusal direction, harmful vs harmless: one point per prompt (a jittered strip
    with a box) when a class has fewer than :data:`HISTOGRAM_MIN` prompts, else overlaid histograms.

    >>> df = pd.DataFrame({"label": ["harmful"] * 6 + ["harmless"] * 6, "projection": range(12)})
    >>> [t.type for t in projection_figure(df).data]
    ['box', 'box']
    """
    fig = go.Figure()
    small = proj["label"].value_counts().min() < HISTOGRAM_MIN
    for label, colour in _COLOURS.items():
        part = proj[proj["label"] == label]
        if small:
            fig.add_trace(
                go.Box(
                    x=part["projection"], name=f"{label} (n={len(part)})", marker_color=colour,
                    boxpoints="all", jitter=0.5, pointpos=0, orientation="h",
                )
            )  # fmt: skip
        else:
            fig.add_trace(
                go.Histogram(x=part["projection"], name=label, marker_color=colour, opacity=0.6, nbinsx=30)
            )
    where = f" (layer {layer})" if layer is not None else ""
    fig.update_layout(
        title=f"Projection onto the refusal direction{where}",
        xaxis_title="x · r̂",
        yaxis_title=None if small else "count",
        showlegend=not small,
        barmode="overlay",
    )
    return fig


def head_figure(heads: pd.DataFrame, top: int = 20) -> go.Figure:
    """Bar chart of the ``top`` heads by direct attribution onto r̂ (harmful − harmless); the title is
    short and wrapped so it fits a half-width column."""
    part = heads.nlargest(top, "diff")
    labels = [head_label((a, b)) for a, b in zip(part["layer"], part["head"], strict=True)]
    fig = go.Figure(go.Bar(x=labels, y=part["diff"], marker_color="indianred"))
    fig.update_layout(
        title=dict(
            text=f"Top {len(part)} heads writing the refusal direction<br>"
            "<sup>harmful − harmless, last token</sup>"
        ),  # fmt: skip
        xaxis_title="head",
        yaxis_title="mean head_out · r̂ difference",
        margin=dict(t=70),
    )
    return fig
