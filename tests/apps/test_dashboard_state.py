"""Pure selection → (sender, receiver) logic, input limits and grid layout of the dashboard."""

from __future__ import annotations

import pandas as pd
import pytest

from apps.dashboard.state import (
    GridState,
    LimitError,
    block_from_selection,
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


def sel(*picks: tuple[int, list[int]]) -> dict:
    """An ECharts selection as Streamlit returns it: ``(series_index, data_indices)`` per series."""
    return {
        "selected": [{"series_index": s, "data_indices": i, "data_type": "main"} for s, i in picks],
        "areas": [],
    }


ROWS = [  # per series, its dataset rows: sender_layer, sender_head, receiver_layer, receiver_head, z
    [[0, 0, 1, 0, 9.0], [0, 1, 2, 3, 2.0]],
    [[1, 1, 2, 1, 9.5], [1, 2, 2, 0, 3.5], [0, 0, 1, 1, 2.0], [0, 2, 2, 2, 1.0]],
]


def test_click_gives_sender_and_receiver():
    assert pair_from_selection(sel((1, [1])), ROWS, 3, 4) == ((1, 2), (2, 0))
    assert pair_from_selection(sel((0, [1])), ROWS, 3, 4) == ((0, 1), (2, 3))


def test_box_selection_takes_strongest_z():
    assert pair_from_selection(sel((0, [0, 1]), (1, [0])), ROWS, 3, 4) == ((1, 1), (2, 1))


@pytest.mark.parametrize(
    "row",
    [
        [1, 0, 1, 0, 5.0],  # receiver not after sender
        [2, 0, 1, 0, 5.0],  # backwards
        [0, 4, 1, 0, 5.0],  # head out of range
        [0, 0, 3, 0, 5.0],  # layer out of range
        [0, 0, 1],  # too short
        ["a", 0, 1, 0, 1.0],
    ],
)
def test_invalid_rows_are_ignored(row):
    rows = [[row, [0, 3, 2, 3, None]]]
    assert pair_from_selection(sel((0, [0])), rows, 3, 4) is None
    assert pair_from_selection(sel((0, [0, 1])), rows, 3, 4) == ((0, 3), (2, 3))  # the valid one still counts


@pytest.mark.parametrize(
    "selection",
    [
        None,
        {},
        sel(),
        sel((2, [0])),  # no such series
        sel((0, [5, -1])),  # indices from an older, bigger chart
        {"selected": [{"series_index": "x", "data_indices": [0]}, {"data_indices": [0]}]},
    ],
)
def test_empty_or_stale_selection(selection):
    assert pair_from_selection(selection, ROWS, 3, 4) is None


def test_state_sequence_click_manual_rerun_clear():
    s = on_selection(GridState(), sel((1, [2])), ROWS, 3, 4)
    assert s.pair == ((0, 0), (1, 1))
    s = on_manual(s, ((1, 0), (2, 0)))
    # a rerun with the same (persisting) chart selection keeps the manual pick
    s = on_selection(s, sel((1, [2])), ROWS, 3, 4)
    assert s.pair == ((1, 0), (2, 0))
    # a new click wins
    s = on_selection(s, sel((1, [3])), ROWS, 3, 4)
    assert s.pair == ((0, 2), (2, 2))
    # clearing the selection (double click) closes the panel
    s = on_selection(s, sel(), ROWS, 3, 4)
    assert s.pair is None


def test_a_new_widget_does_not_close_the_pair():
    s = on_selection(GridState(), sel((1, [2])), ROWS, 3, 4, widget="g1")
    s = on_selection(s, None, ROWS, 3, 4, widget="g2")  # mode or zoom changed: a new, empty chart
    assert s.pair == ((0, 0), (1, 1))
    s = on_pick(s, "table", "t1", ((1, 2), (2, 3)))  # a table row click opens its pair
    assert s.pair == ((1, 2), (2, 3))
    s = on_selection(s, None, ROWS, 3, 4, widget="g2")  # the chart unchanged: the row's pair stays
    assert s.pair == ((1, 2), (2, 3))
    s = on_pick(s, "table", "t1", ((1, 2), (2, 3)))  # the same row still selected on the next run
    assert s.pair == ((1, 2), (2, 3))


def test_layer_map_click_gives_the_block():
    blocks = [[0, 1], [3, 5], [40, 41]]
    assert block_from_selection(sel((0, [1])), blocks, 30) == (3, 5)
    assert block_from_selection(sel((0, [2])), blocks, 30) is None  # out of the model
    assert block_from_selection(sel(), blocks, 30) is None


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


def test_selection_reads_the_grid_charts_datasets():
    from analysis.channels.figures import PAIR_COLUMNS, grid_chart, grid_frame

    summary = pd.DataFrame(
        {
            "mode": ["Q", "Q", "Q"],
            "sender_layer": [0, 1, 0],
            "sender_head": [3, 0, 0],
            "receiver_layer": [2, 2, 1],
            "receiver_head": [1, 3, 0],
            "component": [0, 1, 2],
            "score": [0.4, 0.3, 0.1],
            "z": [5.0, 6.0, 1.0],
        }
    )
    chart = grid_chart(grid_frame(summary, "Q", 3.0, n_heads=4), n_layers=3, n_heads=4, mode="Q", z_min=3.0)
    rows = [d["source"][list(PAIR_COLUMNS)].to_numpy().tolist() for d in chart.spec["dataset"]]
    assert pair_from_selection(sel((0, [1, 2])), rows, 3, 4) == ((1, 0), (2, 3))  # the higher z
    assert pair_from_selection(sel((0, [0])), rows, 3, 4) == ((0, 0), (1, 0))  # a grey square opens too
