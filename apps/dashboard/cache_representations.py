"""Cached analyses of the representations page: layer×layer CKA between two models, the 3D↔text gallery."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from apps.dashboard.models import MODEL_LOCK, ModelKey, use_thread_setting

GALLERY_SIZE = 200  # gallery shapes searched live (the anchors are extra)


@st.cache_data(max_entries=8, show_spinner="capturing both models and scoring every layer pair …")
def layer_cka(
    _a, key_a: ModelKey, _b, key_b: ModelKey, n_prompts: int, pooling: str, metric: str = "linear_cka"
) -> pd.DataFrame:
    """:func:`analysis.compare_layers.compare_layers` grid (``metric``: ``linear_cka`` or ``debiased_cka``)
    on the first ``n_prompts`` default prompts."""
    from analysis.compare_layers import DEFAULT_PROMPTS, compare_layers

    prompts = list(DEFAULT_PROMPTS)[:n_prompts]
    with MODEL_LOCK:
        res = compare_layers(_a, _b, prompts, pooling=pooling, metrics=metric, chat=False, progress=False)
    return res.grid


def text_pack_ready() -> bool:
    """Whether the MiniLM text pack is fetched (the dashboard never downloads it)."""
    from probes.text_encoders import is_text_pack_fetched

    return is_text_pack_fetched()


@st.cache_resource(max_entries=2, show_spinner="generating, encoding and aligning the shape gallery …")
def shape_gallery(n_anchors: int, d: int, method: str, seed: int = 0):
    """:func:`analysis.alignment.build_gallery` (PointNet × MiniLM), one per setting (read-only)."""
    from analysis.alignment import build_gallery

    use_thread_setting()
    return build_gallery(n_anchors=n_anchors, n_gallery=GALLERY_SIZE, d=d, method=method, seed=seed)
