"""Cached model and analyses for the dashboard pages, plus the figure helpers that have no home in ``analysis/``.

Caching (Streamlit):

- the model: ``st.cache_resource(max_entries=1)`` (one model per server process); it is never mutated:
  every forward pass runs under :data:`MODEL_LOCK` (hooks registered by one session are not seen by
  another) and weight edits are applied to a deep copy (:func:`edited_copy`), which is then dropped;
- big read-only tables (the full component scan, the receiver null): ``st.cache_resource`` keyed by
  (model name, pack hash or weights fingerprint, parameters); pages only read them;
- everything a page shows: ``st.cache_data`` keyed the same way. Handles are passed as ``_handle``
  (leading underscore: Streamlit does not hash them); ``key`` (name + hash) stands for the model.

All science comes from ``analysis/`` and ``probes/``; the functions here call and arrange.
"""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from apps.dashboard.state import Head

MODEL_LOCK = threading.RLock()  # one forward pass (or hook registration) on the shared model at a time
ENV_MODEL = "SUBLENS_APP_MODEL"  # set by `sublens app --model`; the picker's initial value
NULL_SAMPLES = 1000  # random directions per receiver for the app's null (the CLI default is 2000)


class ModelUnavailable(RuntimeError):
    """A packaged model that is not fetched yet (the dashboard never downloads)."""


@dataclass(frozen=True)
class ModelKey:
    """What identifies a model for caching: its name and pack SHA-256 (or a weights fingerprint)."""

    name: str
    digest: str


# ------------------------------------------------------------------------------------------ models
def model_choices() -> list[str]:
    """``organism`` plus every packaged model name."""
    from probes.packs import PACKS

    return ["organism", *PACKS]


def default_model() -> str:
    """The picker's initial model: ``$SUBLENS_APP_MODEL`` or the embedded default packaged model."""
    from probes.packs import DEFAULT_MODEL

    return os.environ.get(ENV_MODEL) or DEFAULT_MODEL


def _threads() -> None:
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit():
        torch.set_num_threads(int(n))


@st.cache_resource(max_entries=1, show_spinner="loading the model …")
def get_model(name: str):
    """Load ``name`` once per server process (TransformerLens view built eagerly for the hooks)."""
    from probes.loading import load_model
    from probes.packs import PACKS, is_fetched

    _threads()
    if name in PACKS and not is_fetched(PACKS[name]):
        raise ModelUnavailable(
            f"{name} is not fetched yet ({PACKS[name].size / 1e6:.0f} MB); run `sublens models fetch {name}` "
            "in a terminal, then reload this page, or pick 'organism'."
        )
    return load_model(name, backend="tl", fetch=False, progress=False)


def model_key(handle) -> ModelKey:
    """Cache key of a loaded model (pack hash when packaged, else a sampled weights fingerprint)."""
    from probes.edits import weights_fingerprint

    return ModelKey(handle.name, handle.pack_sha256 or weights_fingerprint(handle))


def current_name() -> str:
    """The model name chosen in the sidebar picker."""
    return st.session_state.get("model") or default_model()


def current_model():
    """The model chosen in the sidebar as ``(handle, key)``; stops the page with a message if unavailable."""
    name = current_name()
    try:
        handle = get_model(name)
    except ModelUnavailable as err:
        st.error(str(err))
        st.stop()
    return handle, model_key(handle)


def edited_copy(handle, spec):
    """A deep copy of ``handle``'s model with ``spec`` applied (the cached model is left untouched)."""
    from probes.handle import ModelHandle

    with MODEL_LOCK:
        hf = copy.deepcopy(handle.hf)
    work = ModelHandle(
        hf, handle.tokenizer, name=handle.name, source=handle.source, pack_sha256=handle.pack_sha256
    )
    spec.apply(work)  # checks the spec against the copy (same name and weights) first
    return work


# --------------------------------------------------------------------------------------- channels
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
    """:func:`apps.dashboard.state.grid_frame` of :func:`grid_summary` for one mode and threshold (read-only)."""
    from apps.dashboard.state import grid_frame

    return grid_frame(grid_summary(_handle, key), mode, z_min, _handle.info.n_heads)


