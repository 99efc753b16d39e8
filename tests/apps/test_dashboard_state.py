"""Pure selection → (sender, receiver) logic, input limits and grid layout of the dashboard."""

from __future__ import annotations

import pandas as pd
import pytest

from apps.dashboard.state import (
    GridState,
    LimitError,
    check_edits,
    check_prompt,
    check_range,
    on_manual,
    on_pick,
    on_selection,
    pair_from_selection,
    pair_text,
    parse_pair,
    zoom_around,
)


def pt(*data):
    return {"curve_number": 1, "point_index": 0, "customdata": list(data)}


def test_click_gives_sender_and_receiver():
    assert pair_from_selection({"points": [pt(1, 2, 2, 0, 3.5)]}, 3, 4) == ((1, 2), (2, 0))


def test_box_selection_takes_strongest_z():
    sel = {"points": [pt(0, 0, 1, 0, 9.0), pt(0, 1, 2, 3, 2.0), pt(1, 1, 2, 1, 9.5)], "box": [{}]}
    assert pair_from_selection(sel, 3, 4) == ((1, 1), (2, 1))


@pytest.mark.parametrize(
    "point",
    [
        pt(1, 0, 1, 0, 5.0),  # receiver not after sender
        pt(2, 0, 1, 0, 5.0),  # backwards
        pt(0, 4, 1, 0, 5.0),  # head out of range
        pt(0, 0, 3, 0, 5.0),  # layer out of range
        pt(0, 0, 1),  # too short
        {"x": 3, "y": 4},  # no customdata (e.g. another trace)
        pt("a", 0, 1, 0, 1.0),
    ],
)
def test_invalid_points_are_ignored(point):
    assert pair_from_selection({"points": [point]}, 3, 4) is None
    # and do not hide a valid one next to them
    assert pair_from_selection({"points": [point, pt(0, 3, 2, 3, None)]}, 3, 4) == ((0, 3), (2, 3))


def test_typed_array_customdata():
    # plotly sends numeric customdata as a typed array: it reaches Python as {"0": .., "1": .., ...}
    typed = {str(i): float(v) for i, v in enumerate([1, 2, 2, 0, 6.5, 3, 0.4])}
    assert pair_from_selection({"points": [{"customdata": typed}]}, 3, 4) == ((1, 2), (2, 0))
    assert pair_from_selection({"points": [{"customdata": {"a": 1, "b": 2}}]}, 3, 4) is None
    assert pair_from_selection({"points": [{"customdata": 5}]}, 3, 4) is None


def test_empty_selection():
    assert pair_from_selection(None, 3, 4) is None
    assert pair_from_selection({"points": [], "box": [], "lasso": []}, 3, 4) is None


def test_state_sequence_click_manual_rerun_clear():
    s = on_selection(GridState(), {"points": [pt(0, 0, 1, 1, 2.0)]}, 3, 4)
    assert s.pair == ((0, 0), (1, 1))
    s = on_manual(s, ((1, 0), (2, 0)))
    # a rerun with the same (persisting) chart selection keeps the manual pick
    s = on_selection(s, {"points": [pt(0, 0, 1, 1, 2.0)]}, 3, 4)
    assert s.pair == ((1, 0), (2, 0))
    # a new click wins
    s = on_selection(s, {"points": [pt(0, 2, 2, 2, 1.0)]}, 3, 4)
    assert s.pair == ((0, 2), (2, 2))
    # clearing the selection (double click) closes the panel
    s = on_selection(s, {"points": []}, 3, 4)
    assert s.pair is None


def test_a_new_widget_does_not_close_the_pair():
    s = on_selection(GridState(), {"points": [pt(0, 0, 1, 1, 2.0)]}, 3, 4, widget="g1")
    s = on_selection(s, None, 3, 4, widget="g2")  # mode or zoom changed: a new, empty chart
    assert s.pair == ((0, 0), (1, 1))
    s = on_pick(s, "table", "t1", ((1, 2), (2, 3)))  # a table row click opens its pair
    assert s.pair == ((1, 2), (2, 3))
    s = on_selection(s, None, 3, 4, widget="g2")  # the chart unchanged: the row's pair stays
    assert s.pair == ((1, 2), (2, 3))
    s = on_pick(s, "table", "t1", ((1, 2), (2, 3)))  # the same row still selected on the next run
    assert s.pair == ((1, 2), (2, 3))


@pytest.mark.parametrize("text", ["", "L0.H1", "L0.H1-L0.H2", "L0.H4-L1.H0", "L0.H1-L3.H0", "x"])
def test_bad_url_pair_is_ignored(text):
    assert parse_pair(text, 3, 4) is None


def test_url_pair_round_trip():
    pair = ((1, 3), (2, 0))
    assert parse_pair(pair_text(pair), 3, 4) == pair


def test_zoom_window_stays_inside_the_model():
    for layer in range(30):
        first, last = zoom_around(layer, 30)
        assert 0 <= first <= layer <= last <= 29 and last - first == 4
    assert zoom_around(1, 3) == (0, 2)


def test_limits():
    assert check_prompt("  a prompt ") == "a prompt"
    with pytest.raises(LimitError, match="empty"):
        check_prompt("   ")
    with pytest.raises(LimitError, match="limit is 400"):
        check_prompt("x" * 401)
    with pytest.raises(LimitError, match="from 2 to 10"):
        check_range(1, (2, 10), "N")
    with pytest.raises(LimitError, match="out of range"):
        check_range(float("nan"), (0, 1), "alpha")
    assert check_edits([(1, 1, 0, 0)], 3, 4, 10) == [(1, 1, 0, 0.0)]
    with pytest.raises(LimitError, match="row 2: alpha=9.0"):
        check_edits([(1, 1, 0, 0), (0, 0, 0, 9)], 3, 4, 10)
    with pytest.raises(LimitError, match="no components"):
        check_edits([], 3, 4, 10)
    with pytest.raises(LimitError, match="limit is 8"):
        check_edits([(0, 0, 0, 0.0)] * 9, 3, 4, 10)
    with pytest.raises(LimitError, match="incomplete"):
        check_edits([(0, 0, None, 0.0)], 3, 4, 10)


def test_selection_reads_the_grid_figures_customdata():
    from analysis.channels.figures import grid_figure, grid_frame

    summary = pd.DataFrame(
        {
            "mode": ["Q", "Q"],
            "sender_layer": [0, 1],
            "sender_head": [3, 0],
            "receiver_layer": [2, 2],
            "receiver_head": [1, 3],
            "component": [0, 1],
            "score": [0.4, 0.3],
            "z": [5.0, 6.0],
        }
    )
    fig = grid_figure(grid_frame(summary, "Q", 0.0, n_heads=4), n_layers=3, n_heads=4, mode="Q", z_min=0.0)
    points = [{"customdata": row} for row in fig.data[-1].customdata.tolist()]
    assert pair_from_selection({"points": points}, 3, 4) == ((1, 0), (2, 3))  # the higher z
