"""Plotly figures of the positional subspace (the CLI, notebooks and dashboard draw the same ones)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from probes.errors import InputError

__all__ = ["crowding_figure", "subspace_figure"]


def subspace_figure(coords: pd.DataFrame, n_items: int, title: str = "") -> go.Figure:
    """3D scatter of the first three coordinates (``c0, c1, c2``) of the prompts with ``n_items`` items,
    one trace per answer position (legend: position, one fixed colour each), wrong answers drawn as "+".

    Correct answers come first in each trace, so its legend marker is a circle. (Plotly draws 3D ``"x"``
    markers as the ❌ emoji, an empty box without an emoji font, hence ``"cross"``.)

    >>> df = pd.DataFrame({"n_items": 2, "position": [0, 1, 0], "correct": [False, True, True],
    ...                    "c0": [0.0, 1, 2], "c1": 0.0, "c2": 0.0})
    >>> fig = subspace_figure(df, 2)
    >>> [(t.name, list(t.marker.symbol), t.x.tolist()) for t in fig.data]
    [('position 0', ['circle', 'cross'], [2.0, 0.0]), ('position 1', ['circle'], [1.0])]
    """
    need = {"n_items", "position", "correct", "c0", "c1", "c2"}
    if not need <= set(coords.columns):
        raise InputError(f"coords need columns {sorted(need)} (a coordinate_frame with k >= 3).")
    sel = coords[coords["n_items"] == n_items]
    if sel.empty:
        raise InputError(
            f"no prompts with N = {n_items}; N in the table: {sorted(coords['n_items'].unique())}."
        )
    fig = go.Figure()
    for pos, g in sel.groupby("position"):
        g = g.sort_values("correct", ascending=False, kind="stable")
        colour = qualitative.Plotly[int(pos) % len(qualitative.Plotly)]
        fig.add_trace(
            go.Scatter3d(
                x=g["c0"], y=g["c1"], z=g["c2"], mode="markers", name=f"position {int(pos)}",
                marker={"size": 4, "color": colour, "symbol": ["circle" if c else "cross" for c in g["correct"]]},
                hovertext=[f"position {int(pos)}, {'correct' if c else 'wrong'}" for c in g["correct"]],
            )
        )  # fmt: skip
    fig.update_layout(
        title=title or f"Positional subspace at END, N = {n_items} (colour: answer position; +: wrong)",
        scene={"xaxis_title": "c0", "yaxis_title": "c1", "zaxis_title": "c2"},
        legend_title_text="answer position",
    )
    return fig


def crowding_figure(decodability: pd.DataFrame, accuracy: pd.DataFrame | None = None) -> go.Figure:
    """Held-out decodability of list position vs N (with chance), and the model's accuracy if given
    (``n_items, accuracy_items``)."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=decodability["n_items"], y=decodability["decode_accuracy"], name="position decoded")
    )
    fig.add_trace(go.Scatter(x=decodability["n_items"], y=decodability["chance"], name="chance 1/N",
                             line={"dash": "dot"}))  # fmt: skip
    if accuracy is not None:
        fig.add_trace(go.Scatter(x=accuracy["n_items"], y=accuracy["accuracy_items"], name="model accuracy"))
    fig.update_layout(xaxis_title="list length N", yaxis_title="accuracy", yaxis_range=[0, 1.05])
    return fig
