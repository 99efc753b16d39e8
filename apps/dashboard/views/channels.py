"""Channels explorer: head×head grid of the strongest component score; click a pair for its components.

Grid: the saved scan's head-pair summary (:mod:`apps.dashboard.cache_channels`, kept on disk between
app starts, so a second start paints it without loading the model), Q/K/V toggle, a multiple-testing
corrected threshold (:mod:`analysis.channels.significance`) or a fixed z, drawn by
:func:`analysis.channels.figures.grid_chart` (ECharts, canvas: it paints before plotly's bundle would
have loaded); large models get a layer map that zooms the grid. Pick a pair by clicking a square, a row
of the strongest-pairs table or by hand. Mode and pair live in the
session and the URL (``?mode=V&pair=L0.H1-L2.H3``), so they survive a page switch and a reload.
Panel: every sender component's score with the receiver's null band, the top tokens each component
writes/reads, and the effect of removing a component on an editable IOI or Laundry List prompt.
"""

from __future__ import annotations

import time

import streamlit as st

from analysis.channels.figures import PAIR_COLUMNS, Chart, component_figure, head_label, z_histogram
from analysis.channels.significance import CORRECTIONS, tail_ratio, threshold_table
from apps.dashboard import cache_channels as cached
from apps.dashboard.models import current_model, default_model, quick_key, stored_info
from apps.dashboard.state import (
    Z_RANGE,
    GridState,
    LimitError,
    block_from_selection,
    check_prompt,
    check_range,
    forget,
    on_manual,
    on_pick,
    on_selection,
    pair_from_row,
    pair_text,
    parse_pair,
    zoom_around,
)

MAP_ABOVE = 96  # heads (layers × heads) above which the layer map and the zoom sliders are shown
THRESHOLDS = {"Bonferroni 5%": "bonferroni", "BH 5% (FDR)": "bh", "fixed z": None}
PAINT_S = 1.5  # seconds the model's first load waits after the grid is sent (see _let_the_browser_paint)


def _sticky(key: str, default) -> None:
    """Give widget ``key`` its value from before a page switch (Streamlit drops an unrendered widget's
    state), else ``default``."""
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(f"keep::{key}", default)


def _keep(*keys: str) -> None:
    for k in keys:
        st.session_state[f"keep::{k}"] = st.session_state[k]


def _saved_scan(name: str):
    """``(handle or None, key, info, meta, how)``: the saved scan without loading the model when possible."""
    key = quick_key(name)
    meta = cached.saved_meta(key)
    info = stored_info(key)
    if meta is not None and info is not None:
        return None, key, info, meta, "read from disk"
    handle, key = current_model()
    meta = cached.saved_meta(key)
    if meta is not None:
        return handle, key, handle.info, meta, "read from disk"
    i = handle.info
    est = cached.expected_scan_seconds(i.n_layers, i.n_heads, i.d_head)
    label = (
        f"Scanning every component of {name} against every receiver (Q, K, V): first time for this model, "
        f"roughly {est:.0f} s on an idle machine; saved to disk for later starts …"
    )
    with st.status(label) as box:
        meta = cached.ensure_scan(handle, key)
        box.update(label=f"scan done in {meta['seconds']:.1f} s and saved", state="complete")
    return handle, key, i, meta, "computed now"


def _let_the_browser_paint() -> None:
    """Wait :data:`PAINT_S` before the model's first load. Importing torch takes a CPU core (and the GIL)
    for seconds; started at once it slowed the browser's drawing of the grid by ~0.9 s on the 2-core CPU
    (grid painted 2.8–3.4 s vs 1.9–2.3 s, 4 runs each). A click meanwhile is not kept waiting: each tick
    is a Streamlit call, where a pending rerun interrupts the script."""
    tick = st.empty()
    for _ in range(round(PAINT_S / 0.1)):
        time.sleep(0.1)
        tick.empty()


def _placeholder_chart(slot) -> None:
    """An empty chart where the grid will be: the browser starts loading the ECharts bundle while the
    server reads the saved tables."""
    slot.echarts_chart({"title": {"text": "drawing the grid …", "left": 10}}, height=400, theme=None)


def _draw(slot, chart: Chart, key: str):
    """``chart`` as a clickable ECharts element (its own layout, not Streamlit's theme); returns the
    selection state."""
    return slot.echarts_chart(
        chart.spec, key=key, on_select="rerun", width=chart.width, height=chart.height, theme=None
    )


def _rows(chart: Chart, columns) -> list[list]:
    """Per series of ``chart``, its dataset's ``columns`` as rows (what a selection's indices point at)."""
    return [ds["source"][list(columns)].to_numpy().tolist() for ds in chart.spec["dataset"]]


st.title("Channels explorer")
model = st.session_state.get("model") or default_model()
handle, key, info, meta, how = _saved_scan(model)
L, H = info.n_layers, info.n_heads
big = L * H > MAP_ABOVE
# the layout first, so the grid's chart slot reaches the browser before anything is read
controls, notes = st.container(), st.container()
grid_col, map_col = st.columns([3, 1]) if big else (st.container(), None)
with grid_col:
    grid_slot = st.empty()
