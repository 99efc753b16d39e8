"""The channels page's disk cache: a scan saved once is read back on the next app start, not recomputed."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from apps.dashboard import cache_channels  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "apps" / "dashboard" / "app.py"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache root and fresh in-process caches (a new app start)."""
    monkeypatch.setenv("SUBLENS_CACHE", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path
    st.cache_resource.clear()
    st.cache_data.clear()


def _start() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["model"] = "organism"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


def test_second_start_reads_the_saved_scan(cache, monkeypatch):
    first = _start()
    assert "Scan computed now" in _captions(first)
    folders = list((cache / "dashboard" / "channels").glob("*"))
    assert len(folders) == 1
    saved = {p.name for p in folders[0].iterdir()}
    assert {"scan.parquet", "summary.parquet", "null.parquet", "thresholds.parquet", "meta.json"} <= saved
    assert not [p for p in folders[0].iterdir() if p.name.endswith(".tmp")]
    grid_before = first.dataframe[0].value

    st.cache_resource.clear()  # a new server process: nothing in memory
    st.cache_data.clear()

    def no_rescan(*args, **kwargs):
        raise AssertionError("the saved scan was recomputed")

    monkeypatch.setattr(cache_channels, "build_scan", no_rescan)
    second = _start()
    assert "Scan read from disk" in _captions(second)
    assert second.dataframe[0].value.equals(grid_before)


def test_removal_effects_are_saved(cache):
    at = _start()
    at.button(key="ch_open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    files = list((cache / "dashboard" / "channels").glob("*/effects/*.parquet"))
    assert len(files) == 1


def test_a_damaged_saved_scan_is_removed_and_reported(cache):
    _start()
    folder = next((cache / "dashboard" / "channels").glob("*"))
    (folder / "summary.parquet").write_bytes(b"not parquet")
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["model"] = "organism"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "could not be read" in "\n".join(e.value for e in at.error)
    assert not folder.exists()  # the next start scans again
    assert "Scan computed now" in _captions(_start())


def test_the_key_covers_model_config_and_code(monkeypatch):
    key = cache_channels.ModelKey("m", "a" * 64)
    other = cache_channels.ModelKey("m", "b" * 64)
    base = cache_channels.scan_dir(key)
    assert base != cache_channels.scan_dir(other)
    assert base != cache_channels.scan_dir(key, n_null=500)
    assert base != cache_channels.scan_dir(key, seed=1)
    cache_channels.code_version.cache_clear()
    monkeypatch.setattr(cache_channels, "CACHE_FORMAT", cache_channels.CACHE_FORMAT + 1)
    assert cache_channels.scan_dir(key) != base  # new code: a new entry
    cache_channels.code_version.cache_clear()
