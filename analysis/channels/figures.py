"""Plots of a channel scan: the head×head grid of the strongest component, its layer map, and one pair's
component bars.

Pure functions of DataFrames (no model, no Streamlit); the dashboard's channels page and notebooks draw
them. A *pair* is ``(sender, receiver)`` heads with ``receiver_layer > sender_layer``.

The grid and the layer map are Apache ECharts option dicts (canvas; the dashboard draws them with
``st.echarts_chart``), not plotly figures: on a second app start a one-chart page of 1,539 squares painted
after 1.67 s with plotly's 4.7 MB bundle and after 0.91 s with ECharts' 1.2 MB bundle (2-core CPU,
median of 5; README, *Latency*). Each series reads its own ``dataset`` (a DataFrame), so a selection's
``(series_index, data_indices)`` names rows of ``spec["dataset"]``.

>>> summary = pd.DataFrame({"mode": ["Q"], "sender_layer": [0], "sender_head": [1], "receiver_layer": [1],
...     "receiver_head": [0], "component": [2], "score": [0.5], "z": [4.0]})
>>> chart = grid_chart(grid_frame(summary, "Q", 3.0, n_heads=2), n_layers=2, n_heads=2, mode="Q", z_min=3.0)
>>> chart.spec["dataset"][0]["source"][list(PAIR_COLUMNS)].values.tolist()
[[0.0, 1.0, 1.0, 0.0, 4.0]]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sequential

__all__ = [
    "GRID_ARIA",
    "PAIR_COLUMNS",
    "Chart",
    "GridGeometry",
    "colour_top",
    "component_figure",
    "grid_chart",
    "grid_frame",
    "head_label",
    "layer_chart",
    "layer_frame",
    "z_histogram",
    "zoom",
]

# the columns of every grid dataset row that name its pair (the dashboard's selection reads them)
PAIR_COLUMNS = ("sender_layer", "sender_head", "receiver_layer", "receiver_head", "z")
CLIP_PERCENTILE = 99  # the colour scale ends at this percentile of the shown z (outliers get the top colour)
GRID_PX = 520  # side of the grid's plotting area in pixels (narrow the layer ranges for bigger squares)
MAP_PX = 190  # side of the layer map's plotting area (it shares a row with the grid)
MIN_SQUARE_PX = 3
FAINT = "rgba(180,180,180,0.35)"  # pairs below the threshold
GRID_ARIA = re.compile(  # the grid's accessible description (tests and benchmarks read squares from it)
    r"Head-pair grid of (?P<mode>[QKV]) composition: sender layers (?P<s0>\d+)–(?P<s1>\d+) \(rows\), receiver "
    r"layers (?P<r0>\d+)–(?P<r1>\d+) \(columns\), (?P<n_heads>\d+) heads per layer(; strongest pair "
    r"(?P<sender>L\d+\.H\d+) → (?P<receiver>L\d+\.H\d+))?"
)
SELECTED = {"itemStyle": {"borderColor": "#d62728", "borderWidth": 2}}  # the clicked square


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
    """Lay out :func:`analysis.channels.head_pair_summary` rows of one ``mode`` for :func:`grid_chart`.

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