first_run = "channels.chart_slot_sent" not in st.session_state  # of a session; later reruns keep the grid
if first_run:
    _placeholder_chart(grid_slot)
    st.session_state["channels.chart_slot_sent"] = True
try:
    tables = cached.saved_tables(key)
except LimitError as err:  # a damaged saved scan: removed, the next run scans again
    st.error(str(err))
    st.stop()

qp_mode = st.query_params.get("mode")
_sticky("ch_mode", qp_mode if qp_mode in ("Q", "K", "V") else "Q")
_sticky("ch_threshold", "Bonferroni 5%")
_sticky("ch_z", 3.0)
_sticky("ch_top_k", min(5, info.d_head))
c1, c2, c3, c4 = controls.columns([1, 2, 2, 1])
mode = c1.radio(
    "Composition",
    ["Q", "K", "V"],
    horizontal=True,
    key="ch_mode",
    help="How the sender's output reaches the receiver: through its queries (Q), keys (K) or values (V).",
)
method = THRESHOLDS[
    c2.radio(
        "threshold",
        list(THRESHOLDS),
        horizontal=True,
        key="ch_threshold",
        help="Corrected for testing every sender component against every receiver; 'fixed z' uses the slider.",
    )
]
c3.slider("fixed z (pairs below are grey)", *Z_RANGE, step=0.5, key="ch_z", disabled=method is not None)
top_k = c4.number_input(f"components in panel (1–{min(16, info.d_head)})", step=1, key="ch_top_k")
_keep("ch_mode", "ch_threshold", "ch_z", "ch_top_k")

thresholds = tables["thresholds"]
if method is None:
    z_min, rule = float(st.session_state["ch_z"]), f"fixed z ≥ {st.session_state['ch_z']:g}, no correction"
else:
    row = thresholds[(thresholds["mode"] == mode) & (thresholds["method"] == method)].iloc[0]
    z_min = float(row["z"])
    rule = f"{CORRECTIONS[method]} 5% over {int(row['n_tests']):,} component tests (components × receivers)"

grid = cached.grid_table(key, mode, z_min, H)
strongest = grid.nlargest(10, "z")
n_pass = int(grid["shown"].sum())
notes.caption(
    f"**{n_pass:,} of {len(grid):,} head pairs** pass z ≥ {z_min:.2f} ({rule}). Scan {how} "
    f"({meta['n_null']} null directions per receiver; took {meta['seconds']:.1f} s on {meta['created'][:10]})."
)
if method is not None:
    ratio = tail_ratio(tables["null"], mode)
    notes.caption(
        f"p-values use a normal approximation of each receiver's null (the null's own p-values stop at "
        f"1/{meta['n_null'] + 1}); the null's 99th percentile sits at {ratio:.2f}× the normal z, so its tail "
        f"is {'heavier than normal and these p-values are optimistic' if ratio > 1.02 else 'close to normal'}."
    )

# ------------------------------------------------------------------ state: the open pair (session + URL)
state_key = f"channels.state::{model}"
if state_key not in st.session_state:
    st.session_state[state_key] = GridState(pair=parse_pair(st.query_params.get("pair"), L, H))
state: GridState = st.session_state[state_key]

# ------------------------------------------------------------------ zoom (large models): layer map
senders, receivers = (0, L - 2), (1, L - 1)
if big:
    map_key = f"ch_map::{model}::{mode}::{z_min:.3f}"
    clicked = getattr(st.session_state.get(map_key), "selection", None)
    block = None
    if clicked:  # the map's rows are read only then: the grid goes to the browser first
        map_rows = _rows(cached.layer_chart_of(key, L, H, mode, z_min), ["sender_layer", "receiver_layer"])
        block = block_from_selection(clicked, map_rows[0], L)
    top = strongest.iloc[0]
    _sticky("ch_senders", zoom_around(int(top["sender_layer"]), L))
    _sticky("ch_receivers", zoom_around(int(top["receiver_layer"]), L))
    if block is not None and block != st.session_state.get("ch_block"):
        st.session_state["ch_senders"], st.session_state["ch_receivers"] = (
            zoom_around(block[0], L),
            zoom_around(block[1], L),
        )
    st.session_state["ch_block"] = block
    # the sliders' values, read before they are drawn: the grid goes to the browser before the map
    senders, receivers = tuple(st.session_state["ch_senders"]), tuple(st.session_state["ch_receivers"])

with grid_col:
    grid_key = f"grid::{model}::{mode}::{z_min:.3f}::{senders}::{receivers}"
    if grid_key not in st.session_state:  # a new chart (or back from another page): nothing to compare
        state = forget(state, "grid")
    chart = cached.grid_chart_of(key, L, H, mode, z_min, tuple(senders), tuple(receivers))
    event = _draw(grid_slot, chart, grid_key)
    if first_run:  # the grid reaches the browser alone and is drawn before the rest of the page (~0.3 s)
        time.sleep(0.2)
    st.caption(
        "Each square is one (sender head → receiver head) pair, coloured by its strongest component's z; "
        "thin lines mark layer boundaries. Click a square (or use the box tool, top right: the strongest is "
        "taken) to open it; the toolbar saves the grid as PNG."
        + (" Zoom with the layer map or the sliders." if big else "")
    )
