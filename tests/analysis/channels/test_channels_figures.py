"""Channel plots on tiny frames: grid layout, the grid and layer-map charts (series, axes, geometry, zoom), the
z histogram, component bars with the null band."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from analysis.channels.figures import (
    FAINT,
    GRID_ARIA,
    PAIR_COLUMNS,
    component_figure,
    grid_chart,
    grid_frame,
    head_label,
    layer_chart,
    z_histogram,
)


@pytest.fixture
def summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mode": pd.Categorical(["Q", "Q", "V"]),
            "sender_layer": [0, 1, 0],
            "sender_head": [3, 0, 0],
            "receiver_layer": [2, 2, 1],
            "receiver_head": [1, 3, 0],
            "component": [0, 1, 2],
            "score": [0.4, 0.3, 0.2],
            "z": [5.0, 1.0, 8.0],
        }
    )


def test_grid_frame_positions_and_threshold(summary):
    g = grid_frame(summary, "Q", 3.0, n_heads=4)
    assert g[["x", "y"]].values.tolist() == [[9, 3], [11, 4]]
    assert g["shown"].tolist() == [True, False]
    assert g["receiver"].tolist() == ["L2.H1", "L2.H3"] and g["sender"].tolist() == ["L0.H3", "L1.H0"]
    assert head_label((1, 0)) == "L1.H0"


def test_grid_chart_series_axes_and_geometry(summary):
    chart = grid_chart(grid_frame(summary, "Q", 3.0, n_heads=4), n_layers=3, n_heads=4, mode="Q", z_min=3.0)
    spec = chart.spec
    (series,) = spec["series"]  # one series: a click replaces the selection
    assert series["symbol"] == "rect" and series["selectedMode"] == "single"
    rows = spec["dataset"][0]["source"]
    assert rows[list(PAIR_COLUMNS)].values.tolist() == [[0.0, 3.0, 2.0, 1.0, 5.0], [1.0, 0.0, 2.0, 3.0, 1.0]]
    assert rows[["col", "row", "sender", "receiver", "component", "score"]].values.tolist() == [
        [5, 4, "L0.H3", "L2.H1", 0, 0.4],
        [7, 3, "L1.H0", "L2.H3", 1, 0.3],
    ]  # receivers start at layer 1 (column 0 = L1.H0); rows count from the bottom (row 7 = L0.H0)
    colours = spec["visualMap"]
    assert (colours["dimension"], colours["range"], colours["outOfRange"]["color"]) == (
        "colour",
        [3.0, 5.0],
        [FAINT],
    )
    # the grey pair sits just under the range but inside [min, max] (ECharts clamps values outside it)
    assert colours["min"] < 3.0 and rows["colour"].tolist() == [5.0, colours["min"]]
    x, y = spec["xAxis"], spec["yAxis"]
    assert x["type"] == y["type"] == "category" and not y.get("inverse") and not x.get("inverse")
    assert y["data"] == ["", "L1", "", "", "", "L0", "", ""]  # listed bottom-up: layer 0 on top
    assert x["data"] == ["", "", "L1", "", "", "", "L2", ""]  # one category per head, layer under its middle
    assert x["splitLine"]["interval"] == x["axisTick"]["interval"] == 3  # lines on layer boundaries
    assert (
        x["name"] == "receiver layer (one column per head)" and y["name"] == "sender layer (one row per head)"
    )
    g = chart.geometry
    assert (g.n_rows, g.n_cols) == (8, 8) and (chart.width, chart.height) == g.size
    assert spec["grid"] == {"left": g.left, "top": g.top, "width": 8 * g.px, "height": 8 * g.px}
    assert g.centre((0, 3), (2, 1)) == (g.left + 5.5 * g.px, g.top + 3.5 * g.px)  # the shown pair's square
    described = GRID_ARIA.search(spec["aria"]["label"]["description"])
    assert (described["s0"], described["s1"], described["r0"], described["r1"]) == ("0", "1", "1", "2")
    assert (described["sender"], described["receiver"]) == ("L0.H3", "L2.H1")
    # an outlier is clipped to the top of the colour scale; the tooltip's z stays true
    many = summary.assign(mode="Q", z=[5.0, 1e3, 8.0])
    clipped = grid_chart(grid_frame(many, "Q", 3.0, 4), 3, 4, "Q", 3.0).spec
    top = clipped["visualMap"]["max"]
    assert 5.0 < top < 1e3 and clipped["dataset"][0]["source"]["colour"].max() == top
    assert clipped["dataset"][0]["source"]["z"].max() == 1e3


def test_grid_chart_zoom_keeps_only_the_chosen_layers():
    rows = [(sl, rl) for sl in range(4) for rl in range(sl + 1, 5)]
    summary = pd.DataFrame(
        {
            "mode": "K",
            "sender_layer": [a for a, _ in rows],
            "sender_head": 0,
            "receiver_layer": [b for _, b in rows],
        }
        | {"receiver_head": 1, "component": 0, "score": 0.1, "z": [float(i) for i in range(len(rows))]}
    )
    chart = grid_chart(grid_frame(summary, "K", 0.0, 2), 5, 2, "K", 0.0, senders=(1, 2), receivers=(3, 4))
    source = chart.spec["dataset"][0]["source"]
    assert sorted(zip(source["sender_layer"], source["receiver_layer"], strict=True)) == [
        (1, 3),
        (1, 4),
        (2, 3),
        (2, 4),
    ]
    assert source["col"].tolist() == [1, 3, 1, 3] and source["row"].tolist() == [3, 3, 1, 1]
    assert chart.spec["xAxis"]["data"] == ["", "L3", "", "L4"]


def test_layer_chart_blocks():
    blocks = pd.DataFrame(
        {"sender_layer": [0, 0], "receiver_layer": [1, 2], "z": [5.123, 2.0], "sender": ["L0.H1", "L0.H0"]}
        | {"receiver": ["L1.H0", "L2.H1"], "n_shown": [1, 0], "n_pairs": [2, 2]}
    )
    chart = layer_chart(blocks, n_layers=3, z_min=3.0, top=6.0)
    source = chart.spec["dataset"][0]["source"]
    assert source[["sender_layer", "receiver_layer", "z"]].values.tolist() == [[0, 1, 5.12], [0, 2, 2.0]]
    assert chart.spec["xAxis"]["data"] == ["0", "1", "2"] and chart.spec["yAxis"]["inverse"]
    assert chart.spec["visualMap"]["min"] == 3.0 and chart.spec["visualMap"]["max"] == 6.0


def test_z_histogram_marks_the_threshold(summary):
    fig = z_histogram(grid_frame(summary, "Q", 3.0, 4), 3.0, "Q")
    assert fig.data[0].x.tolist() == [5.0, 1.0] and fig.layout.shapes[0].x0 == 3.0
    assert "of all 2 head pairs (1 at or above the threshold)" in fig.layout.title.text


def test_component_figure_bars_and_null_band():
    rows = pd.DataFrame({"component": [0, 1, 2], "score": [0.9, 0.2, 0.05], "z": [6.0, 1.0, -1.0]})
    band = pd.Series({"null_mean": 0.1, "null_std": 0.05, "null_p99": 0.3})
    fig = component_figure(rows, band, "L0.H1 components read by L1.H2")
    above, within = fig.data  # one legend entry per colour, saying what it means
    assert isinstance(above, go.Bar) and list(above.y) == [0.9] and above.marker.color == "crimson"
    assert list(within.y) == [0.2, 0.05] and within.marker.color == "steelblue"
    assert (above.name, within.name) == ("above the null p99", "within the null")
    rect, line = fig.layout.shapes
    assert (rect.y0, rect.y1) == pytest.approx((0.0, 0.2))  # mean ± 2 std, clipped at 0
    assert line.y0 == line.y1 == 0.3 and line.line.dash == "dash"
    assert fig.layout.title.text == "L0.H1 components read by L1.H2"
