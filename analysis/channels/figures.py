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

__all__ = [
    "GRID_CUSTOMDATA",
    "colour_top",
    "component_figure",
    "grid_figure",
    "grid_frame",
    "head_label",
    "layer_figure",
    "layer_frame",
    "zoom",
]

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
CLIP_PERCENTILE = 99  # the colour scale ends at this percentile of the shown z (outliers get the top colour)
GRID_PX = 520  # side of the grid's plotting area in pixels (narrow the layer ranges for bigger squares)
MIN_SQUARE_PX = 3


def head_label(layer, head: int | None = None) -> str:
    """``L<layer>.H<head>``, the one label of a head in every plot and table of the dashboard.

    Takes ``(layer, head)`` as two numbers or as one tuple.

    >>> head_label(21, 1), head_label((2, 3))
    ('L21.H1', 'L2.H3')
    """
    if head is None:
        layer, head = layer
    return f"L{int(layer)}.H{int(head)}"


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


def zoom(grid: pd.DataFrame, senders: tuple[int, int], receivers: tuple[int, int]) -> pd.DataFrame:
    """Rows of :func:`grid_frame` whose sender layer is in ``senders`` and receiver layer in
    ``receivers`` (inclusive ``(first, last)`` layer ranges)."""
    keep = grid["sender_layer"].between(*senders) & grid["receiver_layer"].between(*receivers)
    return grid[keep]


def colour_top(z: pd.Series, z_min: float) -> float:
    """Top of the colour scale: the :data:`CLIP_PERCENTILE`-th percentile of ``z`` (above ``z_min``).

    >>> colour_top(pd.Series(np.r_[np.arange(100.0), 5000.0]), 0.0)
    99.0
    """
    if z.empty:
        return z_min + 1.0
    return max(float(np.percentile(z.to_numpy(np.float64), CLIP_PERCENTILE)), z_min + 1e-6)


def square_px(n_rows: int, n_cols: int) -> int:
    """Side of one grid square in pixels when ``n_rows × n_cols`` heads share :data:`GRID_PX`."""
    return max(MIN_SQUARE_PX, min(40, int(GRID_PX / max(n_rows, n_cols, 1))))


def _layer_axis(layers: tuple[int, int], n_heads: int, title: str, reverse: bool = False) -> dict:
    """Ticks on layer centres (``L<layer>``, thinned to about 16), grid lines at layer boundaries."""
    first, last = layers
    step = max(1, (last - first + 1) // 16)
    centres = list(range(first, last + 1, step))
    lo, hi = first * n_heads - 0.5, (last + 1) * n_heads - 0.5
    return dict(
        title=title,
        tickvals=[la * n_heads + (n_heads - 1) / 2 for la in centres],
        ticktext=[f"L{la}" for la in centres],
        range=[hi, lo] if reverse else [lo, hi],
        autorange=False,
        showgrid=False,
        zeroline=False,
        minor=dict(
            tickvals=[la * n_heads - 0.5 for la in range(first, last + 2)],
            showgrid=True,
            gridcolor="rgba(0,0,0,0.25)",
            gridwidth=1,
            ticks="",
        ),
    )


def grid_figure(
    grid: pd.DataFrame,
    n_layers: int,
    n_heads: int,
    mode: str,
    z_min: float,
    senders: tuple[int, int] | None = None,
    receivers: tuple[int, int] | None = None,
    z_note: str = "",
) -> go.Figure:
    """Head×head grid of square markers (sender rows, receiver columns) from :func:`grid_frame`, coloured
    by the strongest component's z; pairs below ``z_min`` are drawn faint grey (still clickable).

    ``senders`` / ``receivers``: inclusive layer ranges to draw (default all). The colour scale runs from
    ``z_min`` to the :data:`CLIP_PERCENTILE`-th percentile of the shown z (said in the colour bar's
    title; hover shows the true z). Ticks label layers; thin lines mark layer boundaries.
    ``customdata`` is numeric, ``[n_pairs, 7]`` float32 in :data:`GRID_CUSTOMDATA` order, so that
    plotly sends it as packed binary arrays; WebGL markers above :data:`WEBGL_ABOVE` pairs.
    """
    senders = senders or (0, n_layers - 2)
    receivers = receivers or (1, n_layers - 1)
    grid = zoom(grid, senders, receivers)
    n_rows = (senders[1] - senders[0] + 1) * n_heads
    n_cols = (receivers[1] - receivers[0] + 1) * n_heads
    px = square_px(n_rows, n_cols)
    trace = go.Scattergl if len(grid) > WEBGL_ABOVE else go.Scatter
    hover = (
        "L%{customdata[0]}.H%{customdata[1]} → L%{customdata[2]}.H%{customdata[3]}<br>component %{customdata[5]}"
        "<br>score %{customdata[6]:.3f}<br>z %{customdata[4]:.2f}<extra></extra>"
    )
    shown_z = grid.loc[grid["shown"], "z"].astype(float)
    top = colour_top(shown_z, z_min)
    fig = go.Figure()
    for shown, part in ((False, grid[~grid["shown"]]), (True, grid[grid["shown"]])):
        if part.empty:
            continue
        marker = dict(symbol="square", size=max(2, px - 1), line=dict(width=0))
        if shown:
            title = f"z (colour clipped at p{CLIP_PERCENTILE} = {top:.1f}{z_note})"
            marker.update(
                color=part["z"].to_numpy(np.float32),
                colorscale="Viridis",
                colorbar=dict(title=dict(text=title, side="right")),
                cmin=z_min,
                cmax=top,
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
                unselected=dict(marker=dict(opacity=0.6)),  # after a click the others stay readable
                showlegend=False,
            )
        )
    fig.update_layout(
        title=f"Strongest {mode}-composition component per head pair",
        xaxis=_layer_axis(receivers, n_heads, "receiver layer (one column per head)"),
        yaxis=_layer_axis(senders, n_heads, "sender layer (one row per head)", reverse=True),
        width=px * n_cols + 190,
        height=px * n_rows + 130,
        # fixed margins (no autoexpand): else plotly draws the grid twice to fit the colour bar
        margin=dict(l=70, r=120, t=50, b=60, autoexpand=False),
        # no dragmode/clickmode: Streamlit then uses pan + "event+select", so a click selects a square
    )
    return fig


