"""Browser tests of the Edit lab, Refusal & attacks and Representations pages (issue 14, findings 2, 3,
4, 7 and 8), against the session's organism server (``conftest.py``). Screenshots of each page go to
``tests/e2e/artifacts/``."""

from __future__ import annotations

import re

import pytest
from browser_kit import ARTIFACTS, _no_exception, _table, _wait_idle

pytestmark = pytest.mark.e2e


def _open(page, url: str, path: str, title: str) -> None:
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=title).first.wait_for(timeout=180_000)
    _wait_idle(page, 180_000)


def _nav(page, title: str) -> None:
    """Switch page inside the same Streamlit session (the sidebar's navigation, no reload)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=120_000)
    _wait_idle(page, 180_000)


def _set_number(page, label: str, value: str) -> None:
    box = page.get_by_label(label)
    box.fill(value)
    box.press("Enter")
    _wait_idle(page, 180_000)


def _edit_cell(page, column: int, value: str, expect: str) -> str:
    """Type ``value`` into row 1, column ``column`` (0-based) of the page's data editor (a canvas grid:
    select the first cell, move right, open the editor, type, commit, click outside) until an alert
    containing ``expect`` shows (up to 3 tries: the grid ignores keys while a rerun redraws it)."""
    grid = page.locator('[data-testid="stDataFrame"]').first
    for attempt in range(3):
        _wait_idle(page, 180_000)
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 60, box["y"] + 35 + 17)  # first data cell (header row is 35 px)
        page.wait_for_timeout(500)
        for _ in range(column):
            page.keyboard.press("ArrowRight")
        page.keyboard.press("Enter")  # open the cell editor
        page.wait_for_timeout(500)
        page.keyboard.press("Control+A")
        page.keyboard.type(value, delay=50)
        page.wait_for_timeout(300)
        page.keyboard.press("Enter")
        page.wait_for_timeout(500)
        page.mouse.click(box["x"] + box["width"] + 40, box["y"] - 30)  # leave the grid: the edit is sent
        alert = page.locator('[data-testid="stAlert"]', has_text=expect).first
        try:
            alert.wait_for(timeout=20_000)
            return _alerts(page)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"edit_cell_try{attempt}.png"))
    raise AssertionError(f"no alert with {expect!r} after typing {value!r}: {_alerts(page)!r}")


def _shot(page, name: str, height: int = 2600) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside its own container, so the viewport is made
    tall for the shot (``full_page`` alone stops at the window)."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": height})
    page.wait_for_timeout(800)  # plotly redraws at the new size
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    page.set_viewport_size(size)


def _alerts(page) -> str:
    return " | ".join(page.locator('[data-testid="stAlert"]').all_inner_texts())


def _alert_with(page, text: str) -> str:
    """Wait for an alert containing ``text`` (a rerun may still be on its way); all alerts' text."""
    page.locator('[data-testid="stAlert"]', has_text=text).first.wait_for(timeout=120_000)
    return _alerts(page)


def test_live_attack_runs_or_says_why_not(page, server):
    """Finding 2: the attack takes >= 1 step (losses, readout before/after, suffix, both replies) or says
    plainly that the probe already reads the prompt as harmless (readout, loss, reply)."""
    _open(page, server, "refusal", "Refusal & attacks")
    page.get_by_role("tab", name="Attack a prompt").click()
    _set_number(page, "steps (1–50)", "2")
    page.get_by_role("button", name="Start attack").click()
    done = page.get_by_text(re.compile(r"Reply to prompt \+ suffix|Nothing to reroute at layer"))
    done.first.wait_for(timeout=300_000)
    _wait_idle(page, 300_000)
    _no_exception(page)
    text = page.locator('[data-testid="stMainBlockContainer"]').inner_text()
    assert "stopped:" in text, text
    page.locator('[data-testid="stCode"]').first.wait_for(timeout=120_000)  # the reply follows the message
    replies = page.locator('[data-testid="stCode"]').all_inner_texts()
    if "Nothing to reroute" in text:
        assert re.search(r"P\(harmless\) = 0\.9\d\d", text) and "pick another layer or prompt" in text, text
        assert len(replies) == 1 and replies[0].strip(), replies
    else:
        steps = int(re.search(r"loss after (\d+) steps?", text).group(1))
        assert steps >= 1 or "random starting suffix" in text, text
        assert "best suffix:" in text and "loss, prompt alone" in text, text
        rows = _table(page, "P(harmless), prompt + suffix")
        assert rows and all(re.fullmatch(r"0?\.\d+|1\.0+|0|1", r[2]) for r in rows), rows
        assert len(replies) == 2 and all(r.strip() for r in replies), replies
    _shot(page, "refusal_attack.png")


