"""Cached analyses of the edit lab: Laundry List accuracy by N and held-out LM loss, with or without edits
(in memory), and the positional subspace of issue 15 (on disk between app starts).

**The positional subspace.** :func:`build_subspace` locates the Laundry List channel (movers, suppressors
and their top write directions: :func:`analysis.laundry.pipeline.locate` and
:func:`~analysis.laundry.pipeline.channel_basis`) on dev prompts of the unedited model, then projects the
Edit lab's test prompts (the same prompts as :func:`laundry_and_loss`) at END onto its basis, for the
unedited model and for an edited copy, always in the unedited model's basis so the two scatters share
their axes. Entries live under ``<cache root>/dashboard/edit_lab/subspace/<model>-<hash>/`` (``$SUBLENS_CACHE``
or the user cache dir), the hash covering the model's pack SHA-256 (or weights fingerprint), the list
lengths, the locating settings and the source of the modules that compute it; files are written atomically
(:func:`probes.runs.write_table`), the marker of a complete entry last (``channel.json``; the coordinates
table after its decodability), so a killed run leaves nothing that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path

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


# ---- the positional subspace (issue 15): on disk between app starts ------------------------------------

SUBSPACE_LOCATE_PER_N = 10  # dev prompts per N to locate movers and suppressors (as `laundry subspace`)
SUBSPACE_NULL = 200  # random directions per receiver for the components' z (the CLI default is 500)
SUBSPACE_FORMAT = 1  # bump to invalidate every saved subspace entry
_SUBSPACE_CODE = (
    "analysis.laundry.channel",
    "analysis.laundry.pipeline",
    "analysis.laundry.subspace",
    "analysis.channels.scan",
    "analysis.tasks.laundry",
    "probes.weights",
)
Step = Callable[[float, str], None]  # progress: (fraction done, what runs now)


@cache
def subspace_code_version() -> str:
    """SHA-256 (16 hex) of the source of the modules a saved subspace depends on, plus the format."""
    from importlib.util import find_spec

    h = hashlib.sha256(str(SUBSPACE_FORMAT).encode())
    for name in _SUBSPACE_CODE:
        h.update(Path(find_spec(name).origin).read_bytes())
    return h.hexdigest()[:16]


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def subspace_dir(key: ModelKey, ns: tuple[int, ...], seed: int = 0) -> Path:
    """``<cache root>/dashboard/edit_lab/subspace/<model>-<hash>``: the channel located for list lengths
    ``ns`` (hash of the model's pack SHA-256, ``ns``, the locating settings and the code), with one
    coordinates file per (edit, prompts per N) beside it."""
    from probes.packs import cache_root

    tag = _digest(key.digest, ns, SUBSPACE_LOCATE_PER_N, SUBSPACE_NULL, seed, subspace_code_version())
    return cache_root() / "dashboard" / "edit_lab" / "subspace" / f"{key.name}-{tag}"


def _coords_name(edits: tuple, per_n: int, seed: int) -> str:
    """File stem of the coordinates of ``edits`` (numbers normalised: ``1`` and ``numpy.int64(1)`` agree)."""
    rows = [(int(la), int(h), int(c), float(a)) for la, h, c, a in edits]
    return f"coords-{_digest(rows, int(per_n), int(seed))}"


def _locate(handle, key: ModelKey, ns: tuple[int, ...], seed: int, step: Step) -> dict:
    """Locate the channel on dev prompts (:func:`analysis.laundry.pipeline.locate`), build its basis
    (:func:`~analysis.laundry.pipeline.channel_basis`) and save both; what :func:`_read_channel` returns."""
    from analysis.laundry.pipeline import SubspaceConfig, channel_basis, locate
    from probes.runs import write_json, write_table

    cfg = SubspaceConfig(n_items=ns, locate_per_n=SUBSPACE_LOCATE_PER_N, n_null=SUBSPACE_NULL, seed=seed)
    step(0.05, f"locating movers and suppressors on {SUBSPACE_LOCATE_PER_N} dev prompts per N "
               "and scoring their components against a random null …")  # fmt: skip
    with MODEL_LOCK:
        found = locate(handle, cfg)
    cb = channel_basis(found)
    out = subspace_dir(key, ns, seed)
    out.mkdir(parents=True, exist_ok=True)
    basis = pd.DataFrame(cb["basis"].numpy(), columns=[f"b{i}" for i in range(cb["k"])])
    write_table(basis, out / "basis.parquet")
    write_table(found["components"], out / "components.parquet")
    channel = {
        "model": key.name, "digest": key.digest, "ns": list(ns), "locate_per_n": SUBSPACE_LOCATE_PER_N,
        "n_null": SUBSPACE_NULL, "seed": seed, "code_version": subspace_code_version(),
        "movers": found["channel"]["movers"], "suppressors": found["channel"]["suppressors"],
        "layer": cb["layer"], "k": cb["k"], "dim": cb["dim"],
    }  # fmt: skip
    write_json(channel, out / "channel.json")  # last: its presence marks a complete entry
    return _read_channel(key, ns, seed)


def _read_channel(key: ModelKey, ns: tuple[int, ...], seed: int) -> dict | None:
    """The saved channel (``channel.json`` fields, ``basis`` ``[d_model, k]``, ``components``), or ``None``."""
    import torch

    folder = subspace_dir(key, ns, seed)
    try:
        channel = json.loads((folder / "channel.json").read_text())
        channel["basis"] = torch.tensor(pd.read_parquet(folder / "basis.parquet").to_numpy())
        channel["components"] = pd.read_parquet(folder / "components.parquet")
    except (OSError, ValueError):
        return None
    return channel


def _coordinates(handle, channel: dict, ns, per_n: int, seed: int) -> pd.DataFrame:
    """Coordinates at END of the Edit lab's test prompts (those of :func:`laundry_and_loss`) in the channel's
    basis, read at the first mover's layer, and whether the model picks the answer among the items."""
    from analysis.laundry.channel import laundry_batch, record_end
    from analysis.laundry.pipeline import correct_items
    from analysis.laundry.subspace import coordinate_frame
    from analysis.tasks.laundry import laundry_list_prompts

    prompts = laundry_list_prompts(handle.tokenizer, n_items=list(ns), n_per_n=per_n, split="test", seed=seed)
    batch = laundry_batch(handle, prompts)
    rec = record_end(handle, batch)
    coords = coordinate_frame(rec.resid_pre[channel["layer"]], channel["basis"], batch.prompts,
                              correct_items(rec.item_logits, batch.prompts))  # fmt: skip
    return coords.assign(answer=prompts["answer"].to_numpy(), template=prompts["template"].to_numpy())


def saved_subspace(
    key: ModelKey, edits: tuple, ns: tuple[int, ...], per_n: int, seed: int = 0
) -> dict | None:
    """The saved channel plus ``coords`` and ``decodability`` of ``edits`` (``()``: the unedited model),
    or ``None`` when either is not on disk yet."""
    channel = _read_channel(key, ns, seed)
    if channel is None:
        return None
    name = subspace_dir(key, ns, seed) / _coords_name(edits, per_n, seed)
    try:
        decode = pd.read_parquet(name.with_name(name.name + "-decode.parquet"))
        coords = pd.read_parquet(name.with_name(name.name + ".parquet"))
    except (OSError, ValueError):
        return None
    return {**channel, "coords": coords, "decodability": decode}


def build_subspace(
    handle, key: ModelKey, edits: tuple, ns: tuple[int, ...], per_n: int, seed: int = 0,
    step: Step = lambda f, s: None, start: float = 0.0, share: float = 1.0,
) -> dict:  # fmt: skip
    """:func:`saved_subspace`, computing and saving what is missing: the channel on the unedited model (once
    per model and ``ns``), then the coordinates of ``edits`` applied to a copy, in the same basis. ``step``
    reports progress from ``start`` over ``share`` of the bar."""
    from analysis.laundry.subspace import decodability
    from probes.edits import EditSpec
    from probes.runs import write_table

    done = saved_subspace(key, edits, ns, per_n, seed)
    if done is not None:
        return done
    channel = _read_channel(key, ns, seed) or _locate(
        handle, key, ns, seed, lambda f, s: step(start + share * 0.5 * f, s)
    )
    what = "the edited copy" if edits else "the unedited weights"
    step(start + share * 0.5, f"projecting {per_n} test prompts per N of {what} onto the subspace …")
    if edits:
        work, lock = edited_copy(handle, EditSpec.build(handle, list(edits))), threading.RLock()
    else:
        work, lock = handle, MODEL_LOCK
    with lock:
        coords = _coordinates(work, channel, ns, per_n, seed)
    name = subspace_dir(key, ns, seed) / _coords_name(edits, per_n, seed)
    write_table(decodability(coords, seed=seed), name.with_name(name.name + "-decode.parquet"))
    write_table(coords, name.with_name(name.name + ".parquet"))  # last: marks the entry complete
    step(start + share, f"{what} done")
    return saved_subspace(key, edits, ns, per_n, seed)
