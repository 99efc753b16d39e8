"""Fixtures of the dashboard's browser tests: one app server and one chromium for the whole session.

Without playwright or chromium every browser test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest
from browser_kit import ARGS, ARTIFACTS, CHROMIUM, MODEL, TIMINGS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    """The dashboard served by a ``streamlit run`` subprocess; yields its base URL."""
    from apps.cli.app import streamlit_command

    port = _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "server.log", "w")
    env = {**os.environ, "SUBLENS_APP_MODEL": MODEL, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        streamlit_command("127.0.0.1", port), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start (exit {proc.poll()}); see {ARTIFACTS / 'server.log'}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if TIMINGS:
            (ARTIFACTS / "timings.json").write_text(json.dumps({"model": MODEL, **TIMINGS}, indent=2) + "\n")


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="playwright is not installed (pip install playwright)",
        exc_type=ImportError,
    )
    if not CHROMIUM:
        pytest.skip("chromium is not on PATH (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()
