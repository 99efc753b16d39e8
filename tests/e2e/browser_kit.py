"""Shared pieces of the dashboard's browser tests: where chromium is, its flags, and page helpers.

Fixtures (the app server, the browser, a fresh page) live in ``conftest.py`` beside this file;
:func:`serve` starts a server (the fixture's, a second one on another cache, the benchmark's).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("SUBLENS_CHROMIUM") or shutil.which("chromium")  # Debian's package
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
MODEL = os.environ.get("SUBLENS_E2E_MODEL", "organism")
TIMINGS: dict[str, float] = {}


# the channels grid: an ECharts canvas whose accessible description names its layers and strongest pair
GRID = '[data-testid="stEChartsChart"][aria-label*="Head-pair grid"]'
GRID_POINTS = f"{GRID} canvas"


def grid_layout(page) -> tuple:
    """``(GridGeometry, match)`` of the drawn grid, read from the chart's accessible description
    (:data:`analysis.channels.figures.GRID_ARIA`: layer ranges, heads per layer, strongest pair)."""
    from analysis.channels.figures import GRID_ARIA, GridGeometry

    described = page.locator(GRID).first.get_attribute("aria-label") or ""
    found = GRID_ARIA.search(described)
    assert found, described
    senders, receivers = (int(found["s0"]), int(found["s1"])), (int(found["r0"]), int(found["r1"]))
    return GridGeometry(senders, receivers, int(found["n_heads"])), found


def strongest_square(page) -> dict:
    """Page position of the grid's strongest pair: ``{x, y, sender, receiver}`` (:func:`grid_layout`:
    the layout the chart is drawn with)."""
    geometry, found = grid_layout(page)
    assert found["sender"], found.string
    chart = page.locator(GRID).first
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    x, y = geometry.centre(*(tuple(map(int, re.findall(r"\d+", found[k]))) for k in ("sender", "receiver")))
    return {"x": box["x"] + x, "y": box["y"] + y, "sender": found["sender"], "receiver": found["receiver"]}


def _wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the page's script run has finished (an exception may be drawn late in a run)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        state="attached", timeout=timeout_ms
    )


def _no_exception(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def _table(page, header: str) -> list[list[str]]:
    """Rows (cell texts) of the shown st.table whose header has ``header`` (waits for it to appear)."""
    table = (
        page.locator('[data-testid="stTable"] table').filter(has=page.locator("th", has_text=header)).first
    )
    table.wait_for(timeout=120_000)
    return [
        [c.strip() for c in r.locator("td, th").all_inner_texts()] for r in table.locator("tbody tr").all()
    ]


def _wait_rows(page, header: str, ok, timeout_s: float = 120) -> list[list[str]]:
    """Poll :func:`_table` until ``ok(rows)`` (a rerun replaces the table asynchronously)."""
    deadline = time.time() + timeout_s
    while True:
        rows = _table(page, header)
        if ok(rows) or time.time() > deadline:
            return rows
        page.wait_for_timeout(200)


def _warm(page, url: str) -> None:
    page.goto(f"{url}/")  # the default page (channels) lives at the root
    page.locator(GRID_POINTS).first.wait_for(timeout=180_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(
    model: str = MODEL,
    env: dict | None = None,
    log_name: str = "server.log",
    timeout_s: float = 90,
    port: int | None = None,
):
    """Run ``sublens app``'s ``streamlit run`` command on ``port`` (default: a free localhost port); yield
    ``(url, seconds to healthy)``. ``env`` adds environment variables (e.g. ``SUBLENS_CACHE``); the log goes
    to artifacts/. Reuse a port to restart "the same app" (the browser's cache is per origin)."""
    from apps.cli.app import streamlit_command

    port = port or free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    full_env = {**os.environ, "SUBLENS_APP_MODEL": model, "OMP_NUM_THREADS": "1", **(env or {})}
    with open(ARTIFACTS / log_name, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            streamlit_command("127.0.0.1", port), env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + timeout_s
            while True:
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(
                        f"streamlit did not start (exit {proc.poll()}); see {ARTIFACTS / log_name}"
                    )
                time.sleep(0.2)
            yield url, time.perf_counter() - t0
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def nav(page, title: str) -> None:
    """Switch page inside the same Streamlit session (the sidebar's navigation, no reload)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=120_000)
    _wait_idle(page, 180_000)


def panel_heading(page, timeout_ms: int = 120_000) -> str:
    """Text of the open pair's heading (``L0.H1 → L2.H3 (Q composition)``)."""
    heading = page.locator("h3", has_text="composition").first
    heading.wait_for(timeout=timeout_ms)
    return heading.inner_text().strip()


def click_table_row(page, row: int, table_index: int = 0) -> None:
    """Click the row-selection cell of row ``row`` (0-based) of the page's ``table_index``-th st.dataframe
    (a canvas grid: 35 px header, 35 px rows, the selection column first)."""
    grid = page.locator('[data-testid="stDataFrame"]').nth(table_index)
    grid.wait_for(timeout=120_000)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 35 * row + 17)