def test_out_of_range_values_are_reported_not_changed(page, server):
    """Finding 3: α = 100, prompts per N = 999 and steps = 999 each give an error naming the range;
    the typed value is kept."""
    _open(page, server, "edit", "Edit lab")
    alerts = _edit_cell(page, 3, "100", "alpha=100.0")
    assert "alpha=100.0 is out of range: choose a value from -2.0 to 4.0" in alerts, alerts
    assert page.get_by_role("button", name="Apply edit").is_disabled()
    _set_number(page, "prompts per N (1–40)", "999")
    assert "prompts per N=999 is out of range: choose a value from 1 to 40" in _alert_with(page, "N=999")
    assert page.get_by_label("prompts per N (1–40)").input_value() == "999"
    _nav(page, "Refusal & attacks")
    page.get_by_role("tab", name="Attack a prompt").click()
    _set_number(page, "steps (1–50)", "999")
    assert "steps=999 is out of range: choose a value from 1 to 50" in _alert_with(page, "steps=999")
    assert page.get_by_role("button", name="Start attack").is_disabled()


def test_edit_lab_results_survive_a_page_switch_and_go_stale(page, server):
    """Finding 4: results stay with the edit that produced them across a page switch, and are marked
    stale (with that edit named) once the table changes."""
    _open(page, server, "edit", "Edit lab")
    page.get_by_text("Unedited model").wait_for(timeout=180_000)
    page.get_by_role("button", name="Apply edit").click()
    edited = page.get_by_text(re.compile(r"^Edited: L1\.H1 c0 ×0"))
    edited.wait_for(timeout=180_000)
    _wait_idle(page)
    rows = _table(page, "accuracy_after")
    _shot(page, "edit_lab_results.png")
    _nav(page, "Representations")
    _nav(page, "Edit lab")
    edited.wait_for(timeout=60_000)  # the same results, for the same edit, without re-applying
    assert _table(page, "accuracy_after") == rows
    warning = _edit_cell(page, 3, "0.5", "Stale")
    assert "Stale" in warning and "L1.H1 c0 ×0" in warning, warning
    assert _table(page, "accuracy_after") == rows  # still the old edit's numbers, labelled as such
    _no_exception(page)
    _shot(page, "edit_lab_stale.png")


def test_refusal_probes_and_representations_render(page, server):
    """Finding 7: the refusal charts and the CKA heatmap render (screenshots are checked by eye); CKA on
    few prompts carries the library's warning."""
    _open(page, server, "refusal", "Refusal & attacks")
    page.get_by_role("button", name="Fit probes").click()
    page.get_by_text("best validation accuracy").wait_for(timeout=300_000)
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=120_000)
    _wait_idle(page, 300_000)
    _no_exception(page)
    assert page.locator(".js-plotly-plot").count() == 3
    assert _table(page, "name")[0][0].startswith("L")
    _shot(page, "refusal_probes.png")
    _nav(page, "Representations")
    page.get_by_role("button", name="Compare").click()
    page.locator(".js-plotly-plot").first.wait_for(timeout=300_000)
    _wait_idle(page, 300_000)
    _no_exception(page)
    _shot(page, "representations_cka.png")
    slider = page.locator('[data-testid="stSlider"]', has_text="prompts (8–40)").get_by_role("slider")
    slider.focus()
    page.keyboard.press("Home")  # down to 8 prompts
    assert "is biased high" in _alert_with(page, "biased high")
    page.get_by_role("tab", name="3D ↔ text alignment").click()
    page.locator(".js-plotly-plot").last.wait_for(timeout=120_000)
    _shot(page, "representations_shape.png")


def test_refusal_page_guidance_for_smollm2(page, server):
    """Finding 8: with SmolLM2 picked, the Refusal page says it barely refuses and offers the 0.5B model."""
    from probes.packs import PACKS, is_fetched

    if not is_fetched(PACKS["smollm2-135m-instruct"]):
        pytest.skip("smollm2-135m-instruct is not fetched")
    _open(page, server, "refusal", "Refusal & attacks")
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="smollm2-135m-instruct").click()
    page.get_by_text("barely refuses").wait_for(timeout=180_000)
    text = _alerts(page)
    assert "qwen2.5-coder-0.5b-instruct" in text and "491 MB" in text, text
    _shot(page, "refusal_guidance.png")
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="organism").click()  # leave the server on the organism
    _wait_idle(page, 180_000)
