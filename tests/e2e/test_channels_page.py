"""Browser tests of the Channels page and the app shell (issue 14, findings 1, 4, 5, 6, 8 and 9).

Against the session's organism server (``conftest.py``), except the restart test, which starts two
servers of its own on one empty cache folder. Screenshots of each state go to ``tests/e2e/artifacts/``.
"""

from __future__ import annotations

import re
import time

import pytest
from browser_kit import (
    ARTIFACTS,
    GRID,
    GRID_POINTS,
    MODEL,
    _no_exception,
    _wait_idle,
    click_table_row,
    grid_layout,
    nav,
    panel_heading,
    serve,
    strongest_square,
)

pytestmark = pytest.mark.e2e

PASS_RE = re.compile(r"([\d,]+) of ([\d,]+) head pairs pass z ≥ (\d+\.\d\d) \(([^)]*)")


def _open_channels(page, url: str, query: str = "") -> None:
    page.goto(f"{url}/{query}")
    page.locator(GRID_POINTS).first.wait_for(timeout=180_000)
    _wait_idle(page, 180_000)


def _main_text(page) -> str:
    return page.locator('[data-testid="stMainBlockContainer"]').inner_text()


def test_no_request_leaves_localhost(browser, server):
    """Finding 9: a whole session (every page, a pair opened, the model picker) requests only 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    _open_channels(page, server)
    click_table_row(page, 0)
    panel_heading(page)
    page.get_by_text(re.compile(r"panel computed in")).wait_for(timeout=120_000)
    for title in ("Edit lab", "Refusal & attacks", "Representations", "Channels explorer"):
        nav(page, title)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option").first.wait_for(timeout=30_000)
    page.keyboard.press("Escape")
    page.wait_for_timeout(1500)  # late icon or font requests
    context.close()
    assert len(requests) > 20, requests  # the recording saw the session
    off_host = sorted({u for u in requests if not re.match(r"(http|ws)s?://127\.0\.0\.1[:/]", u)})
    assert off_host == [], off_host


def test_model_picker_shows_size_and_cached_status(page, server):
    """Finding 8: every packaged model is listed with its size and whether it is on disk."""
    from probes.packs import PACKS, is_fetched

    _open_channels(page, server)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    options = page.get_by_role("option").all_inner_texts()
    page.screenshot(path=str(ARTIFACTS / "model_picker.png"))
    page.keyboard.press("Escape")
    for name, spec in PACKS.items():
        status = "cached" if is_fetched(spec) else "not fetched"
        assert f"{name} ({spec.size / 1e6:.0f} MB, {status})" in options, options


def test_corrected_threshold_count_shown(page, server):
    """Finding 6: the grid's default threshold is Bonferroni over every component test; the count of
    pairs shown is the one computed here from the same scan; the colour bar says where it is clipped."""
    import numpy as np

    from analysis.channels import ScanConfig, head_pair_summary, scan_channels
    from analysis.channels.significance import corrected_threshold
    from apps.dashboard.cache_channels import NULL_SAMPLES
    from probes.loading import load_model
    from probes.weights import head_weights

    _open_channels(page, server)
    text = _main_text(page)
    found = PASS_RE.search(text)
    assert found, text
    n_pass, n_pairs = int(found[1].replace(",", "")), int(found[2].replace(",", ""))
    z_shown, rule = found[3], found[4]
    assert rule.startswith("Bonferroni"), rule
    handle = load_model(MODEL, backend="hf", fetch=False, progress=False)
    scan = scan_channels(head_weights(handle), ScanConfig(modes="QKV", n_null=NULL_SAMPLES, seed=0))
    q = scan[scan["mode"] == "Q"]
    t = corrected_threshold(q["z"].to_numpy(), "bonferroni", 0.05)
    summary = head_pair_summary(q)
    assert f"{t.z:.2f}" == z_shown and f"over {t.n_tests:,} component tests" in text
    assert n_pairs == len(summary) and n_pass == int(np.sum(summary["z"] >= t.z)), (n_pass, t)
    described = page.locator(GRID).first.get_attribute("aria-label")
    assert re.search(r"colour: z clipped at p99 = \d+\.\d", described), described
    page.screenshot(path=str(ARTIFACTS / "channels_corrected.png"), full_page=True)
    # the canvas itself: every pair below the threshold is drawn grey, every pair at or above it in colour
    assert _square_is_grey(page, summary) == (summary["z"] < t.z).tolist()
    page.get_by_text("fixed z", exact=True).first.click()
    page.get_by_text(re.compile(r"fixed z ≥ 3, no correction")).wait_for(timeout=60_000)
    assert int(PASS_RE.search(_main_text(page))[1].replace(",", "")) >= n_pass


def _square_is_grey(page, summary) -> list[bool]:
    """Per row of ``summary`` (head pairs), whether its square's centre pixel on the grid canvas is grey."""
    import io

    import numpy as np
    from PIL import Image

    geometry, _ = grid_layout(page)
    chart = page.locator(GRID).first
    page.mouse.move(0, 0)  # no tooltip or hover highlight
    page.wait_for_timeout(300)
    pixels = np.asarray(Image.open(io.BytesIO(chart.screenshot())).convert("RGB")).astype(int)
    grey = []
    for row in summary.itertuples():
        x, y = geometry.centre((row.sender_layer, row.sender_head), (row.receiver_layer, row.receiver_head))
        r, g, b = pixels[int(y), int(x)]
        grey.append(bool(max(r, g, b) - min(r, g, b) < 16 and min(r, g, b) > 150))
    return grey


