"""The channels page's disk cache: a scan saved once is read back on the next app start, not recomputed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
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


def test_the_pair_panel_reads_one_pair_not_the_whole_scan(cache):
    """The saved scan is sorted by receiver in small row groups, so a pair's rows come from the row-group
    statistics alone; they equal filtering the whole table."""
    import pyarrow.parquet as pq

    _start()
    st.cache_resource.clear()
    folder = next((cache / "dashboard" / "channels").glob("*"))
    meta = json.loads((folder / "meta.json").read_text())
    key = cache_channels.ModelKey(meta["model"], meta["digest"])
    whole = pd.read_parquet(folder / "scan.parquet")
    for sender, receiver, mode in [((0, 0), (1, 0), "Q"), ((0, 1), (2, 1), "V"), ((1, 1), (2, 0), "K")]:
        rows, band = cache_channels.pair_components(key, sender, receiver, mode)
        want = whole[
            (whole["sender_layer"] == sender[0])
            & (whole["sender_head"] == sender[1])
            & (whole["receiver_layer"] == receiver[0])
            & (whole["receiver_head"] == receiver[1])
            & (whole["mode"].astype(str) == mode)
        ].sort_values("component")
        assert len(rows) == len(want) > 0
        assert rows["score"].tolist() == want["score"].tolist()
        assert rows["z"].tolist() == want["z"].tolist()
    ordered = whole[cache_channels.SCAN_ORDER[:2]].to_records(index=False).tolist()
    assert ordered == sorted(ordered)  # sorted by receiver: each receiver's rows are contiguous
    assert pq.ParquetFile(folder / "scan.parquet").metadata.row_group(0).num_rows <= cache_channels.ROW_GROUP


def test_a_saved_grid_is_painted_without_importing_torch(cache):
    """Everything the page needs to paint a saved grid imports without torch (it costs ~2 s per start)."""
    _start()
    folder = next((cache / "dashboard" / "channels").glob("*"))
    meta = json.loads((folder / "meta.json").read_text())
    code = f"""
import importlib, sys
from apps.dashboard.serve import WARM_MODULES  # what the server imports before its first session
for name in WARM_MODULES:
    importlib.import_module(name)
from apps.dashboard import cache_channels as cached, models, state
from analysis.channels.figures import grid_chart
from analysis.channels.significance import CORRECTIONS, tail_ratio
key = cached.ModelKey({meta["model"]!r}, {meta["digest"]!r})
assert cached.saved_meta(key) is not None
tables = cached.saved_tables(key)
grid = cached.grid_table(key, "Q", 3.0, {meta["info"]["n_heads"]})
grid_chart(grid, {meta["info"]["n_layers"]}, {meta["info"]["n_heads"]}, "Q", 3.0)
models.stored_info(models.quick_key("smollm2-135m-instruct"))
print("torch" in sys.modules, "transformers" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["False", "False"], out.stdout


def test_no_pair_page_shows_the_scans_thresholds(cache):
    at = _start()
    (saved_file,) = (cache / "dashboard" / "channels").glob("*/thresholds.parquet")
    saved = pd.read_parquet(saved_file)
    shown = at.table[0].value
    assert list(shown["composition"]) == ["Q", "K", "V"]
    for _, row in saved.iterrows():
        column = "Bonferroni z" if row["method"] == "bonferroni" else "Benjamini–Hochberg z"
        got = shown.loc[shown["composition"] == row["mode"], column].item()
        assert got == pytest.approx(row["z"], abs=0.005)
    assert (shown["component tests"] == saved["n_tests"].max()).all()
