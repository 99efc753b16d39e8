"""``sublens app``: start the Streamlit dashboard on localhost (default model: the embedded default pack)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path

import typer

from probes.errors import InputError

APP_SCRIPT = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def streamlit_command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line for the dashboard (headless, no usage stats, no file watcher),
    through :mod:`apps.dashboard.serve` (Streamlit's CLI with the first page's modules imported)."""
    return [
        sys.executable, "-m", "apps.dashboard.serve", "run", str(APP_SCRIPT),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback ``--host`` without ``--allow-remote``; warn when it is allowed."""
    if is_loopback(host):
        return
    risk = (
        "the dashboard has no authentication: anyone who can reach this address can load models, "
        "use this machine's CPU and memory, and run attacks"
    )
    if not allow_remote:
        raise InputError(
            f"--host {host} would serve the dashboard beyond this machine, and {risk}. Use --host 127.0.0.1 "
            "(the default) and an SSH tunnel, or add --allow-remote if you accept that."
        )
    typer.secho(f"warning: --host {host} --allow-remote: {risk}.", fg="yellow", err=True)


def check_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` once (as Streamlit will) and release it; a busy port is an InputError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise InputError(f"--host {host} is not an address of this machine ({err.strerror}).") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise InputError(
                    f"--port {port} is already in use on {host} (another dashboard or server?); stop it or "
                    f"pass a free port, e.g. --port {port + 1 if port < 65535 else 8502}."
                ) from None
            raise InputError(f"cannot serve on --host {host} --port {port}: {err.strerror}.") from None


def app(
    model: str = typer.Option(None, help="initial model in the picker (default: the embedded default pack)"),
    port: int = typer.Option(8501, help="port to serve on"),
    host: str = typer.Option("127.0.0.1", help="address to bind (localhost by default)"),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="allow a --host other than loopback (the dashboard is unauthenticated)"
    ),
    fetch: bool = typer.Option(
        True, "--fetch/--no-fetch", help="fetch the initial model's pack first if needed"
    ),
) -> None:
    """Start the dashboard (channels explorer, edit lab, refusal & attacks, representations)."""
    from probes.packs import DEFAULT_MODEL, PACKS, fetch_pack, is_fetched

    model = model or DEFAULT_MODEL
    known = ["organism", *PACKS]
    if model not in known:
        raise InputError(
            f"Unknown model {model!r} for the dashboard (--model); choose one of {', '.join(known)}."
        )
    if not 1 <= port <= 65535:
        raise InputError(f"--port {port} is out of range: choose 1..65535 (8501 is Streamlit's default).")
    check_host(host, allow_remote)
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise InputError(
            "Streamlit is not installed: pip install -e '.[app]' (or make setup), then run sublens app again."
        ) from None
    check_port_free(host, port)
    if fetch and model in PACKS and not is_fetched(PACKS[model]):
        fetch_pack(PACKS[model])  # the dashboard itself never downloads; a fresh machine gets it here
    env = {**os.environ, "SUBLENS_APP_MODEL": model}
    typer.echo(f"subspace-lens dashboard on http://{host}:{port} (model {model}); Ctrl-C stops it")
    code = subprocess.call(streamlit_command(host, port), env=env)
    raise typer.Exit(code)  # Streamlit's exit code, non-zero included
