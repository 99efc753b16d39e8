"""Plots and display helpers of task results: Laundry List accuracy by list length N, before and after
an edit, and signed changes rounded to the digits that mean something.

Pure functions of DataFrames and numbers (no model, no Streamlit).

>>> from analysis.tasks.evaluate import laundry_gain
>>> by_n = pd.DataFrame({"n_items": [2, 4], "accuracy_items": [0.9, 0.5]})
>>> fig = accuracy_figure(laundry_gain(by_n, by_n.assign(accuracy_items=[0.8, 0.25])))
>>> [t.name for t in fig.data], fig.data[-1].y.tolist()
(['before', 'after', 'chance (1/N)'], [0.5, 0.25])
>>> list(fig.layout.xaxis.tickvals)
[2, 3, 4]
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

__all__ = ["accuracy_figure", "signed_change"]


def accuracy_figure(table: pd.DataFrame) -> go.Figure:
    """Laundry List accuracy by N from :func:`analysis.tasks.evaluate.laundry_gain` (``n_items`` and the
    ``accuracy_before`` / ``accuracy_after`` lines, either may be absent), with chance ``1/N`` dotted;
    y axis 0..1, one x tick per integer N."""
    n = table["n_items"].astype(int)
    fig = go.Figure()
    for col, name in (("accuracy_before", "before"), ("accuracy_after", "after")):
        if col in table:
            fig.add_trace(go.Scatter(x=n, y=table[col], mode="lines+markers", name=name))
    fig.add_trace(go.Scatter(x=n, y=1.0 / n, mode="lines", name="chance (1/N)", line=dict(dash="dot")))
    fig.update_layout(
        xaxis=dict(title="list length N", tickmode="array", tickvals=list(range(n.min(), n.max() + 1))),
        yaxis_title="accuracy among items",
        yaxis_range=[0, 1.02],
        height=340,
        margin=dict(l=50, r=20, t=30, b=40),
    )
    return fig


def signed_change(delta: float, resolution: float) -> str | None:
    """``delta`` as a signed string with the digits ``resolution`` (the smallest meaningful step) allows;
    ``None`` when it rounds to zero at that resolution (show no arrow for "no change").

    >>> signed_change(0.0, 1e-4) is None, signed_change(3e-6, 1e-4) is None
    (True, True)
    >>> signed_change(0.01234, 1e-4), signed_change(-12.5, 0.1)
    ('+0.0123', '-12.5')
    """
    if not math.isfinite(delta):
        return None
    digits = max(0, -math.floor(math.log10(resolution)))
    rounded = round(delta, digits)
    if rounded == 0:
        return None
    return f"{rounded:+.{digits}f}"
