"""Cached analyses of the channels explorer: the component scan, its null, the grid and one pair's panel.

**On disk, between app starts.** The scan (every component × receiver, Q/K/V, with z), its head-pair
summary, the receiver null, the corrected thresholds and the model's shape are saved under
``<cache root>/dashboard/channels/<model>-<key>/`` (``$SUBLENS_CACHE`` or the user cache dir, as for
packs and activations), the key hashing the model's pack SHA-256 (or weights fingerprint), the scan
config and :func:`code_version` (the source of the modules that compute it). Every file is written
atomically (:func:`probes.runs.write_table`) and ``meta.json`` last, so a killed scan leaves no entry
that looks complete. A second start reads the summary (small) and paints the grid without loading the
model; the scan is sorted by receiver in small row groups, so the pair panel reads only one pair's
rows (never the whole table). Removal-effect tables are saved the same way, per (model, prompt, answer, distractor, head, components).

**In memory.** Read-only tables are ``st.cache_resource`` (pages only read them); what a panel shows
is ``st.cache_data``. The maths is :mod:`analysis.channels` (scan, null, significance, figures, effects).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from functools import cache
from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.channels.figures import Chart
from apps.dashboard.models import MODEL_LOCK, ModelKey
from apps.dashboard.state import Head, LimitError

NULL_SAMPLES = 1000  # random directions per receiver for the app's null (the CLI default is 2000)
CACHE_FORMAT = 2  # bump to invalidate every saved scan (2: scan.parquet sorted by receiver, small row groups)
SCAN_ORDER = ["receiver_layer", "receiver_head", "sender_layer", "sender_head", "mode", "component"]
ROW_GROUP = 1 << 16  # rows per parquet row group: a pair's rows are read from one or two of them
_CODE = (
    "analysis.channels.scores",
    "analysis.channels.null",
    "analysis.channels.scan",
    "analysis.channels.significance",
    "probes.head_weights",
    "probes.weights",
)
SCAN_SECONDS_PER_ROW = 2.5e-6  # measured: SmolLM2's 6.8 M rows in ~16 s on a loaded 2-core machine


@cache
def code_version() -> str:
    """SHA-256 (16 hex) of the source of the modules a saved scan depends on, plus :data:`CACHE_FORMAT`."""
    from importlib.util import find_spec

    h = hashlib.sha256(str(CACHE_FORMAT).encode())
    for name in _CODE:  # found, not imported: a saved grid is painted without importing torch
        h.update(Path(find_spec(name).origin).read_bytes())
    return h.hexdigest()[:16]


def channels_root() -> Path:
    """``<cache root>/dashboard/channels``: one folder per saved scan."""
    from probes.packs import cache_root

    return cache_root() / "dashboard" / "channels"


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def scan_dir(key: ModelKey, n_null: int = NULL_SAMPLES, seed: int = 0) -> Path:
    """The folder of ``key``'s scan with this null (whether or not it is saved yet)."""
    return channels_root() / f"{key.name}-{_digest(key.digest, 'QKV', n_null, seed, code_version())}"


