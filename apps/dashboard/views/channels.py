"""Channels explorer: head×head grid of the strongest component score; click a pair for its components.

Grid: :func:`analysis.channels.head_pair_summary` of the component scan (Q/K/V toggle, z threshold),
drawn by :func:`analysis.channels.figures.grid_figure`. Panel for a (sender → receiver) pair: every
sender component's score with the receiver's null band (:func:`~analysis.channels.figures.component_figure`),
the top tokens each component writes/reads, and the effect of removing a component on an editable IOI
or Laundry List prompt (:mod:`analysis.channels.effects`).
"""

from __future__ import annotations

import time

import streamlit as st

from analysis.channels.figures import component_figure, head_label
from apps.dashboard import cache_channels as cached
from apps.dashboard.models import current_model
from apps.dashboard.state import (
    Z_RANGE,
    GridState,
    LimitError,
    check_prompt,
    on_manual,
    on_selection,
)

st.title("Channels explorer")
handle, key = current_model()
info = handle.info
L, H = info.n_layers, info.n_heads

c1, c2, c3 = st.columns([1, 2, 1])
mode = c1.radio("Composition", ["Q", "K", "V"], horizontal=True, key="ch_mode")
z_min = c2.slider("z threshold (pairs below are grey)", *Z_RANGE, value=3.0, step=0.5, key="ch_z")
top_k = c3.number_input(
    "components in panel", min_value=1, max_value=min(16, info.d_head), value=min(5, info.d_head)
)

grid = cached.grid_table(handle, key, mode, float(z_min))
st.caption(
    f"{len(grid):,} head pairs ({L} layers × {H} heads); {int(grid['shown'].sum()):,} with z ≥ {z_min:g}. "
    "Click a square (or box-select: the strongest is taken) to open the pair."
)

state_key = f"ch_state::{key.name}::{mode}"
state: GridState = st.session_state.get(state_key, GridState())
event = st.plotly_chart(
    cached.grid_figure_of(grid, key, L, H, mode, z_min),
    key=f"grid::{key.name}::{mode}::{z_min}",
    on_select="rerun",
    selection_mode=("points", "box"),
    config={"displaylogo": False},
)
state = on_selection(state, event.selection if event else None, L, H)

with st.expander("…or pick a pair by hand"):
    senders = [(la, h) for la in range(L - 1) for h in range(H)]
    m1, m2, m3 = st.columns([2, 2, 1])
    s = m1.selectbox("sender", senders, format_func=head_label, key="ch_sender")
    receivers = [(la, h) for la in range(s[0] + 1, L) for h in range(H)]
    r = m2.selectbox("receiver", receivers, format_func=head_label, key="ch_receiver")
    if m3.button("Open pair", key="ch_open"):
        state = on_manual(state, (s, r))
st.session_state[state_key] = state

if state.pair is None:
    st.info("No pair selected yet: click a square in the grid (or pick one by hand).")
    st.markdown(f"**Strongest pairs** ({mode} composition)")
    strongest = grid.nlargest(8, "z")[["sender", "receiver", "component", "score", "z"]]
    st.table(strongest.round({"score": 3, "z": 2}), hide_index=True)
    st.stop()

t0 = time.perf_counter()
sender, receiver = state.pair
st.subheader(f"{head_label(sender)} → {head_label(receiver)} ({mode} composition)", anchor="component-panel")
rows, band = cached.pair_components(handle, key, sender, receiver, mode)
best = rows.sort_values("z", ascending=False).head(int(top_k))
comps = tuple(int(c) for c in best["component"])
left, right = st.columns([3, 2])
left.plotly_chart(
    component_figure(rows, band, f"{head_label(sender)} components read by {head_label(receiver)}"),
    key="ch_components",
)
with right:
    st.markdown(
        f"null (random unit directions): mean **{band['null_mean']:.3f}**, std {band['null_std']:.3f}, "
        f"p99 {band['null_p99']:.3f}"
    )
    top = best.iloc[0]
    st.markdown(
        f"strongest: component **{int(top['component'])}**, score **{top['score']:.3f}**, z **{top['z']:.2f}**"
    )
    st.table(best.round({"singular_value": 3, "score": 3, "z": 2, "p": 4}), hide_index=True)

st.markdown("**Top tokens written / read by each component** (through the unembedding / embedding)")
st.table(cached.component_tokens(handle, key, sender, comps).round(3), hide_index=True)

st.markdown(f"**Removing a component of {head_label(sender)}** (α = 0, forward hook) on a prompt")
task = st.radio("task", ["IOI", "Laundry List"], horizontal=True, key="ch_task")
prompt0, ans0, dis0 = cached.task_example(handle, key, task)
prompt = st.text_area("prompt", value=prompt0, key=f"ch_prompt::{task}", height=80)
a1, a2 = st.columns(2)
answer = a1.text_input("answer (expected next word)", value=ans0, key=f"ch_answer::{task}")
distractor = a2.text_input("distractor", value=dis0, key=f"ch_distractor::{task}")
try:
    prompt = check_prompt(prompt)
    aid = cached.answer_token(handle, answer, "answer")
    did = cached.answer_token(handle, distractor, "distractor")
    n_tok = int(handle.tokenize([prompt], chat=False)[1][0])
    limit = min(info.n_ctx or 512, 512)
    if n_tok > limit:
        raise LimitError(f"prompt is {n_tok} tokens; {handle.name} takes at most {limit}: shorten it.")
except LimitError as err:
    st.error(str(err))
else:
    effects = cached.removal_effects(handle, key, prompt, aid, did, sender, comps)
    st.table(effects.round(3), hide_index=True)
st.caption(f"panel computed in {time.perf_counter() - t0:.3f} s")
