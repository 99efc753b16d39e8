"""Pure state logic of the dashboard: grid selection → (sender, receiver) and input limits.

Nothing here imports Streamlit, so it is unit-tested directly (``tests/apps/test_dashboard_state.py``).

A *head* is ``(layer, head)``; a *pair* is ``(sender, receiver)`` with ``receiver_layer > sender_layer``.
The channels grid (:func:`analysis.channels.figures.grid_chart`, an ECharts chart) draws one square per
pair; a selection names ``(series, data index)``, and each series' dataset rows start
``[sender_layer, sender_head, receiver_layer, receiver_head, z, ...]``.

>>> sel = {"selected": [{"series_index": 0, "data_indices": [0]}]}
>>> pair_from_selection(sel, [[[0, 1, 2, 3, 4.5]]], n_layers=3, n_heads=4)
((0, 1), (2, 3))
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

Head = tuple[int, int]
Pair = tuple[Head, Head]

# ------------------------------------------------------------------------------------------ limits
MAX_PROMPT_CHARS = 400  # an editable prompt (component panel, attack prompt)
N_RANGE = (2, 10)  # Laundry List lengths the edit lab evaluates
PER_N_RANGE = (1, 40)  # prompts per list length
ALPHA_RANGE = (-2.0, 4.0)  # component rescaling factors (0 removes, 1 is a no-op)
MAX_EDITS = 8  # components in one edit
Z_RANGE = (0.0, 10.0)  # z-threshold slider
ATTACK_STEPS_RANGE = (1, 50)  # optimisation steps of an in-app attack
ATTACK_TOKENS_RANGE = (1, 20)  # suffix length of an in-app attack


class LimitError(ValueError):
    """An input outside the dashboard's limits; the message names the value, the range and the fix."""


def check_prompt(text: str, what: str = "prompt", max_chars: int = MAX_PROMPT_CHARS) -> str:
    """Strip and check a typed prompt: non-empty and at most ``max_chars`` characters.

    >>> check_prompt("  hi ")
    'hi'
    >>> check_prompt("x" * 401)
    Traceback (most recent call last):
    ...
    apps.dashboard.state.LimitError: prompt is 401 characters long; the limit is 400: shorten it.
    """
    text = (text or "").strip()
    if not text:
        raise LimitError(f"{what} is empty: type some text.")
    if len(text) > max_chars:
        raise LimitError(f"{what} is {len(text)} characters long; the limit is {max_chars}: shorten it.")
    return text


def check_range(value: float, bounds: tuple[float, float], what: str) -> float:
    """``value`` if ``lo <= value <= hi`` (and finite), else :class:`LimitError` naming the range.

    >>> check_range(3, (2, 10), "N")
    3
    >>> check_range(11, (2, 10), "N")
    Traceback (most recent call last):
    ...
    apps.dashboard.state.LimitError: N=11 is out of range: choose a value from 2 to 10.
    """
    lo, hi = bounds
    if value is None or not math.isfinite(float(value)) or not lo <= value <= hi:
        raise LimitError(f"{what}={value} is out of range: choose a value from {lo} to {hi}.")
    return value


def check_edits(
    edits: Sequence[tuple[int, int, int, float]], n_layers: int, n_heads: int, d_head: int
) -> list:
    """Validate ``(layer, head, component, alpha)`` rows of the edit lab's table against the model.

    >>> check_edits([(0, 1, 2, 0.0)], n_layers=3, n_heads=4, d_head=10)
    [(0, 1, 2, 0.0)]
    >>> check_edits([(3, 0, 0, 0.0)], 3, 4, 10)
    Traceback (most recent call last):
    ...
    apps.dashboard.state.LimitError: row 1: layer=3 is out of range: choose a value from 0 to 2.
    """
    rows = list(edits)
    if not rows:
        raise LimitError("no components chosen: add at least one row (layer, head, component, alpha).")
    if len(rows) > MAX_EDITS:
        raise LimitError(f"{len(rows)} components chosen; the limit is {MAX_EDITS}: remove some rows.")
    out = []
    for i, row in enumerate(rows, 1):
        try:
            layer, head, comp, alpha = (int(row[0]), int(row[1]), int(row[2]), float(row[3]))
            check_range(layer, (0, n_layers - 1), "layer")
            check_range(head, (0, n_heads - 1), "head")
            check_range(comp, (0, d_head - 1), "component")
            check_range(alpha, ALPHA_RANGE, "alpha")
        except LimitError as err:
            raise LimitError(f"row {i}: {err}") from None
        except (TypeError, ValueError, IndexError):
            raise LimitError(
                f"row {i}: {row!r} is incomplete; fill layer, head, component and alpha."
            ) from None
        out.append((layer, head, comp, alpha))
    return out


