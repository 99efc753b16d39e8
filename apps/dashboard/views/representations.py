"""Representations: layer×layer CKA between two models, convergent-learning results (``sublens compare
nets``) and 3D↔text alignment results (``sublens align run``) with a procedural point cloud."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from apps.dashboard import cache_representations as cached
from apps.dashboard.models import ModelUnavailable, current_model, model_choices, model_key, second_model
from apps.dashboard.runs import run_dirs, runs_root
from probes.errors import SubspaceLensError

QUERY_CHARS = 200  # longest live-search query


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
    n_anchors = g2.select_slider("anchor pairs", [250, 500, 1000, 2000, 4000], value=1000, key="gal_anchors")
    d = g3.select_slider(
        "CCA dimensions d", [4, 8, 16, 32, 64], value=16, key="gal_d", disabled=method == "affine"
    )
    setting = (method, n_anchors, d)
    if st.button(
        "Build gallery", key="gal_build", help="encodes anchors + 200 gallery shapes (~5-20 s on CPU)"
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
        k = st.slider("results", 1, 10, 5, key="gal_k")
        try:
            hits = search_shapes(gallery, query, k)
        except SubspaceLensError as err:
            st.error(str(err))
        else:
            st.table(hits.round({"score": 3}), hide_index=True)
            st.caption(
                "same_attributes: the shape has every captioned attribute of the gallery caption nearest to "
                "the query in the text space (a proxy for what the query asks for)."
            )
            cols = st.columns(3)
            for col, row in zip(cols, hits.head(3).itertuples(), strict=False):
                fig = point_cloud_figure(
                    gallery.shapes.points[row.shape][:512], f"#{row.rank}: {row.caption}"
                )
                col.plotly_chart(fig.update_layout(height=320, title_font_size=12), key=f"gal_hit{row.rank}")
    with shape_tab:
        i = int(st.number_input("gallery shape", 0, len(gallery.shapes) - 1, 0, key="gal_shape"))
        left, right = st.columns([2, 3])
        left.plotly_chart(
            point_cloud_figure(gallery.shapes.points[i][:512], gallery.shapes.captions[i]).update_layout(
                height=360
            ),
            key="gal_shape_fig",
        )
        right.table(search_captions(gallery, i, 5).round({"score": 3}), hide_index=True)


st.title("Representations")
handle, key = current_model()

cka_tab, conv_tab, align_tab = st.tabs(["Layer×layer CKA", "Convergent learning", "3D ↔ text alignment"])

with cka_tab:
    c1, c2, c3 = st.columns(3)
    other = c1.selectbox("compare with", model_choices(), key="rep_other")
    n_prompts = c2.slider("prompts", 8, 40, 16, key="rep_n")
    pooling = c3.radio("pooling", ["last", "mean"], horizontal=True, key="rep_pool")
    if st.button("Compare", key="rep_go"):
        st.session_state["rep_done"] = (key, other, n_prompts, pooling)
    if st.session_state.get("rep_done") == (key, other, n_prompts, pooling):
        from analysis.compare_layers import best_matches
        from analysis.similarity.grid import similarity_grid_figure

        try:
            if other in (handle.name, st.session_state.get("model")):
                b, key_b = handle, key
            else:
                b = second_model(other)
                key_b = model_key(b)
            grid = cached.layer_cka(handle, key, b, key_b, n_prompts, pooling)
        except (SubspaceLensError, ModelUnavailable) as err:
            st.error(str(err))
        else:
            st.plotly_chart(
                similarity_grid_figure(grid, title=f"linear CKA: {handle.name} × {b.name}"), key="rep_cka"
            )
            st.table(best_matches(grid).round(3), hide_index=True)
    saved = run_dirs("compare-layers", "grid")
    if saved:
        from analysis.similarity.grid import similarity_grid_figure

        run = st.selectbox("saved `sublens compare layers` runs", saved, format_func=str, key="rep_saved")
        st.plotly_chart(similarity_grid_figure(pd.read_parquet(run / "grid.parquet")), key="rep_saved_fig")

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
    seed = int(s2.number_input("seed", 0, 10_000, 0, key="shape_seed"))
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, family)
    st.plotly_chart(
        point_cloud_figure(sample_points(spec, 1024, rng), caption_for(spec, rng)), key="shape_cloud"
    )
