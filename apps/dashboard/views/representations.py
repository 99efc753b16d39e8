"""Representations: layer×layer CKA between two models, convergent-learning results (``sublens compare
nets``) and 3D↔text alignment results (``sublens align run``) with a procedural point cloud."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import streamlit as st

from apps.dashboard import cache_representations as cached
from apps.dashboard.models import ModelUnavailable, current_model, model_choices, model_key, second_model
from apps.dashboard.runs import run_dirs, runs_root
from probes.errors import SubspaceLensError

QUERY_CHARS = 200  # longest live-search query
SHAPE_SEEDS = (0, 10_000)  # seeds of the procedural shape
# default gallery: 4000 anchors, d = 32 (own-caption text->3D top-1 38.5 % exact / 68.5 % same attributes,
# vs 30 % / 52 % at 1000 anchors, d = 16, where "a big torus" ranked a box first)
GALLERY_DEFAULTS = {"anchors": 4000, "d": 32}


def _int_input(col, label: str, bounds: tuple[int, int], default: int, key: str) -> int | None:
    """A whole-number input with its range in the label; out of range: an error naming it, and None."""
    lo, hi = bounds
    value = col.number_input(f"{label} ({lo}–{hi})", value=default, step=1, key=key)
    if not lo <= value <= hi:
        col.error(f"{label} = {value} is out of range: choose a value from {lo} to {hi}.")
        return None
    return int(value)


def _cka_figure(grid: pd.DataFrame, title: str):
    """The layer×layer heatmap, laid out for the page: one title, the colourbar beside (not over) the
    heatmap, and ~16 px per row so 30 layers stay readable."""
    from analysis.similarity.grid import similarity_grid_figure

    fig = similarity_grid_figure(grid)
    n_rows = grid["layer_a"].nunique()
    fig.layout.annotations = ()  # the per-metric subplot title repeats the page's title
    fig.update_layout(title=title, width=None, height=max(420, 16 * n_rows + 140), margin={"r": 90})
    return fig.update_traces(colorbar={"x": 1.01, "xanchor": "left", "len": 1.0})


def _cka_sample_note(n_prompts: int, metric: str) -> str | None:
    """The library's warning for CKA on few prompts (biased estimator), or None."""
    from analysis.similarity import check_cka_samples

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_cka_samples(n_prompts, "prompts", debiased=metric == "debiased_cka")
    return str(caught[0].message) if caught else None


def _live_search() -> None:
    """Text -> 3D and 3D -> text retrieval on a gallery aligned with the committed PointNet and MiniLM."""
    from analysis.alignment import (
        GALLERY_METHODS,
        describe,
        point_cloud_figure,
        search_captions,
        search_shapes,
    )

    if not cached.text_pack_ready():
        st.info(
            "The MiniLM text pack is not fetched: run `sublens models fetch all-minilm-l6-v2`, then reload."
        )
        return
    g1, g2, g3 = st.columns(3)
    method = g1.selectbox("aligner", GALLERY_METHODS, key="gal_method")
    n_anchors = g2.select_slider(
        "anchor pairs", [250, 500, 1000, 2000, 4000], value=GALLERY_DEFAULTS["anchors"], key="gal_anchors"
    )
    d = g3.select_slider(
        "CCA dimensions d",
        [4, 8, 16, 32, 64],
        value=GALLERY_DEFAULTS["d"],
        key="gal_d",
        disabled=method == "affine",
    )
    setting = (method, n_anchors, d)
    if st.button(
        "Build gallery", key="gal_build", help="encodes anchors + 200 gallery shapes (~10-40 s on CPU)"
    ):
        st.session_state["gal_setting"] = setting
    if st.session_state.get("gal_setting") != setting:
        st.caption("Build the gallery for these settings to search it.")
        return
    try:
        gallery = cached.shape_gallery(n_anchors, d, method)
    except SubspaceLensError as err:
        st.error(str(err))
        return
    st.caption(describe(gallery))
    text_tab, shape_tab = st.tabs(["text → shapes", "shape → captions"])
    with text_tab:
        query = st.text_input("query caption", "a big torus", max_chars=QUERY_CHARS, key="gal_query")
        k = st.slider("results (1–10)", 1, 10, 5, key="gal_k")
        try:
            hits = search_shapes(gallery, query, k)
        except SubspaceLensError as err:
            st.error(str(err))
        else:
            asked = ", ".join(f"{a} = {v}" for a, v in hits.attrs["query"].items())
            st.table(hits.round({"score": 3}), hide_index=True)
            st.caption(
                f"same_attributes: the shape has every attribute the query names ({asked}), read with the "
                "captions' vocabulary"
                if asked
                else "same_attributes is empty: the query names no family, size, aspect, count or hole "
                "in the captions' vocabulary (e.g. 'a big torus', 'a low table with four legs')."
            )
            cols = st.columns(3)
            for col, row in zip(cols, hits.head(3).itertuples(), strict=False):
                fig = point_cloud_figure(
                    gallery.shapes.points[row.shape][:512], f"#{row.rank}: {row.caption}"
                )
                col.plotly_chart(fig.update_layout(height=320, title_font_size=12), key=f"gal_hit{row.rank}")
    with shape_tab:
        i = _int_input(st, "gallery shape", (0, len(gallery.shapes) - 1), 0, "gal_shape")
        if i is None:
            return
        left, right = st.columns([2, 3])
        left.plotly_chart(
            point_cloud_figure(gallery.shapes.points[i][:512], gallery.shapes.captions[i]),
            key="gal_shape_fig",
        )
        right.table(search_captions(gallery, i, 5).round({"score": 3}), hide_index=True)