# ------------------------------------------------------------------------------------ grid selection
def selected_rows(selection: Mapping | None, sources: Sequence[Sequence]) -> list:
    """The rows of ``sources`` (one sequence of rows per chart series) that an ECharts ``selection``
    (``{"selected": [{"series_index": s, "data_indices": [i, ...]}, ...]}``) names; indices out of range
    (a selection kept from an older chart) are dropped.

    >>> selected_rows({"selected": [{"series_index": 1, "data_indices": [0, 7]}]}, [["a"], ["b", "c"]])
    ['b']
    """
    rows = []
    for group in (selection or {}).get("selected") or []:
        try:
            series, indices = int(group["series_index"]), [int(i) for i in group.get("data_indices") or []]
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= series < len(sources):
            rows += [sources[series][i] for i in indices if 0 <= i < len(sources[series])]
    return rows


def _row_pair(row: Sequence, n_layers: int, n_heads: int) -> tuple[Pair, float] | None:
    try:
        sl, sh, rl, rh = (int(x) for x in row[:4])
        z = float(row[4]) if len(row) > 4 and row[4] is not None else -math.inf
    except (TypeError, ValueError):
        return None
    if not (0 <= sl < rl < n_layers and 0 <= sh < n_heads and 0 <= rh < n_heads):
        return None
    return ((sl, sh), (rl, rh)), (z if math.isfinite(z) else -math.inf)


def pair_from_selection(
    selection: Mapping | None, sources: Sequence[Sequence], n_layers: int, n_heads: int
) -> Pair | None:
    """The (sender, receiver) a grid selection points at; ``None`` for an empty or invalid selection.

    ``sources``: per grid series, its rows ``[sender_layer, sender_head, receiver_layer, receiver_head,
    z]`` (:data:`analysis.channels.figures.PAIR_COLUMNS` of the chart's datasets). A click selects one
    square; the box tool selects several, and then the strongest (highest ``z``) is taken. Rows out of
    the model's range are ignored.

    >>> rows = [[[0, 0, 1, 0, 1.0], [0, 1, 2, 2, 7.0]]]
    >>> pair_from_selection({"selected": [{"series_index": 0, "data_indices": [0, 1]}]}, rows, 3, 4)
    ((0, 1), (2, 2))
    >>> pair_from_selection({"selected": []}, rows, 3, 4) is None
    True
    """
    found = [p for p in (_row_pair(r, n_layers, n_heads) for r in selected_rows(selection, sources)) if p]
    if not found:
        return None
    return max(found, key=lambda pz: pz[1])[0]


@dataclass(frozen=True)
class GridState:
    """What the channels page shows: the open ``pair`` and, per pick source (``grid``, ``table``), the
    widget that source was last seen as and the pair it held then: ``last = ((source, widget, pair), ...)``.

    Streamlit keeps a widget's selection across reruns, so a selection only *changes* the open pair when
    it differs from what that widget held last run; a manual pick in between is therefore not
    overwritten. A widget seen for the first time (a new chart after a mode or zoom change, or the page
    after a page switch) starts empty, and that does not close the panel.
    """

    pair: Pair | None = None
    last: tuple = ()


def on_pick(state: GridState, source: str, widget: str, picked: Pair | None) -> GridState:
    """New state after a run in which ``widget`` (of kind ``source``) holds the selection ``picked``.

    >>> s = on_pick(GridState(), "table", "t1", ((0, 0), (1, 1)))
    >>> s.pair
    ((0, 0), (1, 1))
    >>> on_pick(s, "grid", "g1", None).pair  # a fresh chart with no selection keeps the pair
    ((0, 0), (1, 1))
    >>> on_pick(s, "table", "t1", None).pair is None  # deselecting the row closes it
    True
    """
    seen = {src: (w, p) for src, w, p in state.last}
    prev = seen.get(source)
    seen[source] = (widget, picked)
    last = tuple((src, w, p) for src, (w, p) in sorted(seen.items()))
    if prev is None or prev[0] != widget:  # a widget not seen before: only a real pick counts
        return GridState(picked if picked is not None else state.pair, last)
    if picked == prev[1]:
        return replace(state, last=last)
    return GridState(picked, last)