@st.cache_data(max_entries=64, show_spinner=False)
def pair_components(
    _handle, key: ModelKey, sender: Head, receiver: Head, mode: str, n_null: int = NULL_SAMPLES, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series]:
    """Every component of ``sender`` scored against ``receiver`` in ``mode`` (by component), and the
    receiver's null statistics (``null_mean, null_std, null_p99``)."""
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


def _token_strings(tokenizer, ids) -> list[str]:
    return [repr(tokenizer.decode([int(i)])) for i in ids]


@st.cache_data(max_entries=64, show_spinner=False)
def component_tokens(
    _handle, key: ModelKey, head: Head, components: tuple[int, ...], k: int = 5
) -> pd.DataFrame:
    """Top tokens each OV component writes (``W_U v_i``) and reads (``W_E u_i``), for ``components``.

    ``u_i, v_i`` are the read/write singular vectors of the head's LayerNorm-folded OV circuit
    (:func:`probes.weights.head_ov_svd`, as the scan uses); the SVD's joint sign is fixed so that both
    lists are the tokens the component moves (a token read along ``+u_i`` is written along ``+v_i``).
    """
    from probes.architecture import unwrap
    from probes.weights import head_ov_svd

    U, S, V = head_ov_svd(_handle, head[0], head[1])
    with MODEL_LOCK, torch.no_grad():
        W_E = unwrap(_handle.hf.get_input_embeddings()).weight.float()
        W_U = unwrap(_handle.hf.get_output_embeddings()).weight.float()
        rows = []
        for c in components:
            write = W_U @ V[:, c].to(W_U)
            read = W_E @ U[:, c].to(W_E)
            rows.append(
                {
                    "component": int(c),
                    "singular_value": float(S[c]),
                    "writes": ", ".join(_token_strings(_handle.tokenizer, write.topk(k).indices)),
                    "reads": ", ".join(_token_strings(_handle.tokenizer, read.topk(k).indices)),
                }
            )
    return pd.DataFrame(rows)


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
    from apps.dashboard.state import LimitError

    word = (word or "").strip()
    tid = single_token_id(handle.tokenizer, word) if word else None
    if tid is None:
        raise LimitError(
            f"{what} {word!r} is not a single token for {handle.name} (with a leading space); "
            "pick a word from the prompt that the tokenizer keeps whole."
        )
    return tid


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
    """Logit difference (answer − distractor) at the prompt's last token, clean and with each of
    ``components`` of ``head`` removed (α = 0, a forward hook: :class:`analysis.interventions.ComponentRescale`)."""
    from analysis.interventions import ComponentRescale, run_with_interventions
    from analysis.tasks.scoring import logit_difference

    def diff(ivs) -> float:
        run = run_with_interventions(_handle, [prompt], ivs)
        return float(logit_difference(run.last_logits().float().numpy(), [answer_id], [distractor_id])[0])

    with MODEL_LOCK:
        clean = diff([])
        rows = [
            {
                "component": int(c),
                "logit_diff_clean": clean,
                "logit_diff_removed": diff(
                    [ComponentRescale.from_component(_handle, head[0], head[1], c, 0.0)]
                ),
            }
            for c in components
        ]
    out = pd.DataFrame(rows)
    out["effect"] = out["logit_diff_removed"] - out["logit_diff_clean"]
    return out


# ---------------------------------------------------------------------------------------- edit lab
@st.cache_data(max_entries=32, show_spinner=False)
def laundry_and_loss(
    _handle,
    key: ModelKey,
    edits: tuple[tuple[int, int, int, float], ...],
    ns: tuple[int, ...],
    per_n: int,
    seed: int = 0,
) -> tuple[pd.DataFrame, float]:
    """Test-split Laundry List accuracy by N and held-out LM loss, with ``edits`` applied to a copy."""
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


