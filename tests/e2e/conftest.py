"""Fixtures of the dashboard's browser tests: one app server and one chromium for the whole session.

Without playwright or chromium every browser test is skipped with the reason.
"""

from __future__ import annotations

import json

import pytest
from browser_kit import ARGS, ARTIFACTS, CHROMIUM, MODEL, TIMINGS, serve


@pytest.fixture(scope="session")
def server():
    """The dashboard served by a ``streamlit run`` subprocess (:func:`browser_kit.serve`); yields its URL."""
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with serve(MODEL) as (url, _):
            yield url
    except RuntimeError as err:
        pytest.fail(str(err))
    finally:
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