@dataclass(frozen=True)
class GridGeometry:
    """Where :func:`grid_chart` draws each pair: inclusive layer ranges ``senders`` (rows, top-down) and
    ``receivers`` (columns), one row/column per head, squares of :func:`square_px` pixels.

    >>> g = GridGeometry((0, 1), (1, 2), n_heads=4)
    >>> g.px, g.n_rows, g.n_cols, g.centre((0, 0), (1, 0))
    (40, 8, 8, (90.0, 90.0))
    """

    senders: tuple[int, int]
    receivers: tuple[int, int]
    n_heads: int
    left: int = 70  # pixels from the chart's edge to the plotting area
    top: int = 70

    @property
    def n_rows(self) -> int:
        return (self.senders[1] - self.senders[0] + 1) * self.n_heads

    @property
    def n_cols(self) -> int:
        return (self.receivers[1] - self.receivers[0] + 1) * self.n_heads

    @property
    def px(self) -> int:
        return square_px(self.n_rows, self.n_cols)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the whole chart in pixels (colour bar right, axis names below/left)."""
        return self.left + self.px * self.n_cols + 130, self.top + self.px * self.n_rows + 60

    def centre(self, sender: tuple[int, int], receiver: tuple[int, int]) -> tuple[float, float]:
        """Pixel ``(x, y)`` of a pair's square from the chart's top-left corner."""
        col = (receiver[0] - self.receivers[0]) * self.n_heads + receiver[1]
        row = (sender[0] - self.senders[0]) * self.n_heads + sender[1]
        return self.left + (col + 0.5) * self.px, self.top + (row + 0.5) * self.px


@dataclass(frozen=True)
class Chart:
    """An ECharts option (``spec``) with the pixel size it is laid out for, and for the grid its
    :class:`GridGeometry` (where each pair's square is)."""

    spec: dict
    width: int
    height: int
    geometry: GridGeometry | None = None


def _layer_axis(layers: tuple[int, int], n_heads: int, name: str, top_down: bool = False, **extra) -> dict:
    """A category axis with one category per head: ``L<layer>`` under each layer's middle head (thinned
    to about 16 labels), ticks and thin lines on layer boundaries. ``top_down``: the first layer at the
    top of a vertical axis (categories listed bottom-up; ECharts' ``inverse`` put the lines one head off)."""
    first, last = layers
    step = max(1, (last - first + 1) // 16)
    labels = [
        f"L{la}" if h == n_heads // 2 and (la - first) % step == 0 else ""
        for la in range(first, last + 1)
        for h in range(n_heads)
    ]
    if top_down:
        labels.reverse()
    boundary = {"interval": n_heads - 1}
    return {
        "type": "category",
        "data": labels,
        "name": name,
        "nameLocation": "middle",
        "axisLabel": {"interval": 0, "fontSize": 11},
        "axisTick": {"show": True, **boundary},
        "splitLine": {"show": True, **boundary, "lineStyle": {"color": "rgba(0,0,0,0.25)", "width": 1}},
        **extra,
    }


def _grid_source(part: pd.DataFrame, g: GridGeometry) -> pd.DataFrame:
    """One dataset of :func:`grid_chart`: the pair columns, its square's ``col`` (from the left) and ``row``
    (from the bottom), and the tooltip's labels, score (3 decimals) and component."""
    out = part[list(PAIR_COLUMNS)].astype(np.float64).reset_index(drop=True)
    out["z"] = out["z"].round(2)
    out["col"] = (part["x"].to_numpy() - g.receivers[0] * g.n_heads).astype(np.int64)
    out["row"] = (g.n_rows - 1 - (part["y"].to_numpy() - g.senders[0] * g.n_heads)).astype(np.int64)
    out["sender"] = [
        head_label(la, h) for la, h in zip(part["sender_layer"], part["sender_head"], strict=True)
    ]
    out["receiver"] = [
        head_label(la, h) for la, h in zip(part["receiver_layer"], part["receiver_head"], strict=True)
    ]
    out["component"] = part["component"].astype(np.int64).to_numpy()
    out["score"] = part["score"].astype(np.float64).round(3).to_numpy()
    return out


def grid_chart(
    grid: pd.DataFrame,
    n_layers: int,
    n_heads: int,
    mode: str,
    z_min: float,
    senders: tuple[int, int] | None = None,
    receivers: tuple[int, int] | None = None,
    z_note: str = "",
) -> Chart:
    """Head×head grid (sender rows, receiver columns) of :func:`grid_frame` as an ECharts option: one
    square per pair, coloured by the strongest component's z; pairs below ``z_min`` faint grey (still
    clickable); the :class:`Chart` carries its size and :class:`GridGeometry`.

    ``senders`` / ``receivers``: inclusive layer ranges to draw (default all). The colour scale runs from
    ``z_min`` to the :data:`CLIP_PERCENTILE`-th percentile of the shown z (said in the subtitle; the
    tooltip shows the true z; pairs below ``z_min`` fall out of the colour range and are drawn grey). One
    series reads ``dataset[0]`` (:data:`PAIR_COLUMNS`, ``col``, ``row``, labels, component, score, the
    clipped ``colour``); one click selects one square (``selectedMode``), the box tool several. The
    chart's accessible description names the layer ranges and the strongest pair (:data:`GRID_ARIA`
    reads it back).
    """
    g = GridGeometry(senders or (0, n_layers - 2), receivers or (1, n_layers - 1), n_heads)
    grid = zoom(grid, g.senders, g.receivers)
    shown = grid["shown"].to_numpy(bool)
    top = colour_top(grid.loc[shown, "z"].astype(float), z_min)
    source = _grid_source(grid, g)
    # ECharts greys values outside the visual map's `range` only when they lie inside [min, max]: the
    # pairs below z_min sit just under the range (at `floor`), the outliers at its top
    floor = z_min - max((top - z_min) * 0.01, 1e-3)
    source["colour"] = source["z"].clip(floor, top)
    width, height = g.size
    best = grid.loc[grid["z"].idxmax()] if len(grid) else None
    strongest = (
        f"; strongest pair {best['sender']} → {best['receiver']} (z {best['z']:.2f})"
        if best is not None
        else ""
    )
    described = (
        f"Head-pair grid of {mode} composition: sender layers {g.senders[0]}–{g.senders[1]} (rows), receiver "
        f"layers {g.receivers[0]}–{g.receivers[1]} (columns), {n_heads} heads per layer{strongest}; colour: z "
        f"clipped at p{CLIP_PERCENTILE} = {top:.1f}."
    )
    spec = {
        "animation": False,
        "aria": {"enabled": True, "label": {"description": described}},
        "title": {
            "text": f"Strongest {mode}-composition component per head pair",
            "subtext": f"colour: z, clipped at p{CLIP_PERCENTILE} = {top:.1f}{z_note}; grey: z below {z_min:.2f}",
            "left": 10,
            "textStyle": {"fontSize": 15},
        },
        "grid": {"left": g.left, "top": g.top, "width": g.px * g.n_cols, "height": g.px * g.n_rows},
        "xAxis": _layer_axis(g.receivers, n_heads, "receiver layer (one column per head)", nameGap=25),
        "yAxis": _layer_axis(g.senders, n_heads, "sender layer (one row per head)", True, nameGap=40),
        "dataset": [{"source": source}],
        "series": [
            {
                "type": "scatter",
                "symbol": "rect",
                "symbolSize": max(2, g.px - 1),
                "selectedMode": "single",  # one series: a click replaces the selection
                "encode": {"x": "col", "y": "row"},
                "select": SELECTED,
            }
        ],
        "tooltip": {
            "trigger": "item",
            "formatter": "{@sender} → {@receiver}<br>component {@component}<br>score {@score}<br>z {@z}",
        },
        "toolbox": {
            "right": 10,
            "feature": {
                "brush": {"type": ["rect", "clear"]},
                "saveAsImage": {"name": f"channel_grid_{mode}"},
            },
        },
        "brush": {"xAxisIndex": 0, "yAxisIndex": 0, "throttleType": "debounce"},
        "visualMap": {
            "type": "continuous",
            "dimension": "colour",
            "min": float(floor),
            "max": float(top),
            "range": [float(z_min), float(top)],
            "inRange": {"color": list(sequential.Viridis)},
            "outOfRange": {"color": [FAINT]},
            "text": [f"z {top:.1f}+", f"z {z_min:.2f}"],
            "right": 15,
            "top": g.top,
            "itemHeight": max(60, min(200, g.px * g.n_rows - 40)),
            "calculable": False,
        },
    }
    return Chart(spec, width, height, g)


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


def layer_chart(blocks: pd.DataFrame, n_layers: int, z_min: float, top: float) -> Chart:
    """Layer×layer map of :func:`layer_frame` as an ECharts option: one square per (sender layer, receiver
    layer) block, coloured by its strongest pair's z (same scale as the grid); click one to zoom the grid
    there. ``dataset[0]`` rows: ``sender_layer, receiver_layer, z, n_shown, n_pairs, sender, receiver``.

    >>> blocks = pd.DataFrame({"sender_layer": [0], "receiver_layer": [1], "z": [5.0], "sender": ["L0.H1"],
    ...     "receiver": ["L1.H0"], "n_shown": [1], "n_pairs": [2]})
    >>> chart = layer_chart(blocks, n_layers=2, z_min=3.0, top=6.0)
    >>> chart.spec["dataset"][0]["source"][["sender_layer", "receiver_layer"]].values.tolist()
    [[0, 1]]
    """
    px = max(3, MAP_PX // max(n_layers, 1))  # one block
    source = blocks[
        ["sender_layer", "receiver_layer", "z", "n_shown", "n_pairs", "sender", "receiver"]
    ].copy()
    source = source.reset_index(drop=True).astype({"sender_layer": np.int64, "receiver_layer": np.int64})
    source["z"] = source["z"].astype(np.float64).round(2)
    every = max(1, n_layers // 10)  # label every few layers
    axis = {
        "type": "category",
        "data": [str(la) for la in range(n_layers)],
        "axisLabel": {"interval": every - 1, "fontSize": 10},
        "axisTick": {"interval": every - 1},
        "nameLocation": "middle",
    }
    side = px * n_layers
    spec = {
        "animation": False,
        "title": {
            "text": "Layer map",
            "subtext": "click a block to zoom",
            "left": 5,
            "textStyle": {"fontSize": 14},
        },
        "grid": {"left": 40, "top": 55, "width": side, "height": side},
        "xAxis": {**axis, "name": "receiver layer", "nameGap": 22},
        "yAxis": {**axis, "name": "sender layer", "nameGap": 28, "inverse": True},
        "dataset": [{"source": source}],
        "series": [
            {
                "type": "scatter",
                "symbol": "rect",
                "symbolSize": max(3, px - 1),
                "selectedMode": "single",
                "encode": {"x": "receiver_layer", "y": "sender_layer"},
                "select": SELECTED,
            }
        ],
        "visualMap": {
            "show": False,
            "dimension": "z",
            "min": float(z_min),
            "max": float(top),
            "inRange": {"color": list(sequential.Viridis)},
        },
        "tooltip": {
            "trigger": "item",
            "formatter": "layer {@sender_layer} → layer {@receiver_layer}<br>strongest {@sender} → {@receiver}, "
            "z {@z}<br>{@n_shown} of {@n_pairs} pairs shown",
        },
    }
    return Chart(spec, side + 55, side + 105)


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


def z_histogram(grid: pd.DataFrame, z_min: float, mode: str) -> go.Figure:
    """Histogram of every pair's strongest-component z from :func:`grid_frame` (the grid's colour), with
    the threshold ``z_min`` as a dashed line: how many pairs clear it and by how much.

    >>> g = pd.DataFrame({"z": [0.5, 1.0, 4.0], "shown": [False, False, True]})
    >>> fig = z_histogram(g, 3.0, "Q")
    >>> fig.data[0].x.tolist(), fig.layout.shapes[0].x0
    ([0.5, 1.0, 4.0], 3.0)
    """
    n_shown = int(grid["shown"].sum())
    fig = go.Figure(
        go.Histogram(x=grid["z"].astype(float).to_numpy(), nbinsx=60, marker_color="steelblue", name="pairs")
    )
    fig.add_vline(x=z_min, line_dash="dash", line_color="crimson", annotation_text=f"threshold z {z_min:.2f}")
    fig.update_layout(
        title=f"Strongest {mode}-composition z of all {len(grid):,} head pairs ({n_shown:,} at or above the threshold)",
        xaxis_title="z of the pair's strongest component",
        yaxis_title="head pairs",
        yaxis_type="log",
        height=300,
        margin=dict(l=60, r=20, t=50, b=45, autoexpand=False),
        showlegend=False,
    )
    return fig
