"""The subspace-lens Streamlit dashboard (``sublens app``): pages that arrange what ``analysis/`` and ``probes/`` return.

- ``app.py``: the entry script (``streamlit run apps/dashboard/app.py``): sidebar model picker, navigation;
- ``views/``: one script per page (channels, edit_lab, refusal, representations; not ``pages/``, which
  Streamlit would treat as old-style auto-pages);
- ``models.py``: model choices, the cached model and its cache key, :data:`MODEL_LOCK`, edited copies;
- ``cache_channels.py``, ``cache_edit_lab.py``, ``cache_refusal.py``, ``cache_representations.py``: each
  page's ``st.cache_*`` wrappers around ``analysis/`` (figures are built in ``analysis/*/figures.py``);
- ``runs.py``: run directories (``$SUBLENS_RUNS`` or ``./runs``) the pages read saved results from;
- ``state.py``: pure grid-selection and input-limit logic (unit-tested without Streamlit).
"""