def before_after(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Join two ``by_n`` tables: ``N, accuracy_before, accuracy_after, change_pp, chance``."""
    out = pd.DataFrame(
        {
            "N": before["n_items"].astype(int),
            "accuracy_before": before["accuracy_items"].to_numpy(),
            "accuracy_after": after["accuracy_items"].to_numpy(),
        }
    )
    out["change_pp"] = 100 * (out["accuracy_after"] - out["accuracy_before"])
    out["chance"] = 1.0 / out["N"]
    return out


# ----------------------------------------------------------------------------------------- figures
@st.cache_resource(max_entries=12, show_spinner=False)
def grid_figure(
    _grid: pd.DataFrame, key: ModelKey, n_layers: int, n_heads: int, mode: str, z_min: float
) -> go.Figure:
    """Head×head grid of square markers (sender rows, receiver columns), coloured by the strongest
    component's z; pairs below ``z_min`` are drawn faint grey (still clickable).

    Cached per (model, mode, threshold) and never modified. ``customdata`` is numeric
    (``sender_layer, sender_head, receiver_layer, receiver_head, z, component, score``) so that plotly
    sends it as packed binary arrays; WebGL markers above 4,000 pairs.
    """
    n = n_layers * n_heads
    labels = [f"L{i // n_heads}.H{i % n_heads}" for i in range(n)]
    size = max(4, min(26, int(560 / max(n, 1))))
    trace = go.Scattergl if len(_grid) > 4000 else go.Scatter
    fig = go.Figure()
    hover = (
        "L%{customdata[0]}.H%{customdata[1]} → L%{customdata[2]}.H%{customdata[3]}<br>component %{customdata[5]}"
        "<br>score %{customdata[6]:.3f}<br>z %{customdata[4]:.2f}<extra></extra>"
    )
    cols = ["sender_layer", "sender_head", "receiver_layer", "receiver_head", "z", "component", "score"]
    for shown, part in ((False, _grid[~_grid["shown"]]), (True, _grid[_grid["shown"]])):
        if part.empty:
            continue
        marker = dict(symbol="square", size=size, line=dict(width=0))
        if shown:
            marker.update(
                color=part["z"].to_numpy(np.float32),
                colorscale="Viridis",
                colorbar=dict(title="z"),
                cmin=z_min,
            )
        else:
            marker.update(color="rgba(180,180,180,0.35)")
        fig.add_trace(
            trace(
                x=part["x"].to_numpy(np.int32),
                y=part["y"].to_numpy(np.int32),
                mode="markers",
                marker=marker,
                customdata=part[cols].to_numpy(np.float32),
                hovertemplate=hover,
                showlegend=False,
            )
        )
    ticks = list(range(0, n, max(1, n // 24)))
    axis = dict(
        tickvals=ticks,
        ticktext=[labels[i] for i in ticks],
        range=[-0.5, n - 0.5],
        showgrid=False,
        zeroline=False,
    )
    fig.update_layout(
        title=f"Strongest {mode}-composition component per head pair",
        xaxis=dict(title="receiver head", **axis),
        yaxis=dict(title="sender head", autorange=False, **{**axis, "range": [n - 0.5, -0.5]}),
        height=620,
        margin=dict(l=60, r=20, t=50, b=60),
        # no dragmode/clickmode: Streamlit then uses pan + "event+select", so a click selects a square
    )
    return fig


def component_figure(rows: pd.DataFrame, band: pd.Series, title: str) -> go.Figure:
    """Bar chart of a sender's component scores against one receiver, with the null band
    (mean ± 2 std shaded, 99th percentile dashed)."""
    fig = go.Figure(
        go.Bar(
            x=rows["component"],
            y=rows["score"],
            marker_color=["crimson" if s > band["null_p99"] else "steelblue" for s in rows["score"]],
            customdata=rows[["z"]].to_numpy(),
            hovertemplate="component %{x}<br>score %{y:.3f}<br>z %{customdata[0]:.2f}<extra></extra>",
        )
    )
    lo, hi = band["null_mean"] - 2 * band["null_std"], band["null_mean"] + 2 * band["null_std"]
    fig.add_hrect(y0=max(lo, 0.0), y1=hi, fillcolor="grey", opacity=0.2, line_width=0)
    fig.add_hline(y=band["null_p99"], line_dash="dash", line_color="grey", annotation_text="null p99")
    fig.update_layout(
        title=title,
        xaxis_title="sender component (0 = largest singular value)",
        yaxis_title="score",
        height=320,
        margin=dict(l=50, r=20, t=50, b=40),
    )
    return fig


def accuracy_figure(table: pd.DataFrame) -> go.Figure:
    """Laundry List accuracy by N before and after an edit (lines), with chance dotted."""
    fig = go.Figure()
    for col, name in (("accuracy_before", "before"), ("accuracy_after", "after")):
        if col in table:
            fig.add_trace(go.Scatter(x=table["N"], y=table[col], mode="lines+markers", name=name))
    fig.add_trace(
        go.Scatter(x=table["N"], y=table["chance"], mode="lines", name="chance", line=dict(dash="dot"))
    )
    fig.update_layout(
        xaxis_title="list length N",
        yaxis_title="accuracy among items",
        yaxis_range=[0, 1.02],
        height=340,
        margin=dict(l=50, r=20, t=30, b=40),
    )
    return fig


def runs_root() -> Path:
    """Where run directories live (``$SUBLENS_RUNS`` or ``./runs``)."""
    return Path(os.environ.get("SUBLENS_RUNS", "runs"))


# ------------------------------------------------------------------------------------ refusal/attacks
@st.cache_data(max_entries=8, show_spinner="fitting refusal probes and directions …")
def refusal_fit(_handle, key: ModelKey, n_train: int, n_val: int, seed: int = 0) -> dict:
    """:func:`analysis.refusal.pipeline.fit_refusal` on the project's offline demo instructions
    (first ``n_train`` per class to fit, next ``n_val`` to validate; no generation checks)."""
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
def attack_probes(_handle, key: ModelKey, layers: tuple[int, ...], n_fit: int = 16):
    """Per-layer probes for Probe-SSR (:func:`analysis.rerouting.directions.fit_probes`) on demo prompts."""
    from analysis.rerouting.directions import fit_probes
    from probes.datasets import demo_instructions

    harmful, harmless = demo_instructions()
    with MODEL_LOCK:
        return fit_probes(_handle, harmful[:n_fit], harmless[:n_fit], list(layers))


def campaign_dirs(root: Path | None = None) -> list[Path]:
    """Run directories of ``sublens attack run`` (those holding an ``attempts.jsonl``), newest first."""
    from analysis.rerouting.campaign import ATTEMPTS

    root = root or runs_root()
    found = [p.parent for p in root.glob(f"**/{ATTEMPTS}")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


# ---------------------------------------------------------------------------------- representations
@st.cache_resource(max_entries=1, show_spinner="loading the second model …")
def second_model(name: str):
    """Model B of a comparison (its own one-entry cache, so model A stays loaded)."""
    return get_model.__wrapped__(name)  # the uncached loader: model A keeps its own cache entry


@st.cache_data(max_entries=8, show_spinner="capturing both models and scoring every layer pair …")
def layer_cka(_a, key_a: ModelKey, _b, key_b: ModelKey, n_prompts: int, pooling: str) -> pd.DataFrame:
    """:func:`analysis.compare_layers.compare_layers` grid (linear CKA) on the first ``n_prompts`` default prompts."""
    from analysis.compare_layers import DEFAULT_PROMPTS, compare_layers

    with MODEL_LOCK:
        res = compare_layers(
            _a, _b, list(DEFAULT_PROMPTS)[:n_prompts], pooling=pooling, chat=False, progress=False
        )
    return res.grid


def run_dirs(command: str, table: str) -> list[Path]:
    """Run directories ``runs/<command>/*`` that hold ``<table>.parquet``, newest first."""
    root = runs_root() / command
    found = [p.parent for p in root.glob(f"*/{table}.parquet")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


# ------------------------------------------------------------------------------ 3D <-> text gallery
GALLERY_SIZE = 200  # gallery shapes searched live (the anchors are extra)


def text_pack_ready() -> bool:
    """Whether the MiniLM text pack is fetched (the dashboard never downloads it)."""
    from probes.text_encoders import is_text_pack_fetched

    return is_text_pack_fetched()


@st.cache_resource(max_entries=2, show_spinner="generating, encoding and aligning the shape gallery …")
def shape_gallery(n_anchors: int, d: int, method: str, seed: int = 0):
    """:func:`analysis.alignment.search.build_gallery` (PointNet x MiniLM), one per setting (read-only)."""
    from analysis.alignment.search import build_gallery

    _threads()
    return build_gallery(n_anchors=n_anchors, n_gallery=GALLERY_SIZE, d=d, method=method, seed=seed)