if big:
    with map_col:
        _draw(st.container(), cached.layer_chart_of(key, L, H, mode, z_min), map_key)
        st.slider("sender layers", 0, L - 1, key="ch_senders")
        st.slider("receiver layers", 0, L - 1, key="ch_receivers")
        _keep("ch_senders", "ch_receivers")
state = on_selection(state, event.selection if event else None, _rows(chart, PAIR_COLUMNS), L, H, grid_key)

st.markdown(f"**Strongest pairs** ({mode} composition): click a row to open the pair")
table_key = f"ch_strongest::{model}::{mode}"
if table_key not in st.session_state:
    state = forget(state, "table")
picked = st.dataframe(
    strongest[["sender", "receiver", "component", "score", "z"]].round({"score": 3, "z": 2}),
    hide_index=True,
    key=table_key,
    on_select="rerun",
    selection_mode="single-row",
)
state = on_pick(state, "table", table_key, pair_from_row(picked.selection.rows, strongest))

with st.expander("…or pick a pair by hand"):
    heads_out = [(la, h) for la in range(L - 1) for h in range(H)]
    m1, m2, m3 = st.columns([2, 2, 1])
    s = m1.selectbox("sender", heads_out, format_func=head_label, key="ch_sender")
    heads_in = [(la, h) for la in range(s[0] + 1, L) for h in range(H)]
    r = m2.selectbox("receiver", heads_in, format_func=head_label, key="ch_receiver")
    if m3.button("Open pair", key="ch_open"):
        state = on_manual(state, (s, r))
st.session_state[state_key] = state
st.query_params["mode"] = mode
if state.pair is None:
    st.query_params.pop("pair", None)
    st.info("No pair selected yet: click a square in the grid, a row of the table, or pick one by hand.")
    st.markdown("**Thresholds of this scan**: the z a component must reach against its receiver's null (5%)")
    st.table(threshold_table(thresholds).style.format(precision=2, thousands=","), hide_index=True)
    _let_the_browser_paint()
    # a plotly chart now, while you look: its bundle then loads before the panel's bars need it
    st.plotly_chart(z_histogram(grid, z_min, mode), key="ch_z_histogram")
    with st.spinner("preparing the pair panel (loading the model) …"):
        current_model()
        cached.warm_panel()
    st.stop()
st.query_params["pair"] = pair_text(state.pair)

# ------------------------------------------------------------------ the pair panel
t0 = time.perf_counter()
sender, receiver = state.pair
st.subheader(f"{head_label(sender)} → {head_label(receiver)} ({mode} composition)", anchor="component-panel")
try:
    k_max = min(16, info.d_head)
    top_k = int(check_range(top_k, (1, k_max), "components in panel"))
except LimitError as err:
    st.error(str(err))
    st.stop()
with st.spinner("reading the pair from the saved scan …"):
    rows, band = cached.pair_components(key, sender, receiver, mode)
best = rows.sort_values("z", ascending=False).head(top_k)
comps = tuple(int(c) for c in best["component"])
left, right = st.columns([3, 2])
with right:  # the numbers first: they reach the browser before the bars are drawn
    st.markdown(
        f"null (random unit directions): mean **{band['null_mean']:.3f}**, std {band['null_std']:.3f}, "
        f"p99 {band['null_p99']:.3f}"
    )
    top = best.iloc[0]
    st.markdown(
        f"strongest: component **{int(top['component'])}**, score **{top['score']:.3f}**, z **{top['z']:.2f}**"
    )
    st.table(best.round({"singular_value": 3, "score": 3, "z": 2, "p": 4}), hide_index=True)
left.plotly_chart(
    component_figure(rows, band, f"{head_label(sender)} components read by {head_label(receiver)}"),
    key="ch_components",
)
left.caption(
    "Crimson: the component scores above the receiver's null p99 (stronger than 99% of random directions); "
    "steel blue: within the null. Grey band: null mean ± 2 std."
)

if handle is None:
    with st.spinner(f"loading {model} for the tokens and removal effects …"):
        handle, _ = current_model()
st.markdown("**Top tokens written / read by each component** (through the unembedding / embedding)")
with st.spinner("reading tokens through the unembedding …"):
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
    last = st.session_state.get("channels.effects_s")
    hint = f"about {last:.0f} s last time" if last else "one forward pass per component"
    e0 = time.perf_counter()
    with st.spinner(f"removing each of {len(comps)} components and re-running the prompt ({hint}) …"):
        effects = cached.removal_effects(handle, key, prompt, aid, did, sender, comps)
    st.session_state["channels.effects_s"] = max(time.perf_counter() - e0, 0.5)
    st.table(effects.round(3), hide_index=True)
st.caption(f"panel computed in {time.perf_counter() - t0:.3f} s")