def forget(state: GridState, source: str) -> GridState:
    """``state`` without what ``source`` held: call it when the source's widget is new this run (Streamlit
    drops a widget's state while another page is shown), so its empty selection is not read as a deselect.

    >>> s = on_pick(GridState(), "table", "t1", ((0, 0), (1, 1)))
    >>> on_pick(forget(s, "table"), "table", "t1", None).pair
    ((0, 0), (1, 1))
    """
    return replace(state, last=tuple(item for item in state.last if item[0] != source))


def on_selection(
    state: GridState,
    selection: Mapping | None,
    sources: Sequence[Sequence],
    n_layers: int,
    n_heads: int,
    widget: str = "grid",
) -> GridState:
    """New state after a run with chart ``selection`` of the series rows ``sources`` (see
    :func:`pair_from_selection`; clearing the selection closes the panel).

    >>> sel, rows = {"selected": [{"series_index": 0, "data_indices": [0]}]}, [[[0, 0, 1, 1, 2.0]]]
    >>> s = on_selection(GridState(), sel, rows, 3, 4)
    >>> s.pair
    ((0, 0), (1, 1))
    >>> on_selection(on_manual(s, ((1, 0), (2, 0))), sel, rows, 3, 4).pair
    ((1, 0), (2, 0))
    """
    return on_pick(state, "grid", widget, pair_from_selection(selection, sources, n_layers, n_heads))


def on_manual(state: GridState, pair: Pair | None) -> GridState:
    """New state after the user picks a pair with the sender/receiver boxes."""
    return replace(state, pair=pair)


# ------------------------------------------------------------------------------------ URL round trip
def pair_text(pair: Pair) -> str:
    """A pair as it appears in the URL (``?pair=L0.H1-L2.H3``).

    >>> pair_text(((0, 1), (2, 3)))
    'L0.H1-L2.H3'
    """
    (sl, sh), (rl, rh) = pair
    return f"L{sl}.H{sh}-L{rl}.H{rh}"


_PAIR_RE = re.compile(r"L(\d+)\.H(\d+)-L(\d+)\.H(\d+)")


def parse_pair(text: str | None, n_layers: int, n_heads: int) -> Pair | None:
    """The pair of a ``?pair=`` value, or ``None`` if it is missing, malformed or outside the model.

    >>> parse_pair("L0.H1-L2.H3", 3, 4)
    ((0, 1), (2, 3))
    >>> parse_pair("L2.H1-L0.H3", 3, 4) is None
    True
    """
    m = _PAIR_RE.fullmatch((text or "").strip())
    if not m:
        return None
    sl, sh, rl, rh = (int(g) for g in m.groups())
    if not (0 <= sl < rl < n_layers and 0 <= sh < n_heads and 0 <= rh < n_heads):
        return None
    return (sl, sh), (rl, rh)


def pair_from_row(rows: Sequence[int], table) -> Pair | None:
    """The pair of the selected row of the strongest-pairs table (columns ``sender_layer, sender_head,
    receiver_layer, receiver_head``); ``None`` when no row is selected.

    >>> import pandas as pd
    >>> t = pd.DataFrame({"sender_layer": [0], "sender_head": [1], "receiver_layer": [2], "receiver_head": [3]})
    >>> pair_from_row([0], t), pair_from_row([], t)
    (((0, 1), (2, 3)), None)
    """
    if not rows or rows[0] >= len(table):
        return None
    r = table.iloc[int(rows[0])]
    return (int(r["sender_layer"]), int(r["sender_head"])), (
        int(r["receiver_layer"]),
        int(r["receiver_head"]),
    )


def block_from_selection(
    selection: Mapping | None, blocks: Sequence, n_layers: int
) -> tuple[int, int] | None:
    """The ``(sender_layer, receiver_layer)`` block clicked on the layer map (``blocks``: its dataset's
    rows, starting with those two layers).

    >>> block_from_selection({"selected": [{"series_index": 0, "data_indices": [1]}]}, [[0, 1], [3, 5]], 30)
    (3, 5)
    """
    for row in selected_rows(selection, [blocks]):
        try:
            sl, rl = int(row[0]), int(row[1])
        except (TypeError, ValueError, IndexError):
            continue
        if 0 <= sl < n_layers and 0 <= rl < n_layers:
            return sl, rl
    return None


def zoom_around(layer: int, n_layers: int, half: int = 2) -> tuple[int, int]:
    """``(first, last)`` layers within ``half`` of ``layer``, clipped to the model.

    >>> zoom_around(0, 30), zoom_around(15, 30), zoom_around(29, 30)
    ((0, 4), (13, 17), (25, 29))
    """
    first = min(max(0, layer - half), max(0, n_layers - 2 * half - 1))
    return first, min(n_layers - 1, first + 2 * half)
