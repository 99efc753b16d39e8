"""Edit lab: rescale OV components (α) and see Laundry List accuracy by N and the LM loss, before/after.

Edits are :class:`probes.edits.EditSpec` rank-1 rescalings, applied to a deep copy of the model (the
cached model is never touched). Specs are saved/loaded as ``<stem>.json`` + ``<stem>.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.tasks.evaluate import laundry_gain
from analysis.tasks.figures import accuracy_figure
from apps.dashboard.cache_edit_lab import laundry_and_loss
from apps.dashboard.models import current_model
from apps.dashboard.runs import runs_root
from apps.dashboard.state import (
    ALPHA_RANGE,
    MAX_EDITS,
    N_RANGE,
    PER_N_RANGE,
    LimitError,
    check_edits,
    check_range,
)
from probes.errors import SubspaceLensError

st.title("Edit lab")
handle, key = current_model()
info = handle.info
st.caption(
    f"Rescale OV components of {handle.name}: α = 0 removes a component, 1 leaves it, −1 flips it "
    f"(α in {ALPHA_RANGE[0]:g}..{ALPHA_RANGE[1]:g}, at most {MAX_EDITS} rows). Layers 0..{info.n_layers - 1}, "
    f"heads 0..{info.n_heads - 1}, components 0..{info.d_head - 1} (0 = largest singular value)."
)

rows_key = f"edit_rows::{key.name}"
if rows_key not in st.session_state:
    st.session_state[rows_key] = pd.DataFrame(
        {"layer": [info.n_layers // 2], "head": [1 % info.n_heads], "component": [0], "alpha": [0.0]}
    )

with st.expander("Load a saved edit spec"):
    load_path = st.text_input("path of a .json edit spec", key="edit_load_path")
    if st.button("Load", key="edit_load"):
        from probes.edits import EditSpec

        try:
            spec = EditSpec.load(load_path)
            spec.check(handle)
        except SubspaceLensError as err:
            st.error(str(err))
        else:
            st.session_state[rows_key] = pd.DataFrame(
                [
                    {"layer": e.layer, "head": e.head, "component": e.component, "alpha": e.alpha}
                    for e in spec.edits
                ]
            )
            st.session_state.pop(f"edit_table::{key.name}", None)
            st.success(f"loaded {len(spec.edits)} edits from {load_path}")

table = st.data_editor(
    st.session_state[rows_key],
    num_rows="dynamic",
    key=f"edit_table::{key.name}",
    column_config={
        "layer": st.column_config.NumberColumn(
            min_value=0, max_value=info.n_layers - 1, step=1, required=True
        ),
        "head": st.column_config.NumberColumn(min_value=0, max_value=info.n_heads - 1, step=1, required=True),
        "component": st.column_config.NumberColumn(
            min_value=0, max_value=info.d_head - 1, step=1, required=True
        ),
        "alpha": st.column_config.NumberColumn(
            min_value=ALPHA_RANGE[0], max_value=ALPHA_RANGE[1], step=0.1, format="%.2f", required=True
        ),
    },
)

c1, c2 = st.columns(2)
n_lo, n_hi = c1.slider("list lengths N", *N_RANGE, value=(2, 6), key="edit_ns")
per_n = c2.number_input("prompts per N", *PER_N_RANGE, value=20, key="edit_per_n")

try:
    edits = tuple(
        tuple(e)
        for e in check_edits(
            table.dropna(how="all").itertuples(index=False), info.n_layers, info.n_heads, info.d_head
        )
    )
    per_n = int(check_range(int(per_n), PER_N_RANGE, "prompts per N"))
except LimitError as err:
    st.error(str(err))
    st.stop()
ns = tuple(range(int(n_lo), int(n_hi) + 1))

if st.button("Apply edit", type="primary", key="edit_apply"):
    st.session_state["edit_applied"] = (key, edits, ns, per_n)

before, loss0 = laundry_and_loss(handle, key, (), ns, per_n)
applied = st.session_state.get("edit_applied")
if applied and applied[0] == key and applied[2:] == (ns, per_n):
    with st.spinner("evaluating the edited copy …"):
        try:
            after, loss1 = laundry_and_loss(handle, key, applied[1], ns, per_n)
        except SubspaceLensError as err:
            st.error(str(err))
            st.stop()
    st.markdown("**Edited:** " + ", ".join(f"L{la}.H{h} c{c} α={a:g}" for la, h, c, a in applied[1]))
else:
    after, loss1 = before, loss0
    st.markdown("**Unedited model** (press *Apply edit* to compare)")
result = laundry_gain(before, after)

m1, m2 = st.columns(2)
m1.metric("LM loss (held-out, nats/token)", f"{loss1:.4f}", f"{loss1 - loss0:+.4f}", delta_color="inverse")
m2.metric(
    "mean accuracy over N",
    f"{result['accuracy_after'].mean():.3f}",
    f"{100 * (result['accuracy_after'].mean() - result['accuracy_before'].mean()):+.1f} pp",
)
st.table(result.round({"accuracy_before": 3, "accuracy_after": 3, "gain_pp": 1}), hide_index=True)
st.plotly_chart(accuracy_figure(result), key="edit_fig")

with st.expander("Save this edit spec"):
    default = runs_root() / "dashboard" / "edits" / f"{handle.name}-edit.json"
    save_path = st.text_input("save to", value=str(default), key="edit_save_path")
    if st.button("Save", key="edit_save"):
        from probes.edits import EditSpec

        try:
            path = EditSpec.build(handle, list(edits), note="saved from the dashboard edit lab").save(
                Path(save_path)
            )
        except (SubspaceLensError, OSError) as err:
            st.error(str(err))
        else:
            st.success(f"saved {path} (+ {path.with_suffix('.safetensors').name})")
