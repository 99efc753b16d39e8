"""apps: the ``sublens`` command line (``apps/cli``, typer) and the Streamlit dashboard (``apps/dashboard``,
``sublens app``). They call and arrange what ``analysis/`` and ``probes/`` return; no science lives here."""
