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
    assert fig.layout.xaxis.title.text == "receiver head" and fig.layout.yaxis.title.text == "sender head"
    assert tuple(fig.layout.yaxis.range) == (11.5, -0.5)  # senders top-down
    assert fig.layout.xaxis.ticktext[:2] == ("L0.H0", "L0.H1")
    # all pairs above the threshold: one trace only
    assert len(grid_figure(grid_frame(summary, "Q", 0.0, 4), 3, 4, "Q", 0.0).data) == 1


def test_grid_figure_uses_webgl_for_many_pairs():
    n = 4001
    big = pd.DataFrame(
        {"x": range(n), "y": range(n), "shown": True, "z": 1.0, "component": 0, "score": 0.1}
        | {c: 0 for c in ("sender_layer", "sender_head", "receiver_layer", "receiver_head")}
    )
    assert isinstance(grid_figure(big, 1, n, "K", 0.0).data[0], go.Scattergl)


def test_component_figure_bars_and_null_band():
    rows = pd.DataFrame({"component": [0, 1, 2], "score": [0.9, 0.2, 0.05], "z": [6.0, 1.0, -1.0]})
    band = pd.Series({"null_mean": 0.1, "null_std": 0.05, "null_p99": 0.3})
    fig = component_figure(rows, band, "L0.H1 components read by L1.H2")
    (bars,) = fig.data
    assert isinstance(bars, go.Bar) and list(bars.y) == [0.9, 0.2, 0.05]
    assert list(bars.marker.color) == ["crimson", "steelblue", "steelblue"]  # above the null p99
    rect, line = fig.layout.shapes
    assert (rect.y0, rect.y1) == pytest.approx((0.0, 0.2))  # mean ± 2 std, clipped at 0
    assert line.y0 == line.y1 == 0.3 and line.line.dash == "dash"
    assert fig.layout.title.text == "L0.H1 components read by L1.H2"