st.title("Representations")
handle, key = current_model()

cka_tab, conv_tab, align_tab = st.tabs(["Layer×layer CKA", "Convergent learning", "3D ↔ text alignment"])

with cka_tab:
    c1, c2, c3, c4 = st.columns(4)
    other = c1.selectbox("compare with", model_choices(), key="rep_other")
    n_prompts = c2.slider("prompts (8–40)", 8, 40, 32, key="rep_n")
    pooling = c3.radio("pooling", ["last", "mean"], horizontal=True, key="rep_pool")
    metric = c4.radio(
        "metric",
        ["linear_cka", "debiased_cka"],
        horizontal=True,
        key="rep_metric",
        help="linear CKA reads high on few prompts; the debiased estimator is ~0 on unrelated inputs",
    )
    note = _cka_sample_note(n_prompts, metric)
    if note:
        st.warning(note)
    if st.button("Compare", key="rep_go"):
        st.session_state["rep_done"] = (key, other, n_prompts, pooling, metric)
    if st.session_state.get("rep_done") == (key, other, n_prompts, pooling, metric):
        from analysis.compare_layers import best_matches

        try:
            if other in (handle.name, st.session_state.get("model")):
                b, key_b = handle, key
            else:
                b = second_model(other)
                key_b = model_key(b)
            grid = cached.layer_cka(handle, key, b, key_b, n_prompts, pooling, metric)
        except (SubspaceLensError, ModelUnavailable) as err:
            st.error(str(err))
        else:
            title = f"{metric} on {n_prompts} prompts: {handle.name} (rows) × {b.name} (columns)"
            st.plotly_chart(_cka_figure(grid, title), key="rep_cka")
            st.table(best_matches(grid).round(3), hide_index=True)
    saved = run_dirs("compare-layers", "grid")
    if saved:
        run = st.selectbox("saved `sublens compare layers` runs", saved, format_func=str, key="rep_saved")
        st.plotly_chart(
            _cka_figure(pd.read_parquet(run / "grid.parquet"), f"saved run {run.name}"), key="rep_saved_fig"
        )

with conv_tab:
    saved = run_dirs("compare-nets", "matching")
    if not saved:
        st.info(
            f"No convergent-learning results under {runs_root()}/compare-nets: run `sublens compare nets`."
        )
    else:
        from analysis.convergent.figures import cka_figure, matching_figure

        run = st.selectbox("run", saved, format_func=str, key="conv_run")
        st.plotly_chart(matching_figure(pd.read_parquet(run / "matching.parquet")), key="conv_match")
        if (run / "cka.parquet").is_file():
            st.plotly_chart(cka_figure(pd.read_parquet(run / "cka.parquet")), key="conv_cka")

with align_tab:
    from analysis.alignment import point_cloud_figure

    saved = run_dirs("align", "results")
    if not saved:
        st.info(f"No alignment results under {runs_root()}/align: run `sublens align run CONFIG.toml`.")
    else:
        from analysis.alignment import retrieval_vs_d_figure

        run = st.selectbox("run", saved, format_func=str, key="align_run")
        st.plotly_chart(retrieval_vs_d_figure(pd.read_parquet(run / "results.parquet")), key="align_fig")
        st.dataframe(pd.read_parquet(run / "summary.parquet"), hide_index=True)
    st.markdown("**Live search**: type a caption, get the gallery shapes it matches (and back)")
    _live_search()
    st.markdown("**A procedural shape** (what the 3D encoders see)")
    from analysis.alignment import FAMILIES, caption_for, random_spec, sample_points

    s1, s2 = st.columns(2)
    family = s1.selectbox("family", sorted(FAMILIES), key="shape_family")
    seed = _int_input(s2, "seed", SHAPE_SEEDS, 0, "shape_seed")
    if seed is None:
        st.stop()
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, family)
    st.plotly_chart(
        point_cloud_figure(sample_points(spec, 1024, rng), caption_for(spec, rng)), key="shape_cloud"
    )
