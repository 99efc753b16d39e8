"""Representations: layer×layer CKA between two models, convergent-learning results (``sublens compare
nets``) and 3D↔text alignment results (``sublens align run``) with a procedural point cloud."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from apps.dashboard import common
from probes.errors import SubspaceLensError

st.title("Representations")
handle, key = common.current_model()

cka_tab, conv_tab, align_tab = st.tabs(["Layer×layer CKA", "Convergent learning", "3D ↔ text alignment"])

with cka_tab:
    c1, c2, c3 = st.columns(3)
    other = c1.selectbox("compare with", common.model_choices(), key="rep_other")
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
                b = common.second_model(other)
                key_b = common.model_key(b)
            grid = common.layer_cka(handle, key, b, key_b, n_prompts, pooling)
        except (SubspaceLensError, common.ModelUnavailable) as err:
            st.error(str(err))
        else:
            st.plotly_chart(
                similarity_grid_figure(grid, title=f"linear CKA: {handle.name} × {b.name}"), key="rep_cka"
            )
            st.table(best_matches(grid).round(3), hide_index=True)
    saved = common.run_dirs("compare-layers", "grid")
    if saved:
        from analysis.similarity.grid import similarity_grid_figure

        run = st.selectbox("saved `sublens compare layers` runs", saved, format_func=str, key="rep_saved")
        st.plotly_chart(similarity_grid_figure(pd.read_parquet(run / "grid.parquet")), key="rep_saved_fig")

with conv_tab:
    saved = common.run_dirs("compare-nets", "matching")
    if not saved:
        st.info(
            f"No convergent-learning results under {common.runs_root()}/compare-nets: run `sublens compare nets`."
        )
    else:
        from analysis.convergent.figures import cka_figure, matching_figure

        run = st.selectbox("run", saved, format_func=str, key="conv_run")
        st.plotly_chart(matching_figure(pd.read_parquet(run / "matching.parquet")), key="conv_match")
        if (run / "cka.parquet").is_file():
            st.plotly_chart(cka_figure(pd.read_parquet(run / "cka.parquet")), key="conv_cka")

with align_tab:
    from analysis.alignment.figures import point_cloud_figure

    saved = common.run_dirs("align", "results")
    if not saved:
        st.info(
            f"No alignment results under {common.runs_root()}/align: run `sublens align run CONFIG.toml`."
        )
    else:
        from analysis.alignment.figures import retrieval_vs_d_figure

        run = st.selectbox("run", saved, format_func=str, key="align_run")
        st.plotly_chart(retrieval_vs_d_figure(pd.read_parquet(run / "results.parquet")), key="align_fig")
        st.dataframe(pd.read_parquet(run / "summary.parquet"), hide_index=True)
    st.markdown("**A procedural shape** (what the 3D encoders see)")
    from analysis.alignment.shapes import FAMILIES, caption_for, random_spec, sample_points

    s1, s2 = st.columns(2)
    family = s1.selectbox("family", sorted(FAMILIES), key="shape_family")
    seed = int(s2.number_input("seed", 0, 10_000, 0, key="shape_seed"))
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, family)
    st.plotly_chart(
        point_cloud_figure(sample_points(spec, 1024, rng), caption_for(spec, rng)), key="shape_cloud"
    )
