"""Plots of a channel scan: the head×head grid of the strongest component and one pair's component bars.

Pure functions of DataFrames (no model, no Streamlit); the dashboard's channels page and notebooks draw
them. A *pair* is ``(sender, receiver)`` heads with ``receiver_layer > sender_layer``.

>>> summary = pd.DataFrame({"mode": ["Q"], "sender_layer": [0], "sender_head": [1], "receiver_layer": [1],
...     "receiver_head": [0], "component": [2], "score": [0.5], "z": [4.0]})
>>> fig = grid_figure(grid_frame(summary, "Q", 3.0, n_heads=2), n_layers=2, n_heads=2, mode="Q", z_min=3.0)
>>> fig.data[0].customdata.tolist()
[[0.0, 1.0, 1.0, 0.0, 4.0, 2.0, 0.5]]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["GRID_CUSTOMDATA", "component_figure", "grid_figure", "grid_frame", "head_label"]

# the grid markers' customdata columns (the dashboard's selection logic reads the first five)
GRID_CUSTOMDATA = (
    "sender_layer",
    "sender_head",
    "receiver_layer",
    "receiver_head",
    "z",
    "component",
    "score",
)
WEBGL_ABOVE = 4000  # pairs drawn with WebGL markers (Scattergl) above this many


def head_label(head: tuple[int, int]) -> str:
    """``L<layer>.H<head>``, the label of a ``(layer, head)`` in every channel plot and table.

    >>> head_label((2, 3))
    'L2.H3'
    """
    return f"L{int(head[0])}.H{int(head[1])}"


def grid_frame(summary: pd.DataFrame, mode: str, z_min: float, n_heads: int) -> pd.DataFrame:
    """Lay out :func:`analysis.channels.head_pair_summary` rows of one ``mode`` for :func:`grid_figure`.

    Adds ``x`` (receiver index ``layer·n_heads + head``), ``y`` (sender index), ``sender`` and
    ``receiver`` labels (``L<layer>.H<head>``) and ``shown`` (``z >= z_min``); rows sorted by ``(y, x)``.

    >>> df = pd.DataFrame({"mode": ["Q", "K"], "sender_layer": [0, 0], "sender_head": [1, 1],
    ...     "receiver_layer": [1, 1], "receiver_head": [2, 2], "component": [3, 4], "score": [.5, .6],
    ...     "z": [4.0, 1.0]})
    >>> grid_frame(df, "Q", 2.0, n_heads=4)[["x", "y", "sender", "receiver", "shown"]].values.tolist()
    [[6, 1, 'L0.H1', 'L1.H2', True]]
    """
    df = summary[summary["mode"].astype(str) == mode].copy()
    df["x"] = df["receiver_layer"].astype(int) * n_heads + df["receiver_head"].astype(int)
    df["y"] = df["sender_layer"].astype(int) * n_heads + df["sender_head"].astype(int)
    df["sender"] = [head_label(h) for h in zip(df["sender_layer"], df["sender_head"], strict=True)]
    df["receiver"] = [head_label(h) for h in zip(df["receiver_layer"], df["receiver_head"], strict=True)]
    df["shown"] = df["z"].astype(float) >= float(z_min)
    return df.sort_values(["y", "x"]).reset_index(drop=True)


def grid_figure(grid: pd.DataFrame, n_layers: int, n_heads: int, mode: str, z_min: float) -> go.Figure:
    """Head×head grid of square markers (sender rows, receiver columns) from :func:`grid_frame`, coloured
    by the strongest component's z; pairs below ``z_min`` are drawn faint grey (still clickable).

    Up to two traces: the faint pairs, then the shown ones (Viridis, colour bar from ``z_min``).
    ``customdata`` is numeric, ``[n_pairs, 7]`` float32 in :data:`GRID_CUSTOMDATA` order, so that
    plotly sends it as packed binary arrays; WebGL markers above :data:`WEBGL_ABOVE` pairs.
    """
    n = n_layers * n_heads
    labels = [head_label(divmod(i, n_heads)) for i in range(n)]
    size = max(4, min(26, int(560 / max(n, 1))))
    trace = go.Scattergl if len(grid) > WEBGL_ABOVE else go.Scatter
    hover = (
        "L%{customdata[0]}.H%{customdata[1]} → L%{customdata[2]}.H%{customdata[3]}<br>component %{customdata[5]}"
        "<br>score %{customdata[6]:.3f}<br>z %{customdata[4]:.2f}<extra></extra>"
    )
    fig = go.Figure()
    for shown, part in ((False, grid[~grid["shown"]]), (True, grid[grid["shown"]])):
        if part.empty:
            continue
        marker = dict(symbol="square", size=size, line=dict(width=0))
        if shown:
            marker.update(
                color=part["z"].to_numpy(np.float32),
                colorscale="Viridis",
                colorbar=dict(title="z"),
                cmin=z_min,
            )
        else:
            marker.update(color="rgba(180,180,180,0.35)")
        fig.add_trace(
            trace(
                x=part["x"].to_numpy(np.int32),
                y=part["y"].to_numpy(np.int32),
                mode="markers",
                marker=marker,
                customdata=part[list(GRID_CUSTOMDATA)].to_numpy(np.float32),
                hovertemplate=hover,
                showlegend=False,
            )
        )
    ticks = list(range(0, n, max(1, n // 24)))
    axis = dict(
        tickvals=ticks,
        ticktext=[labels[i] for i in ticks],
        range=[-0.5, n - 0.5],
        showgrid=False,
        zeroline=False,
    )
    fig.update_layout(
        title=f"Strongest {mode}-composition component per head pair",
        xaxis=dict(title="receiver head", **axis),
        yaxis=dict(title="sender head", autorange=False, **{**axis, "range": [n - 0.5, -0.5]}),
        height=620,
        margin=dict(l=60, r=20, t=50, b=60),
        # no dragmode/clickmode: Streamlit then uses pan + "event+select", so a click selects a square
    )
    return fig


def component_figure(rows: pd.DataFrame, band: Mapping[str, float], title: str) -> go.Figure:
    """Bars of a sender's component scores against one receiver (``rows``: ``component, score, z``), with
    the receiver's null band ``{null_mean, null_std, null_p99}``: mean ± 2 std shaded, p99 dashed.

    Bars above the null's 99th percentile are crimson, the others steel blue.
    """
    fig = go.Figure(
        go.Bar(
            x=rows["component"],
            y=rows["score"],
            marker_color=["crimson" if s > band["null_p99"] else "steelblue" for s in rows["score"]],
            customdata=rows[["z"]].to_numpy(),
            hovertemplate="component %{x}<br>score %{y:.3f}<br>z %{customdata[0]:.2f}<extra></extra>",
        )
    )
    lo, hi = band["null_mean"] - 2 * band["null_std"], band["null_mean"] + 2 * band["null_std"]
    fig.add_hrect(y0=max(lo, 0.0), y1=hi, fillcolor="grey", opacity=0.2, line_width=0)
    fig.add_hline(y=band["null_p99"], line_dash="dash", line_color="grey", annotation_text="null p99")
    fig.update_layout(
        title=title,
        xaxis_title="sender component (0 = largest singular value)",
        yaxis_title="score",
        height=320,
        margin=dict(l=50, r=20, t=50, b=40),
    )
    return fig
