"""Cached analyses of the refusal & attacks page: refusal probes, directions and heads; the live attack's
probes, readouts and replies; the page's guidance on which model refuses.

The probes-tab fit uses the project's offline demo instructions (:func:`probes.datasets.demo_instructions`).
The live attack's probes fit on the refusal splits (``harmful_train`` / ``harmless_train``, found as
:func:`probes.datasets.refusal_data_dir` says) when present: probes fitted on the 16 mild demo requests
per class read real harmful requests (``harmful_val``) as harmless at SmolLM2 layers 15 and 21
(P(harmless) 0.95-1.0), so the attack had nothing to do; fitted on 32 + 32 split prompts they read them
as harmful (median P(harmless) 0.00 at layer 15).
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


ATTACK_FIT = 32  # prompts per class the live attack's probes are fitted on
REFUSING_MODEL = "qwen2.5-coder-0.5b-instruct"  # the packaged model that refuses (README: 21/39 harmful val)
WEAK_REFUSERS = {
    "smollm2-135m-instruct": ("SmolLM2-135M", "1/39"),
}  # models that barely refuse: display name, harmful_val requests refused (baseline_check, 24 new tokens)


def refusal_guidance(model: str) -> str | None:
    """What the Refusal page says first for ``model``: for a model that barely refuses, that fact and the
    packaged model that does refuse (its size, and whether it is fetched); ``None`` otherwise.

    >>> "barely refuses" in refusal_guidance("smollm2-135m-instruct")
    True
    >>> refusal_guidance(REFUSING_MODEL) is None
    True
    """
    from probes.packs import PACKS, is_fetched

    if model not in WEAK_REFUSERS:
        return None
    name, rate = WEAK_REFUSERS[model]
    text = (
        f"{name} barely refuses: it refused {rate} harmful validation requests (refusal-phrase matcher, "
        "24 new tokens), so its refusal probes and attacks show weak signals."
    )
    pack = PACKS.get(REFUSING_MODEL)
    if pack is None:
        return text
    size = f"{pack.size / 1e6:.0f} MB download, about {pack.fp32_memory_gb:.1f} GB in memory"
    how = (
        "pick it in the sidebar"
        if is_fetched(pack)
        else f"fetch it with `sublens models fetch {REFUSING_MODEL}`, then pick it in the sidebar"
    )
    return (
        f"{text} For refusal work use **{REFUSING_MODEL}** ({size}; it refuses 21/39 of the same "
        f"requests): {how}."
    )


def attack_prompts(n_fit: int = ATTACK_FIT) -> tuple[list[str], list[str], str]:
    """``(harmful, harmless, source)``: the refusal splits' train prompts when found, else the demo set."""
    from probes.datasets import demo_instructions, refusal_data_dir, shared_refusal_split

    if refusal_data_dir() is not None:
        harmful = shared_refusal_split("harmful_train", limit=n_fit)
        harmless = shared_refusal_split("harmless_train", limit=n_fit)
        return harmful, harmless, f"{n_fit} + {n_fit} prompts of the refusal splits (harmful/harmless_train)"
    harmful, harmless = demo_instructions()
    n = min(n_fit, len(harmful), len(harmless))
    return (
        harmful[:n],
        harmless[:n],
        f"{n} + {n} in-repo demo prompts (mild requests; set $SUBLENS_REFUSAL_DATA for the refusal splits)",
    )


@st.cache_resource(max_entries=4, show_spinner="fitting the attack's probes …")
def attack_probes(
    _handle, key: ModelKey, layers: tuple[int, ...], n_fit: int = ATTACK_FIT
) -> tuple[dict[int, tuple[Tensor, Tensor]], str]:
    """Probe-SSR probes ``{layer: (w, b)}`` with ``sigmoid(x · w + b) = P(harmless)``, from
    :func:`analysis.refusal.probing.refusal_probes` on :func:`attack_prompts`, and where they came from."""
    from analysis.refusal.probing import refusal_probes

    harmful, harmless, source = attack_prompts(n_fit)
    with MODEL_LOCK:
        fit = refusal_probes(_handle, harmful, harmless, list(layers))
    return {layer: fit.probe(layer, "harmless") for layer in layers}, source


def readouts(handle, prompt: str, probes: dict[int, tuple[Tensor, Tensor]], suffix: list[int]) -> dict:
    """P(harmless) of each probe on ``prompt`` followed by suffix ids ``suffix`` (``[]``: the bare prompt),
    read at the last token exactly as the attack's loss reads it."""
    from analysis.rerouting import ProbeObjective, evaluate, prompt_slots

    slots = prompt_slots(handle, prompt)
    ids = torch.tensor([list(suffix)], dtype=torch.long)
    out = {}
    with MODEL_LOCK:
        for layer, probe in probes.items():
            loss = evaluate(handle, slots, ProbeObjective({layer: probe}), ids)  # softplus(-logit)
            out[layer] = float(torch.exp(-loss[0]))  # = sigmoid(logit)
    return out


def reply(handle, text: str, max_new_tokens: int = 48) -> str:
    """The model's greedy reply to ``text`` (chat template applied)."""
    with MODEL_LOCK:
        return handle.generate(text, max_new_tokens=max_new_tokens)
