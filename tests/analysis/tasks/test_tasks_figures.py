"""Laundry List accuracy plot on a tiny before/after table: its lines, chance and axes."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.tasks.evaluate import laundry_gain
from analysis.tasks.figures import accuracy_figure, signed_change


def test_accuracy_figure_lines_chance_and_axes():
    before = pd.DataFrame({"n_items": [2, 3, 4], "accuracy_items": [1.0, 0.6, 0.5]})
    table = laundry_gain(before, before.assign(accuracy_items=[0.5, 0.6, 0.75]))
    fig = accuracy_figure(table)
    assert [t.name for t in fig.data] == ["before", "after", "chance (1/N)"]
    assert list(fig.data[1].x) == [2, 3, 4] and list(fig.data[1].y) == [0.5, 0.6, 0.75]
    assert list(fig.data[2].y) == pytest.approx([1 / 2, 1 / 3, 1 / 4]) and fig.data[2].line.dash == "dot"
    assert fig.data[0].mode == "lines+markers"
    assert tuple(fig.layout.yaxis.range) == (0, 1.02) and fig.layout.xaxis.title.text == "list length N"
    only_before = accuracy_figure(table.drop(columns="accuracy_after"))
    assert [t.name for t in only_before.data] == ["before", "chance (1/N)"]


def test_accuracy_figure_has_integer_ticks_only():
    """Issue 14: N is an integer, so no tick may fall at 2.5."""
    before = pd.DataFrame({"n_items": [2, 3, 4, 5, 6], "accuracy_items": [0.9] * 5})
    fig = accuracy_figure(laundry_gain(before, before))
    assert fig.layout.xaxis.tickmode == "array" and list(fig.layout.xaxis.tickvals) == [2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    "delta,resolution,want",
    [
        (0.0, 1e-4, None),
        (-4e-5, 1e-4, None),
        (0.00012, 1e-4, "+0.0001"),
        (-2.34, 0.1, "-2.3"),
        (float("nan"), 0.1, None),
    ],
)
def test_signed_change_is_neutral_for_zero(delta, resolution, want):
    assert signed_change(delta, resolution) == want
