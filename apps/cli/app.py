"""``sublens app``: start the Streamlit dashboard on localhost (default model: the embedded default pack)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from probes.errors import InputError

APP_SCRIPT = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def streamlit_command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line for the dashboard (headless, no usage stats, no file watcher)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip


def app(
    model: str = typer.Option(None, help="initial model in the picker (default: the embedded default pack)"),
    port: int = typer.Option(8501, help="port to serve on"),
    host: str = typer.Option("127.0.0.1", help="address to bind (localhost by default)"),
    fetch: bool = typer.Option(
        True, "--fetch/--no-fetch", help="fetch the initial model's pack first if needed"
    ),
) -> None:
    """Start the dashboard (channels explorer, edit lab, refusal & attacks, representations)."""
    from probes.packs import DEFAULT_MODEL, PACKS, fetch_pack, is_fetched

    model = model or DEFAULT_MODEL
    known = ["organism", *PACKS]
    if model not in known:
        raise InputError(f"Unknown model {model!r} for the dashboard; choose one of {', '.join(known)}.")
    if not 1 <= port <= 65535:
        raise InputError(f"--port {port} is out of range: choose 1..65535 (8501 is Streamlit's default).")
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise InputError(
            "Streamlit is not installed: pip install -e '.[app]' (or make setup), then run sublens app again."
        ) from None
    if fetch and model in PACKS and not is_fetched(PACKS[model]):
        fetch_pack(PACKS[model])  # the dashboard itself never downloads; a fresh machine gets it here
    env = {**os.environ, "SUBLENS_APP_MODEL": model}
    typer.echo(f"subspace-lens dashboard on http://{host}:{port} (model {model}); Ctrl-C stops it")
    code = subprocess.call(streamlit_command(host, port), env=env)
    raise typer.Exit(code)
