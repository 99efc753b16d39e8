"""Refusal figures (issue 14, finding 7): head names, small-sample projections, no unlabelled lines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.refusal.figures import HISTOGRAM_MIN, head_figure, probe_accuracy_figure, projection_figure


def _proj(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "label": ["harmful"] * n + ["harmless"] * n,
            "projection": np.r_[rng.normal(1, 1, n), rng.normal(-1, 1, n)],
        }
    )


def test_projection_is_a_strip_for_few_prompts_and_a_histogram_for_many():
    few = projection_figure(_proj(6), layer=3)
    assert [t.type for t in few.data] == ["box", "box"] and all(t.boxpoints == "all" for t in few.data)
    assert [t.name for t in few.data] == ["harmful (n=6)", "harmless (n=6)"]
    assert [len(t.x) for t in few.data] == [6, 6]  # every prompt is a visible point
    many = projection_figure(_proj(HISTOGRAM_MIN))
    assert [t.type for t in many.data] == ["histogram", "histogram"]


def test_head_chart_names_and_title_fit():
    heads = pd.DataFrame({"layer": [21, 3, 5], "head": [1, 2, 0], "diff": [0.5, 0.1, 0.3]})
    fig = head_figure(heads, top=2)
    assert list(fig.data[0].x) == ["L21.H1", "L5.H0"]
    first_line = fig.layout.title.text.split("<br>")[0]
    assert len(first_line) <= 50 and fig.layout.margin.t >= 60  # short first line, room above the bars


def test_probe_accuracy_has_integer_layers_and_no_unlabelled_line():
    table = pd.DataFrame(
        {"layer": [0, 1, 2], "train_acc": [0.9, 1, 1], "val_acc": [0.8, 0.9, 1], "auc": [0.9, 1, 1]}
    )
    fig = probe_accuracy_figure(table)
    assert fig.layout.xaxis.dtick == 1
    assert not fig.layout.shapes  # the old dotted line at 0.95 had no label; it is gone
