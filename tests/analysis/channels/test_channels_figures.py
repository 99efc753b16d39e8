"""Channel plots on tiny frames: grid layout, grid traces and axes, component bars with the null band."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from analysis.channels.figures import GRID_CUSTOMDATA, component_figure, grid_figure, grid_frame, head_label


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


def test_grid_figure_traces_and_axes(summary):
    fig = grid_figure(grid_frame(summary, "Q", 3.0, n_heads=4), n_layers=3, n_heads=4, mode="Q", z_min=3.0)
    faint, shown = fig.data  # below the threshold first, then the coloured pairs
    assert isinstance(shown, go.Scatter) and shown.marker.symbol == "square"
    assert list(faint.x) == [11] and list(faint.y) == [4] and faint.marker.colorscale is None
    assert list(shown.x) == [9] and list(shown.y) == [3] and shown.marker.cmin == 3.0
    assert shown.customdata.tolist() == [[0.0, 3.0, 2.0, 1.0, 5.0, 0.0, 0.4000000059604645]]
    assert len(GRID_CUSTOMDATA) == shown.customdata.shape[1]
    assert fig.layout.xaxis.title.text == "receiver layer (one column per head)"
    assert fig.layout.yaxis.title.text == "sender layer (one row per head)"
    assert tuple(fig.layout.yaxis.range) == (7.5, -0.5)  # senders (layers 0-1) top-down
    assert tuple(fig.layout.xaxis.range) == (3.5, 11.5)  # receivers: layers 1-2 (no layer-0 receivers)
    assert fig.layout.xaxis.ticktext == ("L1", "L2") and fig.layout.xaxis.tickvals == (5.5, 9.5)  # centred
    # all pairs above the threshold: one trace only
    assert len(grid_figure(grid_frame(summary, "Q", 0.0, 4), 3, 4, "Q", 0.0).data) == 1


def test_grid_figure_uses_webgl_for_many_pairs():
    n = 4001
    big = pd.DataFrame(
        {"x": range(n), "y": range(n), "shown": True, "z": 1.0, "component": 0, "score": 0.1}
        | {"sender_layer": 0, "sender_head": 0, "receiver_layer": 1, "receiver_head": 0}
    )
    assert isinstance(grid_figure(big, 2, n, "K", 0.0).data[0], go.Scattergl)


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
