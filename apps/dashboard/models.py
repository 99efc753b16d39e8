"""The dashboard's models: the sidebar picker's choices, the cached model, its cache key and edited copies.

The model is ``st.cache_resource(max_entries=1)`` (one per server process) and never mutated: every
forward pass (or hook registration) runs under :data:`MODEL_LOCK`, so hooks registered by one session
are not seen by another, and weight edits go to a deep copy (:func:`edited_copy`) that is then dropped.
Cached analyses take the handle as ``_handle`` (leading underscore: Streamlit does not hash it) and a
:class:`ModelKey` that stands for the model.
"""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass

import streamlit as st
import torch

MODEL_LOCK = threading.RLock()  # one forward pass (or hook registration) on the shared model at a time
ENV_MODEL = "SUBLENS_APP_MODEL"  # set by `sublens app --model`; the picker's initial value


class ModelUnavailable(RuntimeError):
    """A packaged model that is not fetched yet (the dashboard never downloads)."""


@dataclass(frozen=True)
class ModelKey:
    """What identifies a model for caching: its name and pack SHA-256 (or a weights fingerprint)."""

    name: str
    digest: str


def model_choices() -> list[str]:
    """``organism`` plus every packaged model name."""
    from probes.packs import PACKS

    return ["organism", *PACKS]


def default_model() -> str:
    """The picker's initial model: ``$SUBLENS_APP_MODEL`` or the embedded default packaged model."""
    from probes.packs import DEFAULT_MODEL

    return os.environ.get(ENV_MODEL) or DEFAULT_MODEL


def use_thread_setting() -> None:
    """Apply ``$OMP_NUM_THREADS`` to torch (the server process may have started torch with more)."""
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit():
        torch.set_num_threads(int(n))


@st.cache_resource(max_entries=1, show_spinner="loading the model …")
def get_model(name: str):
    """Load ``name`` once per server process (TransformerLens view built eagerly for the hooks)."""
    from probes.loading import load_model
    from probes.packs import PACKS, is_fetched

    use_thread_setting()
    if name in PACKS and not is_fetched(PACKS[name]):
        raise ModelUnavailable(
            f"{name} is not fetched yet ({PACKS[name].size / 1e6:.0f} MB); run `sublens models fetch {name}` "
            "in a terminal, then reload this page, or pick 'organism'."
        )
    return load_model(name, backend="tl", fetch=False, progress=False)


@st.cache_resource(max_entries=1, show_spinner="loading the second model …")
def second_model(name: str):
    """Model B of a comparison (its own one-entry cache, so model A stays loaded)."""
    return get_model.__wrapped__(name)  # the uncached loader: model A keeps its own cache entry


def model_key(handle) -> ModelKey:
    """Cache key of a loaded model (pack hash when packaged, else a sampled weights fingerprint)."""
    from probes.edits import weights_fingerprint

    return ModelKey(handle.name, handle.pack_sha256 or weights_fingerprint(handle))


def current_model():
    """The model chosen in the sidebar as ``(handle, key)``; stops the page with a message if unavailable."""
    name = st.session_state.get("model") or default_model()
    try:
        handle = get_model(name)
    except ModelUnavailable as err:
        st.error(str(err))
        st.stop()
    return handle, model_key(handle)


def edited_copy(handle, spec):
    """A deep copy of ``handle``'s model with ``spec`` (:class:`probes.edits.EditSpec`) applied; the
    cached model is left untouched."""
    from probes.handle import ModelHandle

    with MODEL_LOCK:
        hf = copy.deepcopy(handle.hf)
    work = ModelHandle(
        hf, handle.tokenizer, name=handle.name, source=handle.source, pack_sha256=handle.pack_sha256
    )
    spec.apply(work)  # checks the spec against the copy (same name and weights) first
    return work
