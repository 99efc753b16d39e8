"""apps: the ``sublens`` command line and (later) the Streamlit dashboard. No science lives here."""
