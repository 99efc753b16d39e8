"""Cached analyses of the refusal & attacks page: refusal probes, directions and heads; the live attack's probes.

Both fit on the project's offline demo instructions (:func:`probes.datasets.demo_instructions`).
"""

from __future__ import annotations

import streamlit as st
import torch
from torch import Tensor

from apps.dashboard.models import MODEL_LOCK, ModelKey


@st.cache_data(max_entries=8, show_spinner="fitting refusal probes and directions …")
def refusal_fit(_handle, key: ModelKey, n_train: int, n_val: int, seed: int = 0) -> dict:
    """:func:`analysis.refusal.pipeline.fit_refusal` (no generation checks) on the first ``n_train`` demo
    prompts per class, validated on the next ``n_val``: ``{"probes", "projections", "heads"}`` tables
    and the direction ``"layer"``."""
    from analysis.refusal.pipeline import RefusalConfig, fit_refusal
    from probes.datasets import demo_instructions

    harmful, harmless = demo_instructions()
    torch.manual_seed(seed)
    with MODEL_LOCK:
        res = fit_refusal(
            _handle,
            harmful[:n_train],
            harmless[:n_train],
            harmful[n_train : n_train + n_val],
            harmless[n_train : n_train + n_val],
            config=RefusalConfig(n_train=n_train, n_val=n_val, generate=False, seed=seed),
            progress=False,
        )
    return {
        "probes": res.probes.table,
        "projections": res.projections,
        "heads": res.heads,
        "layer": res.layer,
    }


@st.cache_resource(max_entries=4, show_spinner="fitting the attack's probes …")
def attack_probes(
    _handle, key: ModelKey, layers: tuple[int, ...], n_fit: int = 16
) -> dict[int, tuple[Tensor, Tensor]]:
    """Probe-SSR probes ``{layer: (w, b)}`` with ``sigmoid(x · w + b) = P(harmless)``, from
    :func:`analysis.refusal.probing.refusal_probes` on the first ``n_fit`` demo prompts per class."""
    from analysis.refusal.probing import refusal_probes
    from probes.datasets import demo_instructions

    harmful, harmless = demo_instructions()
    with MODEL_LOCK:
        fit = refusal_probes(_handle, harmful[:n_fit], harmless[:n_fit], list(layers))
    return {layer: fit.probe(layer, "harmless") for layer in layers}
