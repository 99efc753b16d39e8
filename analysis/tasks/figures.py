"""Plots of task results: Laundry List accuracy by list length N, before and after an edit.

Pure functions of DataFrames (no model, no Streamlit).

>>> from analysis.tasks.evaluate import laundry_gain
>>> by_n = pd.DataFrame({"n_items": [2, 4], "accuracy_items": [0.9, 0.5]})
>>> fig = accuracy_figure(laundry_gain(by_n, by_n.assign(accuracy_items=[0.8, 0.25])))
>>> [t.name for t in fig.data], fig.data[-1].y.tolist()
(['before', 'after', 'chance'], [0.5, 0.25])
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

__all__ = ["accuracy_figure"]


def accuracy_figure(table: pd.DataFrame) -> go.Figure:
    """Laundry List accuracy by N from :func:`analysis.tasks.evaluate.laundry_gain` (``n_items`` and the
    ``accuracy_before`` / ``accuracy_after`` lines, either may be absent), with chance ``1/N`` dotted;
    y axis 0..1."""
    n = table["n_items"].astype(int)
    fig = go.Figure()
    for col, name in (("accuracy_before", "before"), ("accuracy_after", "after")):
        if col in table:
            fig.add_trace(go.Scatter(x=n, y=table[col], mode="lines+markers", name=name))
    fig.add_trace(go.Scatter(x=n, y=1.0 / n, mode="lines", name="chance", line=dict(dash="dot")))
    fig.update_layout(
        xaxis_title="list length N",
        yaxis_title="accuracy among items",
        yaxis_range=[0, 1.02],
        height=340,
        margin=dict(l=50, r=20, t=30, b=40),
    )
    return fig
