"""Shared pieces of the dashboard's browser tests: where chromium is, its flags, and page helpers.

Fixtures (the app server, the browser, a fresh page) live in ``conftest.py`` beside this file.
"""

from __future__ import annotations

import os
import shutil
import time
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


GRID_POINTS = ".js-plotly-plot .scatterlayer .trace .point, .js-plotly-plot .gl-canvas"
STRONGEST_POINT_JS = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  const tr = gd._fullData[gd._fullData.length - 1];  // the last trace holds the pairs above the threshold
  const c = tr.customdata;  // rows: sender_layer, sender_head, receiver_layer, receiver_head, z, ...
  let best = 0;
  for (let i = 1; i < c.length; i++) if (c[i][4] > c[best][4]) best = i;
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
  return {x: r.left + xa._offset + xa.l2p(tr.x[best]), y: r.top + ya._offset + ya.l2p(tr.y[best]),
          sender: `L${c[best][0]}.H${c[best][1]}`, receiver: `L${c[best][2]}.H${c[best][3]}`};
}"""


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
