"""Cached analyses of the channels explorer: the component scan, its null, the grid and one pair's panel.

Big read-only tables (per-head weights, the full scan, the receiver null) and the grid figure are
``st.cache_resource`` (pages only read them); what a panel shows is ``st.cache_data``. Both are keyed by
the :class:`~apps.dashboard.models.ModelKey` and the parameters. The maths is
:mod:`analysis.channels` (scan, null, :mod:`~analysis.channels.figures`, :mod:`~analysis.channels.effects`).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from apps.dashboard.models import MODEL_LOCK, ModelKey
from apps.dashboard.state import Head, LimitError

NULL_SAMPLES = 1000  # random directions per receiver for the app's null (the CLI default is 2000)


@st.cache_resource(max_entries=4, show_spinner="reading per-head weights …")
def head_weights_of(_handle, key: ModelKey):
    """:func:`probes.weights.head_weights` (LayerNorm folded), read-only."""
    from probes.weights import head_weights

    return head_weights(_handle)


@st.cache_resource(max_entries=4, show_spinner="scoring every sender component against every receiver …")
def channel_scan(_handle, key: ModelKey, n_null: int = NULL_SAMPLES, seed: int = 0) -> pd.DataFrame:
    """The full component-level scan (Q, K and V) with z-scores; read-only (large for real models)."""
    from analysis.channels import ScanConfig, scan_channels

    return scan_channels(head_weights_of(_handle, key), ScanConfig(modes="QKV", n_null=n_null, seed=seed))


@st.cache_resource(max_entries=4, show_spinner="sampling the null …")
def null_table(_handle, key: ModelKey, n_null: int = NULL_SAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per (receiver, mode) null statistics (the same directions the scan's z-scores use)."""
    from analysis.channels import receiver_null

    return receiver_null(head_weights_of(_handle, key), n_null, seed=seed, modes="QKV").table()


@st.cache_data(max_entries=16, show_spinner=False)
def grid_summary(_handle, key: ModelKey, n_null: int = NULL_SAMPLES, seed: int = 0) -> pd.DataFrame:
    """:func:`analysis.channels.head_pair_summary` of the scan: strongest component per pair and mode."""
    from analysis.channels import head_pair_summary

    null_table(_handle, key, n_null, seed)  # warmed with the scan, so the first pair click does not pay it
    return head_pair_summary(channel_scan(_handle, key, n_null, seed))


@st.cache_resource(max_entries=12, show_spinner=False)
def grid_table(_handle, key: ModelKey, mode: str, z_min: float) -> pd.DataFrame:
    """:func:`analysis.channels.figures.grid_frame` of :func:`grid_summary` for one mode and threshold."""
    from analysis.channels.figures import grid_frame

    return grid_frame(grid_summary(_handle, key), mode, z_min, _handle.info.n_heads)


@st.cache_resource(max_entries=12, show_spinner=False)
def grid_figure_of(
    _grid: pd.DataFrame, key: ModelKey, n_layers: int, n_heads: int, mode: str, z_min: float
) -> go.Figure:
    """:func:`analysis.channels.figures.grid_figure` of :func:`grid_table`, per (model, mode, threshold);
    never modified."""
    from analysis.channels.figures import grid_figure

    return grid_figure(_grid, n_layers, n_heads, mode, z_min)


@st.cache_data(max_entries=64, show_spinner=False)
def pair_components(
    _handle, key: ModelKey, sender: Head, receiver: Head, mode: str, n_null: int = NULL_SAMPLES, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series]:
    """Every component of ``sender`` scored against ``receiver`` in ``mode`` (``component,
    singular_value, score, z, p`` by component), and the receiver's ``null_mean, null_std, null_p99``."""
    df = channel_scan(_handle, key, n_null, seed)
    rows = df[
        (df["sender_layer"] == sender[0])
        & (df["sender_head"] == sender[1])
        & (df["receiver_layer"] == receiver[0])
        & (df["receiver_head"] == receiver[1])
        & (df["mode"] == mode)
    ]
    rows = rows[["component", "singular_value", "score", "z", "p"]].sort_values("component")
    null = null_table(_handle, key, n_null, seed)
    band = null[
        (null["receiver_layer"] == receiver[0])
        & (null["receiver_head"] == receiver[1])
        & (null["mode"] == mode)
    ].iloc[0][["null_mean", "null_std", "null_p99"]]
    return rows.reset_index(drop=True).astype({"component": int}), band.astype(float)


@st.cache_data(max_entries=64, show_spinner=False)
def component_tokens(
    _handle, key: ModelKey, head: Head, components: tuple[int, ...], k: int = 5
) -> pd.DataFrame:
    """:func:`analysis.channels.effects.component_tokens` of ``head``'s ``components``."""
    from analysis.channels.effects import component_tokens

    with MODEL_LOCK:
        return component_tokens(_handle, head[0], head[1], components, k)


@st.cache_data(max_entries=64, show_spinner=False)
def removal_effects(
    _handle,
    key: ModelKey,
    prompt: str,
    answer_id: int,
    distractor_id: int,
    head: Head,
    components: tuple[int, ...],
) -> pd.DataFrame:
    """:func:`analysis.channels.effects.removal_effects` of ``head``'s ``components`` on ``prompt``."""
    from analysis.channels.effects import removal_effects

    with MODEL_LOCK:
        return removal_effects(_handle, prompt, answer_id, distractor_id, head[0], head[1], components)


@st.cache_data(max_entries=8, show_spinner=False)
def task_example(_handle, key: ModelKey, task: str) -> tuple[str, str, str]:
    """A default ``(prompt, answer, distractor)`` for the component panel from the IOI or Laundry generator."""
    if task == "IOI":
        from analysis.tasks.ioi import ioi_prompts

        row = ioi_prompts(_handle.tokenizer, n_prompts=1, seed=0).iloc[0]
        return row["prompt"], row["answer"], row["distractor"]
    from analysis.tasks.laundry import laundry_list_prompts

    row = laundry_list_prompts(_handle.tokenizer, n_items=3, n_per_n=1, split="test", seed=0).iloc[0]
    other = next(item for item in row["items"] if item != row["answer"])
    return row["prompt"], row["answer"], other


def answer_token(handle, word: str, what: str) -> int:
    """Token id of ``" " + word``; :class:`~apps.dashboard.state.LimitError` unless it is one token."""
    from analysis.tasks.common import single_token_id

    word = (word or "").strip()
    tid = single_token_id(handle.tokenizer, word) if word else None
    if tid is None:
        raise LimitError(
            f"{what} {word!r} is not a single token for {handle.name} (with a leading space); "
            "pick a word from the prompt that the tokenizer keeps whole."
        )
    return tid