def test_strongest_pairs_row_click_opens_the_pair(page, server):
    """Finding 5: clicking a row of the strongest-pairs table opens that pair's panel."""
    _open_channels(page, server)
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for(timeout=60_000)
    strongest = strongest_square(page)  # the grid's strongest pair: the table's first row
    click_table_row(page, 0)
    heading = panel_heading(page)
    assert heading.startswith(f"{strongest['sender']} → {strongest['receiver']}"), (heading, strongest)
    page.get_by_text(re.compile(r"panel computed in")).wait_for(timeout=120_000)
    click_table_row(page, 1)
    page.locator("h3", has_text="composition").filter(has_not_text=heading).first.wait_for(timeout=120_000)
    page.get_by_text(re.compile(r"panel computed in")).wait_for(timeout=120_000)
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "channels_row_click.png"), full_page=True)


def test_mode_and_pair_survive_page_switch_and_reload(page, server):
    """Finding 4: V mode and the open pair survive switching to another page and back, and a reload."""
    _open_channels(page, server)
    page.locator('[data-testid="stRadio"]', has_text="Composition").get_by_text("V", exact=True).click()
    page.get_by_text("(V composition): click a row").wait_for(timeout=60_000)
    page.locator(f'{GRID}[aria-label*="grid of V composition"]').wait_for(timeout=60_000)
    _wait_idle(page)
    target = strongest_square(page)
    click_table_row(page, 0)
    heading = panel_heading(page)
    assert heading == f"{target['sender']} → {target['receiver']} (V composition)", (heading, target)
    page.get_by_text(re.compile(r"panel computed in")).wait_for(timeout=120_000)
    nav(page, "Edit lab")
    nav(page, "Channels explorer")
    assert panel_heading(page) == heading
    page.screenshot(path=str(ARTIFACTS / "channels_after_page_switch.png"), full_page=True)
    assert "mode=V" in page.url and "pair=" in page.url, page.url
    page.reload()
    assert panel_heading(page, 180_000) == heading
    _wait_idle(page)
    _no_exception(page)


def test_second_start_paints_the_grid_from_disk(browser, tmp_path):
    """Finding 1: a second app start on the same cache folder reads the saved scan (no recomputation)."""
    times = {}
    for run in ("first", "second"):
        with serve(MODEL, env={"SUBLENS_CACHE": str(tmp_path)}, log_name=f"server_{run}.log") as (url, _):
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            t0 = time.perf_counter()
            page.goto(f"{url}/")
            page.locator(GRID_POINTS).first.wait_for(timeout=180_000)
            times[run] = time.perf_counter() - t0
            page.get_by_text(re.compile(r"Scan (computed now|read from disk)")).first.wait_for(timeout=60_000)
            text = _main_text(page)
            _no_exception(page)
            page.screenshot(path=str(ARTIFACTS / f"channels_{run}_start.png"), full_page=True)
            page.context.close()
        assert ("Scan computed now" if run == "first" else "Scan read from disk") in text, text
    assert list(tmp_path.glob("dashboard/channels/*/meta.json")), list(tmp_path.rglob("*"))
    print(
        f"\n[e2e {MODEL}] grid paint: first start {times['first']:.2f} s, second start {times['second']:.2f} s"
    )
