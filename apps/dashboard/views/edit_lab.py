"""Edit lab: rescale OV components (α) and see Laundry List accuracy by N and the LM loss, before/after.

Edits are :class:`probes.edits.EditSpec` rank-1 rescalings, applied to a deep copy of the model (the
cached model is never touched). Specs are saved/loaded as ``<stem>.json`` + ``<stem>.safetensors``.
The **Learned edits** picker lists the edit specs of ``sublens edit learn`` runs for the current model
(``<runs root>/edit-learn/*/front.jsonl``, newest run first) and applies the chosen one.
Results are stored with the edit and settings that produced them (``st.session_state["edit_result"]``);
when the table or settings change, they are shown as stale with the edit they belong to. The table and
settings are kept across page switches.

**Positional subspace** (issue 15, at the bottom, behind a button: a first run on SmolLM2 takes about a
minute): the Laundry List channel located for the current N range, the 3D scatter of the current test
prompts' coordinates at END coloured by answer position, its effective dimension, and how well position
can be decoded from the coordinates by N (crowding); next to it the same for the applied edit, in the
same basis (:mod:`apps.dashboard.edit_subspace`). Saved on disk (:mod:`apps.dashboard.cache_edit_lab`), so it
shows at once afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.tasks.evaluate import laundry_gain
from analysis.tasks.figures import accuracy_figure, signed_change
from apps.dashboard.cache_edit_lab import laundry_and_loss
from apps.dashboard.edit_subspace import subspace_section
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

RESULT_KEY = "edit_result"  # the last evaluated edit and its results (survives page switches)
KEPT = ("edit_ns", "edit_per_n")  # widget values restored after a page switch


def _keep(keys, defaults: dict) -> None:
    """Restore widget values Streamlit dropped while another page was shown (kept under ``keep::``)."""
    for k in keys:
        if k not in st.session_state:
            st.session_state[k] = st.session_state.get(f"keep::{k}", defaults[k])


def _remember(keys) -> None:
    for k in keys:
        st.session_state[f"keep::{k}"] = st.session_state[k]


def edit_label(edits) -> str:
    """``L{layer}.H{head} c{component} ×α`` for each row of an edit (`` QK`` after a query-side component)."""
    return (
        ", ".join(f"L{la}.H{h} c{c}{' QK' if kind == ['qk'] else ''} ×{a:g}" for la, h, c, a, *kind in edits)
        or "none"
    )


def _table(info, key) -> pd.DataFrame:
    """The edit table (restored after a page switch); columns show their allowed ranges."""
    rows_key, saved_key, widget = (
        f"edit_rows::{key.name}",
        f"edit_saved::{key.name}",
        f"edit_table::{key.name}",
    )
    if widget not in st.session_state or rows_key not in st.session_state:
        default = pd.DataFrame(
            {"layer": [info.n_layers // 2], "head": [1 % info.n_heads], "component": [0], "alpha": [0.0]}
        )
        st.session_state[rows_key] = st.session_state.get(saved_key, default)
    lo, hi = ALPHA_RANGE

    def col(label, help_text, **kw):  # no min/max: an out-of-range value is kept and reported, not clamped
        return st.column_config.NumberColumn(label, help=help_text, required=True, **kw)

    table = st.data_editor(
        st.session_state[rows_key],
        num_rows="dynamic",
        key=widget,
        column_config={
            "layer": col(f"layer (0–{info.n_layers - 1})", "layer of the head", step=1),
            "head": col(f"head (0–{info.n_heads - 1})", "head within the layer", step=1),
            "component": col(
                f"component (0–{info.d_head - 1})", "OV singular component, 0 = largest", step=1
            ),
            "alpha": col(f"α ({lo:g} to {hi:g})", "0 removes, 1 leaves, −1 flips", step=0.1, format="%.2f"),
        },
    )
    st.session_state[saved_key] = table
    return table


def _load_spec(handle, key) -> None:
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
                rows = [
                    {"layer": e.layer, "head": e.head, "component": e.component, "alpha": e.alpha}
                    for e in spec.edits
                ]
                st.session_state[f"edit_saved::{key.name}"] = pd.DataFrame(rows)
                st.session_state.pop(f"edit_table::{key.name}", None)
                st.success(f"loaded {len(spec.edits)} edits from {load_path}")


def learned_specs(model: str) -> list[tuple[str, Path]]:
    """``(label, spec path)`` of every learned edit of ``model`` under ``<runs root>/edit-learn``, newest run
    first, each labelled with its held-out gain, LM-loss change and number of components."""
    import json

    out = []
    logs = sorted(
        (runs_root() / "edit-learn").glob("*/front.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for log in logs:
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a running or killed sweep
            if rec.get("model") != model or not rec.get("spec"):
                continue
            label = (
                f"{log.parent.name} · {rec['key']}: {rec['max_gain_pp']:+.1f} pp at N={rec['max_gain_n']}, "
                f"LM loss {rec['lm_loss_rel_change_pct']:+.2f}%, {rec['n_edited']} components"
            )
            out.append((label, log.parent / "specs" / rec["spec"]))
    return out


def _learned_picker(handle, key, ns, per_n) -> None:
    """Pick a learned edit spec and evaluate it (before/after) at the current N and prompts per N."""
    with st.expander("Learned edits"):
        specs = learned_specs(handle.name)
        if not specs:
            st.caption(
                f"No learned edits of {handle.name} under {runs_root() / 'edit-learn'}: run "
                f"`sublens edit learn {handle.name}` (the runs root is $SUBLENS_RUNS or ./runs)."
            )
            return
        labels = [label for label, _ in specs]
        label = st.selectbox(
            "learned edit (run · penalties: held-out result)", labels, key="edit_learned_pick"
        )
        if st.button("Apply learned edit", key="edit_learned_apply", disabled=per_n is None):
            from probes.edits import EditSpec

            try:
                spec = EditSpec.load(dict(specs)[label])
                spec.check(handle)
                edits = tuple(
                    (e.layer, e.head, e.component, e.alpha) + ((e.kind,) if e.kind != "ov" else ())
                    for e in spec.edits
                )
                with st.spinner(f"evaluating {len(edits)} learned rescalings …"):
                    before, loss0 = laundry_and_loss(handle, key, (), ns, per_n)
                    after, loss1 = laundry_and_loss(handle, key, edits, ns, per_n)
            except SubspaceLensError as err:
                st.error(str(err))
            else:
                st.session_state[RESULT_KEY] = dict(
                    model=key, edits=edits, ns=ns, per_n=per_n, before=before, after=after,
                    loss0=loss0, loss1=loss1, source=label,
                )  # fmt: skip


def _metric(col, label: str, value: float, delta: float, resolution: float, fmt: str, unit: str = "", **kw):
    """A metric whose change shows no arrow when it rounds to zero at ``resolution``."""
    text = signed_change(delta, resolution)
    col.metric(label, fmt.format(value), None if text is None else text + unit, **kw)
    if text is None:
        col.caption("no change at this resolution")


def _show(result: dict, current: tuple) -> None:
    """Results of ``result`` (marked stale when ``current`` — edits, Ns, prompts per N — differs); a result
    without edits is the unedited baseline."""
    edits, ns, per_n = result["edits"], result["ns"], result["per_n"]
    source = result.get("source")  # a learned edit: compared with the settings, not with the table
    if source:
        current = (edits, *current[1:])
    what = f"{source or edit_label(edits)} · N {ns[0]}–{ns[-1]} · {per_n} prompts per N"
    if not edits:
        st.markdown(
            f"**Unedited model** (N {ns[0]}–{ns[-1]} · {per_n} prompts per N; press *Apply edit* to compare)"
        )
    elif (edits, ns, per_n) != current:
        st.warning(
            f"**Stale:** the results below are for the edit {what}, not for the table above (it or the "
            "settings changed since). Press *Apply edit* to evaluate the current edit."
        )
    else:
        st.markdown(f"**{'Learned edit' if source else 'Edited'}:** {what}")
    table = laundry_gain(result["before"], result["after"])
    loss0, loss1 = result["loss0"], result["loss1"]
    acc0, acc1 = table["accuracy_before"].mean(), table["accuracy_after"].mean()
    m1, m2 = st.columns(2)
    if not edits:
        m1.metric("LM loss (held-out, nats/token)", f"{loss0:.4f}")
        m2.metric("mean accuracy over N", f"{acc0:.3f}")
    else:
        _metric(
            m1, "LM loss (held-out, nats/token)", loss1, loss1 - loss0, 1e-4, "{:.4f}", delta_color="inverse"
        )
        _metric(m2, "mean accuracy over N", acc1, 100 * (acc1 - acc0), 0.1, "{:.3f}", " pp")
    shown = table.copy()
    for col in ("accuracy_before", "accuracy_after"):
        if col in shown:
            shown[col] = shown[col].map("{:.3f}".format)
    if "gain_pp" in shown:
        shown["gain_pp"] = [signed_change(v, 0.1) or "0" for v in table["gain_pp"]]
    st.table(shown, hide_index=True)
    plotted = table.drop(columns="accuracy_after") if not edits else table  # baseline: one line, not two
    st.plotly_chart(accuracy_figure(plotted), key="edit_fig")


def _save_spec(handle, edits) -> None:
    with st.expander("Save this edit spec"):
        default = runs_root() / "dashboard" / "edits" / f"{handle.name}-edit.json"
        save_path = st.text_input("save to", value=str(default), key="edit_save_path")
        if st.button("Save", key="edit_save"):
            from probes.edits import EditSpec

            try:
                spec = EditSpec.build(handle, list(edits), note="saved from the dashboard edit lab")
                path = spec.save(Path(save_path))
            except (SubspaceLensError, OSError) as err:
                st.error(str(err))
            else:
                st.success(f"saved {path} (+ {path.with_suffix('.safetensors').name})")


def _applied_edit(key) -> tuple[tuple, str] | None:
    """``(edits, label)`` of the edit last applied on this model (table or learned picker), else ``None``."""
    result = st.session_state.get(RESULT_KEY)
    if result is None or result["model"] != key or not result["edits"]:
        return None
    return result["edits"], result.get("source") or edit_label(result["edits"])


st.title("Edit lab")
handle, key = current_model()
info = handle.info
st.caption(
    f"Rescale OV components of {handle.name}: α = 0 removes a component, 1 leaves it, −1 flips it "
    f"(α from {ALPHA_RANGE[0]:g} to {ALPHA_RANGE[1]:g}, at most {MAX_EDITS} rows). Layers 0–{info.n_layers - 1}, "
    f"heads 0–{info.n_heads - 1}, components 0–{info.d_head - 1} (0 = largest singular value)."
)
_load_spec(handle, key)
table = _table(info, key)
_keep(KEPT, {"edit_ns": (2, 6), "edit_per_n": 20})
c1, c2 = st.columns(2)
n_lo, n_hi = c1.slider(f"list lengths N ({N_RANGE[0]}–{N_RANGE[1]})", *N_RANGE, key="edit_ns")
per_n = c2.number_input(f"prompts per N ({PER_N_RANGE[0]}–{PER_N_RANGE[1]})", step=1, key="edit_per_n")
_remember(KEPT)

edits = per_n_ok = None
try:
    rows = table.dropna(how="all").itertuples(index=False)
    edits = tuple(tuple(e) for e in check_edits(rows, info.n_layers, info.n_heads, info.d_head))
except LimitError as err:
    st.error(f"Edit table: {err}")
try:
    per_n = per_n_ok = int(check_range(per_n, PER_N_RANGE, "prompts per N"))
except LimitError as err:
    st.error(str(err))
ns = tuple(range(int(n_lo), int(n_hi) + 1))
_learned_picker(handle, key, ns, per_n_ok)

if st.button("Apply edit", type="primary", key="edit_apply", disabled=edits is None or per_n_ok is None):
    with st.spinner("evaluating the unedited model and the edited copy …"):
        try:
            before, loss0 = laundry_and_loss(handle, key, (), ns, per_n)
            after, loss1 = laundry_and_loss(handle, key, edits, ns, per_n)
        except SubspaceLensError as err:
            st.error(str(err))
        else:
            st.session_state[RESULT_KEY] = dict(
                model=key,
                edits=edits,
                ns=ns,
                per_n=per_n,
                before=before,
                after=after,
                loss0=loss0,
                loss1=loss1,
            )

result = st.session_state.get(RESULT_KEY)
if result is not None and result["model"] == key:
    _show(result, (edits, ns, per_n))
elif per_n_ok is not None:
    with st.spinner("evaluating the unedited model …"):
        before, loss0 = laundry_and_loss(handle, key, (), ns, per_n)
    _show(dict(edits=(), ns=ns, per_n=per_n, before=before, after=before, loss0=loss0, loss1=loss0), ())
if edits is not None:
    _save_spec(handle, edits)
subspace_section(handle, key, ns, per_n_ok, _applied_edit(key))
