"""The subspace-lens Streamlit dashboard (``sublens app``): pages that arrange what ``analysis/`` and ``probes/`` return.

``app.py`` is the entry script (``streamlit run apps/dashboard/app.py``); ``state.py`` holds the pure
selection/limit logic (unit-tested without Streamlit); ``common.py`` the cached model and analyses and
the few figure helpers that have no home in ``analysis/``; ``views/`` one module per page (not ``pages/``: Streamlit would treat that folder as old-style auto-pages).
"""
