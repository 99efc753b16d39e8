"""Laundry List accuracy plot on a tiny before/after table: its lines, chance and axes."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.tasks.evaluate import laundry_gain
from analysis.tasks.figures import accuracy_figure


def test_accuracy_figure_lines_chance_and_axes():
    before = pd.DataFrame({"n_items": [2, 3, 4], "accuracy_items": [1.0, 0.6, 0.5]})
    table = laundry_gain(before, before.assign(accuracy_items=[0.5, 0.6, 0.75]))
    fig = accuracy_figure(table)
    assert [t.name for t in fig.data] == ["before", "after", "chance"]
    assert list(fig.data[1].x) == [2, 3, 4] and list(fig.data[1].y) == [0.5, 0.6, 0.75]
    assert list(fig.data[2].y) == pytest.approx([1 / 2, 1 / 3, 1 / 4]) and fig.data[2].line.dash == "dot"
    assert fig.data[0].mode == "lines+markers"
    assert tuple(fig.layout.yaxis.range) == (0, 1.02) and fig.layout.xaxis.title.text == "list length N"
    only_before = accuracy_figure(table.drop(columns="accuracy_after"))
    assert [t.name for t in only_before.data] == ["before", "chance"]
