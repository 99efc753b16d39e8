"""The Edit lab's "Positional subspace" section (issue 15): the Laundry List channel located for the current
N range, the 3D scatter of the current test prompts' coordinates at END coloured by answer position, its
effective dimension, the decodability of position by N (crowding), and the same for an applied edit in the
same basis and axes; CSV and HTML downloads.

Computed behind a button with a progress bar and saved on disk by :mod:`apps.dashboard.cache_edit_lab`
(``build_subspace``/``saved_subspace``), so a later run or app start shows it at once. The science is
:mod:`analysis.laundry`; this module only arranges it.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from apps.dashboard import cache_edit_lab as cached
from apps.dashboard.models import ModelKey
from probes.errors import SubspaceLensError


def subspace_section(
    handle, key: ModelKey, ns: tuple[int, ...], per_n: int | None, applied: tuple[tuple, str] | None
) -> None:
    """Read (or, behind a button with a progress bar, locate and project) the positional subspace of the
    Edit lab's current prompts (``ns``, ``per_n`` prompts per N; ``None``: invalid) and show it; with
    ``applied`` (``(edits, label)`` of the edit applied in the Edit lab) a toggle compares it."""
    st.subheader("Positional subspace")
    st.caption(
        "Where the model writes *which list position* the answer is at. Movers (heads that copy the answer "
        "at the end) and suppressors (earlier heads that attend to already re-mentioned items) are located "
        f"on {cached.SUBSPACE_LOCATE_PER_N} dev prompts per N; the suppressors' top OV write directions "
        "(z against a random null) span the subspace. Each test prompt of the table above is projected at "
        "its last token, as the first mover reads it. **Effective dimension**: directions holding 90 % / 95 % "
        "of the energy of the stacked directions. **Decodable**: held-out accuracy of a logistic regression "
        "reading the answer's position from the coordinates (chance = 1/N); it falls as positions crowd."
    )
    if per_n is None:
        st.info("Fix prompts per N above to see the positional subspace.")
        return
    compare = applied is not None and st.toggle(
        f"compare with the applied edit ({applied[1]})", value=True, key="edit_sub_compare",
        help="Projects the edited model's prompts onto the unedited weights' subspace (same axes).",
    )  # fmt: skip
    wanted = [(), applied[0]] if compare else [()]
    saved = {e: cached.saved_subspace(key, e, ns, per_n) for e in wanted}
    missing = [e for e in wanted if saved[e] is None]
    if missing:
        todo = " and ".join("the edited copy" if e else "the unedited weights" for e in missing)
        slot = st.empty()
        if slot.button(
            "Locate the channel and project the prompts", key="edit_sub_run",
            help=f"To do: {todo}. About a minute on SmolLM2 the first time for an N range (saved to disk), "
            "seconds after.",
        ):  # fmt: skip
            slot.progress(0.0, text="starting …")
            try:
                for i, e in enumerate(missing):
                    saved[e] = cached.build_subspace(
                        handle, key, e, ns, per_n, step=lambda f, s: slot.progress(min(f, 1.0), text=s),
                        start=i / len(missing), share=1 / len(missing),
                    )  # fmt: skip
            except SubspaceLensError as err:
                st.error(str(err))
                return
            finally:
                slot.empty()
        elif saved[()] is None:
            st.info(f"Not computed yet for N {ns[0]}–{ns[-1]} · {per_n} prompts per N: press the button.")
            return
        else:
            st.caption(
                "The applied edit is not projected yet for these settings: press the button to compare."
            )
    after = saved[applied[0]] if compare else None
    _show_subspace(handle.name, saved[()], after, applied[1] if after is not None else None)


def subspace_table(before: dict, after: dict | None) -> pd.DataFrame:
    """Per N: prompts, position decodability (and chance), accuracy among the items; edited columns if any."""

    def per_n(sub: dict, tag: str) -> pd.DataFrame:
        acc = sub["coords"].groupby("n_items")["correct"].mean().rename(f"accuracy{tag}")
        dec = sub["decodability"]  # no row for an N with under 2 prompts at some position
        dec = dec.set_index("n_items")["decode_accuracy"] if len(dec) else pd.Series(dtype=float)
        dec = dec.rename(f"decodable{tag}")
        return pd.concat([dec, acc], axis=1)

    counts = before["coords"].groupby("n_items").size().rename("prompts")
    parts = [counts, per_n(before, "" if after is None else " (unedited)")]
    if after is not None:
        parts.append(per_n(after, " (edited)"))
    table = pd.concat(parts, axis=1)
    table.insert(1, "chance", 1.0 / table.index)
    return table.rename_axis("N").reset_index()


def _figure(sub: dict, n: int, title: str, ranges: list):
    """:func:`analysis.laundry.figures.subspace_figure` laid out for a half-width column, with fixed axis
    ``ranges`` (shared by both scatters)."""
    from analysis.laundry.figures import subspace_figure

    fig = subspace_figure(sub["coords"], n, title=title)
    fig.update_traces(marker_size=5)
    fig.update_scenes(xaxis_range=ranges[0], yaxis_range=ranges[1], zaxis_range=ranges[2], aspectmode="cube",
                      camera_eye={"x": 1.55, "y": 1.55, "z": 1.05})  # fmt: skip
    fig.update_layout(height=500, margin={"l": 0, "r": 0, "t": 40, "b": 0}, legend_title_text="position",
                      legend={"orientation": "h", "y": 0.0})  # fmt: skip
    return fig


def _show_subspace(model: str, before: dict, after: dict | None, edit_name: str | None) -> None:
    """Dimension metrics, the scatter(s) at a chosen N (edited beside unedited, shared axes), the by-N table,
    downloads."""
    dim = before["dim"]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("read at layer", before["layer"], help="input of the first mover's layer")
    m2.metric("directions stacked", dim["m"])
    m3.metric("effective dimension (90 % / 95 %)", f"{dim['k90']} / {dim['k95']}")
    m4.metric(
        "participation ratio", f"{dim['participation_ratio']:.2f}", help="(Σσ²)² / Σσ⁴ of the directions"
    )
    heads = lambda hs: ", ".join(f"L{la}.H{h}" for la, h in hs)  # noqa: E731
    st.caption(
        f"Movers {heads(before['movers'])}; suppressors {heads(before['suppressors'])}; the scatter shows the "
        f"first 3 of {before['k']} basis coordinates. Colour: the answer's list position; +: the model picked "
        "another item."
    )
    with st.expander(f"the {dim['m']} write directions (suppressors' OV components) and their z"):
        st.caption("z: Q-composition score with the best mover against a null of random directions.")
        comps = before["components"]
        st.dataframe(comps.round(3), hide_index=True)
        st.download_button("components (CSV)", comps.to_csv(index=False), file_name=f"subspace-{model}-components.csv",
                           mime="text/csv", key="edit_sub_comps_csv", on_click="ignore")  # fmt: skip
    ns = sorted(before["coords"]["n_items"].unique())
    n = st.select_slider("list length N shown in the scatter", ns, value=ns[len(ns) // 2], key="edit_sub_n")
    shown = [("unedited", before)] + ([("edited", after)] if after is not None else [])
    both = pd.concat([s["coords"][s["coords"]["n_items"] == n] for _, s in shown])
    pad = lambda lo, hi: [lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)]  # noqa: E731
    ranges = [pad(both[c].min(), both[c].max()) for c in ("c0", "c1", "c2")]
    for col, (tag, sub) in zip(st.columns(len(shown)), shown, strict=True):
        title = f"{'After edit: ' + edit_name if tag == 'edited' else 'Unedited'} · N = {n}"
        fig = _figure(sub, n, title if len(title) < 60 else title[:57] + " …", ranges)
        name = f"subspace-{model}-N{n}-{tag}"
        col.plotly_chart(fig, key=f"edit_sub_fig_{tag}",
                         config={"toImageButtonOptions": {"format": "png", "filename": name, "scale": 2}})  # fmt: skip
        col.download_button(
            f"figure ({tag}, interactive HTML)", lambda f=fig: f.to_html(include_plotlyjs=True),
            file_name=f"{name}.html", mime="text/html", key=f"edit_sub_html_{tag}", on_click="ignore",
        )  # fmt: skip
    st.caption(
        "PNG of a figure: the camera icon at its top right. Both scatters share the unedited basis and axes."
    )
    table = subspace_table(before, after)
    view = table.copy()
    for c in table.columns.drop(["N", "prompts"]):  # 3 decimals; "–": too few prompts per position to decode
        view[c] = table[c].map(lambda v: "–" if pd.isna(v) else f"{v:.3f}")
    st.table(view, hide_index=True)
    coords = pd.concat([s["coords"].assign(model=tag) for tag, s in shown], ignore_index=True)
    d1, d2 = st.columns(2)
    d1.download_button("coordinates (CSV)", coords.to_csv(index=False), file_name=f"subspace-{model}-coords.csv",
                       mime="text/csv", key="edit_sub_csv", on_click="ignore")  # fmt: skip
    d2.download_button("decodability by N (CSV)", table.to_csv(index=False), file_name=f"subspace-{model}-by-n.csv",
                       mime="text/csv", key="edit_sub_table_csv", on_click="ignore")  # fmt: skip