def layer_frame(grid: pd.DataFrame) -> pd.DataFrame:
    """Per (sender layer, receiver layer) block of :func:`grid_frame`: the strongest pair and how many
    pairs are shown (``sender_layer, receiver_layer, z, sender, receiver, n_shown, n_pairs``).

    >>> g = pd.DataFrame({"sender_layer": [0, 0], "receiver_layer": [1, 1], "z": [2.0, 5.0],
    ...     "sender": ["L0.H0", "L0.H1"], "receiver": ["L1.H0", "L1.H0"], "shown": [False, True]})
    >>> layer_frame(g)[["z", "sender", "n_shown", "n_pairs"]].values.tolist()
    [[5.0, 'L0.H1', 1, 2]]
    """
    keys = ["sender_layer", "receiver_layer"]
    best = grid.loc[grid.groupby(keys)["z"].idxmax().to_numpy(), [*keys, "z", "sender", "receiver"]]
    counts = grid.groupby(keys).agg(n_shown=("shown", "sum"), n_pairs=("shown", "size")).reset_index()
    return best.merge(counts, on=keys).reset_index(drop=True)


def layer_figure(blocks: pd.DataFrame, n_layers: int, z_min: float, top: float) -> go.Figure:
    """Layer×layer map of :func:`layer_frame`: one square per (sender layer, receiver layer) block,
    coloured by its strongest pair's z (same scale as the head grid); click one to zoom the grid there.
    ``customdata`` rows: ``sender_layer, receiver_layer, z, n_shown, n_pairs``."""
    px = square_px(n_layers, n_layers) // 2
    fig = go.Figure(
        go.Scatter(
            x=blocks["receiver_layer"],
            y=blocks["sender_layer"],
            mode="markers",
            marker=dict(
                symbol="square",
                size=max(4, px - 1),
                color=blocks["z"],
                colorscale="Viridis",
                cmin=z_min,
                cmax=top,
                showscale=False,
                line=dict(width=0),
            ),
            customdata=blocks[["sender_layer", "receiver_layer", "z", "n_shown", "n_pairs"]].to_numpy(
                np.float32
            ),
            text=blocks["sender"] + " → " + blocks["receiver"],
            hovertemplate="layer %{customdata[0]} → layer %{customdata[1]}<br>strongest %{text}, "
            "z %{customdata[2]:.2f}<br>%{customdata[3]} of %{customdata[4]} pairs shown<extra></extra>",
            showlegend=False,
        )
    )
    axis = dict(dtick=max(1, n_layers // 10), showgrid=False, zeroline=False)
    fig.update_layout(
        title=dict(text="Layer map<br><sup>click a block to zoom</sup>", font_size=14),
        xaxis=dict(title="receiver layer", range=[-0.5, n_layers - 0.5], **axis),
        yaxis=dict(title="sender layer", range=[n_layers - 0.5, -0.5], **axis),
        width=px * n_layers + 110,
        height=px * n_layers + 120,
        margin=dict(l=60, r=10, t=50, b=50, autoexpand=False),
    )
    return fig


def component_figure(rows: pd.DataFrame, band: Mapping[str, float], title: str) -> go.Figure:
    """Bars of a sender's component scores against one receiver (``rows``: ``component, score, z``), with
    the receiver's null band ``{null_mean, null_std, null_p99}``: mean ± 2 std shaded, p99 dashed.

    Two legend entries say what the colours mean: crimson bars score above the null's 99th percentile
    (stronger than 99% of random directions), steel-blue bars do not.

    >>> rows = pd.DataFrame({"component": [0, 1], "score": [0.9, 0.1], "z": [5.0, 0.2]})
    >>> fig = component_figure(rows, {"null_mean": 0.1, "null_std": 0.05, "null_p99": 0.3}, "t")
    >>> [(t.name, t.x.tolist()) for t in fig.data]
    [('above the null p99', [0]), ('within the null', [1])]
    """
    above = rows["score"].to_numpy() > band["null_p99"]
    fig = go.Figure()
    for mask, name, colour in (
        (above, "above the null p99", "crimson"),
        (~above, "within the null", "steelblue"),
    ):
        part = rows[mask]
        fig.add_trace(
            go.Bar(
                x=part["component"],
                y=part["score"],
                name=name,
                marker_color=colour,
                customdata=part[["z"]].to_numpy(),
                hovertemplate="component %{x}<br>score %{y:.3f}<br>z %{customdata[0]:.2f}<extra></extra>",
            )
        )
    lo, hi = band["null_mean"] - 2 * band["null_std"], band["null_mean"] + 2 * band["null_std"]
    fig.add_hrect(
        y0=max(lo, 0.0), y1=hi, fillcolor="grey", opacity=0.2, line_width=0,
        annotation_text="null mean ± 2 std", annotation_position="top left",
    )  # fmt: skip
    fig.add_hline(y=band["null_p99"], line_dash="dash", line_color="grey", annotation_text="null p99")
    fig.update_layout(
        title=title,
        xaxis_title="sender component (0 = largest singular value)",
        yaxis_title="composition score",
        height=340,
        barmode="overlay",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
        margin=dict(l=50, r=20, t=70, b=40, autoexpand=False),
    )
    return fig
