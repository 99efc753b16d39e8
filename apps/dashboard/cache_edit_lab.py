"""Cached analyses of the edit lab: Laundry List accuracy by N and held-out LM loss, with or without edits."""

from __future__ import annotations

import threading

import pandas as pd
import streamlit as st

from apps.dashboard.models import MODEL_LOCK, ModelKey, edited_copy


@st.cache_data(max_entries=32, show_spinner=False)
def laundry_and_loss(
    _handle,
    key: ModelKey,
    edits: tuple[tuple[int, int, int, float], ...],
    ns: tuple[int, ...],
    per_n: int,
    seed: int = 0,
) -> tuple[pd.DataFrame, float]:
    """Test-split Laundry List ``by_n`` table and held-out LM loss (nats/token), with ``edits``
    ``(layer, head, component, alpha)`` applied to a copy of the model."""
    from analysis.tasks.evaluate import evaluate_laundry
    from analysis.tasks.heldout import heldout_texts
    from probes.edits import EditSpec
    from probes.lm_loss import lm_loss

    if edits:
        work = edited_copy(_handle, EditSpec.build(_handle, list(edits)))
        lock = threading.RLock()  # the copy is private to this call
    else:
        work, lock = _handle, MODEL_LOCK
    with lock:
        res = evaluate_laundry(work, n_items=list(ns), n_per_n=per_n, split="test", seed=seed, progress=False)
        loss = lm_loss(work, heldout_texts(), max_tokens=min(256, work.info.n_ctx or 256))
    return res.by_n, loss