def saved_meta(key: ModelKey | None, n_null: int = NULL_SAMPLES, seed: int = 0) -> dict | None:
    """``meta.json`` of a complete saved scan (model info, config, timing), or ``None``."""
    if key is None:
        return None
    try:
        return json.loads((scan_dir(key, n_null, seed) / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def expected_scan_seconds(n_layers: int, n_heads: int, d_head: int) -> float:
    """A rough time for a first scan (Q, K and V rows × :data:`SCAN_SECONDS_PER_ROW`, plus the null)."""
    n = n_layers * n_heads
    pairs = (n * n - n_layers * n_heads * n_heads) / 2
    return 3 * pairs * d_head * SCAN_SECONDS_PER_ROW * 1.15 + 1.0


def build_scan(handle, key: ModelKey, n_null: int = NULL_SAMPLES, seed: int = 0) -> dict:
    """Scan ``handle`` (Q, K, V), summarise, threshold and save it all under :func:`scan_dir`; the meta."""
    from dataclasses import asdict

    from analysis.channels import ScanConfig, head_pair_summary, receiver_null, scan_channels
    from analysis.channels.significance import scan_thresholds
    from probes.runs import write_json, write_table
    from probes.weights import head_weights

    t0 = time.perf_counter()
    weights = head_weights(handle)
    scan = scan_channels(weights, ScanConfig(modes="QKV", n_null=n_null, seed=seed))
    null = receiver_null(weights, n_null, seed=seed, modes="QKV").table()
    out = scan_dir(key, n_null, seed)
    out.mkdir(parents=True, exist_ok=True)
    # sorted by receiver, in small row groups: the pair panel reads one pair through the row-group
    # statistics (~40 ms on SmolLM2) instead of the whole 6.8 M-row table (~1.5 s)
    write_table(scan.sort_values(SCAN_ORDER, kind="stable"), out / "scan.parquet", row_group_size=ROW_GROUP)
    write_table(head_pair_summary(scan), out / "summary.parquet")
    write_table(null, out / "null.parquet")
    write_table(scan_thresholds(scan), out / "thresholds.parquet")
    meta = {
        "model": key.name,
        "digest": key.digest,
        "info": asdict(handle.info),
        "n_null": n_null,
        "seed": seed,
        "code_version": code_version(),
        "seconds": round(time.perf_counter() - t0, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(meta, out / "meta.json")  # last: its presence marks a complete entry
    return meta


def _read(key: ModelKey, name: str, n_null: int, seed: int, filters: list | None = None) -> pd.DataFrame:
    """One saved table (the rows matching ``filters``, pyarrow's form); an unreadable entry is removed
    (so the next run rescans) and reported."""
    folder = scan_dir(key, n_null, seed)
    try:
        return pd.read_parquet(folder / f"{name}.parquet", filters=filters)
    except Exception as err:  # a damaged file: pyarrow raises several types
        shutil.rmtree(folder, ignore_errors=True)
        raise LimitError(
            f"the saved channel scan in {folder} could not be read ({err}); it was removed: reload the page "
            "to scan again."
        ) from None


def saved_tables(key: ModelKey, n_null: int = NULL_SAMPLES, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The small saved tables of a scan: ``summary``, ``null``, ``thresholds`` (read-only)."""
    return _saved_tables(key, n_null, seed)


@st.cache_resource(max_entries=4, show_spinner=False)
def _saved_tables(key: ModelKey, n_null: int, seed: int) -> dict[str, pd.DataFrame]:
    return {name: _read(key, name, n_null, seed) for name in ("summary", "null", "thresholds")}


@st.cache_resource(max_entries=12, show_spinner=False)
def grid_table(key: ModelKey, mode: str, z_min: float, n_heads: int) -> pd.DataFrame:
    """:func:`analysis.channels.figures.grid_frame` of the saved summary for one mode and threshold."""
    from analysis.channels.figures import grid_frame

    return grid_frame(saved_tables(key)["summary"], mode, z_min, n_heads)


@st.cache_resource(max_entries=24, show_spinner=False)
def grid_chart_of(
    key: ModelKey,
    n_layers: int,
    n_heads: int,
    mode: str,
    z_min: float,
    senders: tuple[int, int],
    receivers: tuple[int, int],
) -> Chart:
    """:func:`analysis.channels.figures.grid_chart` of :func:`grid_table`; never modified."""
    from analysis.channels.figures import grid_chart

    return grid_chart(
        grid_table(key, mode, z_min, n_heads), n_layers, n_heads, mode, z_min, senders, receivers
    )


@st.cache_resource(max_entries=12, show_spinner=False)
def layer_chart_of(key: ModelKey, n_layers: int, n_heads: int, mode: str, z_min: float) -> Chart:
    """:func:`analysis.channels.figures.layer_chart` (the layer map) of :func:`grid_table`."""
    from analysis.channels.figures import colour_top, layer_chart, layer_frame

    grid = grid_table(key, mode, z_min, n_heads)
    top = colour_top(grid.loc[grid["shown"], "z"].astype(float), z_min)
    return layer_chart(layer_frame(grid), n_layers, z_min, top)


@st.cache_data(max_entries=64, show_spinner=False)
def pair_components(
    key: ModelKey, sender: Head, receiver: Head, mode: str, n_null: int = NULL_SAMPLES, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series]:
    """Every component of ``sender`` scored against ``receiver`` in ``mode`` (``component,
    singular_value, score, z, p`` by component), and the receiver's ``null_mean, null_std, null_p99``."""
    pair = [
        ("receiver_layer", "==", receiver[0]),
        ("receiver_head", "==", receiver[1]),
        ("sender_layer", "==", sender[0]),
        ("sender_head", "==", sender[1]),
    ]
    rows = _read(key, "scan", n_null, seed, filters=pair)
    rows = rows[rows["mode"].astype(str) == mode]
    rows = rows[["component", "singular_value", "score", "z", "p"]].sort_values("component")
    null = saved_tables(key, n_null, seed)["null"]
    band = null[
        (null["receiver_layer"] == receiver[0])
        & (null["receiver_head"] == receiver[1])
        & (null["mode"].astype(str) == mode)
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


def warm_panel() -> None:
    """Import what the pair panel computes with (effects, task prompts), so the first click of a session
    does not pay for the imports."""
    import analysis.channels.effects  # noqa: F401
    import analysis.tasks.ioi  # noqa: F401
    import analysis.tasks.laundry  # noqa: F401


def effects_path(key: ModelKey, *parts) -> Path:
    """Where a removal-effects table is saved (beside the scan of ``key``)."""
    import analysis.channels.effects as effects

    code = hashlib.sha256(Path(effects.__file__).read_bytes()).hexdigest()[:8]
    return scan_dir(key) / "effects" / f"{_digest(key.digest, code, *parts)}.parquet"


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
    """:func:`analysis.channels.effects.removal_effects` of ``head``'s ``components`` on ``prompt``,
    read from disk when this exact table was computed before (any earlier app start)."""
    from analysis.channels.effects import removal_effects
    from probes.runs import write_table

    path = effects_path(key, prompt, answer_id, distractor_id, head, components)
    if path.is_file():
        try:
            return pd.read_parquet(path)
        except Exception as err:  # damaged: recompute below
            warnings.warn(f"recomputing a damaged saved table {path}: {err}", stacklevel=1)
    with MODEL_LOCK:
        df = removal_effects(_handle, prompt, answer_id, distractor_id, head[0], head[1], components)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(df, path)
    return df


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


@st.cache_resource(max_entries=4, show_spinner=False)
def ensure_scan(_handle, key: ModelKey, n_null: int = NULL_SAMPLES, seed: int = 0) -> dict:
    """The saved scan's meta, scanning (once per process, whichever session asks first) if none is saved."""
    return saved_meta(key, n_null, seed) or build_scan(_handle, key, n_null, seed)
