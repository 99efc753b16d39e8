"""``python -m apps.dashboard.serve run APP [streamlit options]``: Streamlit's command line, with the
modules the first page draws from already imported.

Streamlit imports a page's modules on the first browser session, so on a fresh server the first grid
waited ~1 s for pandas, pyarrow, plotly and the dashboard's cache modules. Importing them here, before
the server answers its health check, moves that second to server start (``sublens app`` uses this).
Torch and the model stay lazy: the Channels page paints a saved grid without them.
"""

from __future__ import annotations

import sys

WARM_MODULES = (
    "pyarrow.parquet",
    "plotly.graph_objects",
    "apps.dashboard.models",
    "apps.dashboard.state",
    "apps.dashboard.cache_channels",
    "analysis.channels.figures",
    "analysis.channels.significance",
)


def main() -> None:
    import importlib
    import logging

    # the cache decorators check their settings at import, before a runtime exists, and say so harmlessly
    quiet = logging.getLogger("streamlit.runtime.caching.cache_data_api")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    for name in WARM_MODULES:
        importlib.import_module(name)
    quiet.setLevel(level)
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
