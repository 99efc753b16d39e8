"""Several models' channel scans: one folder each, resumable by model, Ray gives the same tables."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.channels import ScanConfig
from analysis.channels.many import SCANS, scan_models
from probes.runs import JsonlLog

CONFIG = ScanConfig(modes="Q", n_null=100, seed=0)


def test_scans_are_saved_per_model_and_resumed(tmp_path):
    first = scan_models(["organism", "organism"], CONFIG, tmp_path, progress=False)
    assert list(first["model"]) == ["talking-heads-organism"] and first["n_scores"].iloc[0] > 0
    tables = pd.read_parquet(tmp_path / "organism" / "channels.parquet")
    assert len(tables) == first["n_scores"].iloc[0]
    log = JsonlLog(tmp_path / SCANS)
    assert [r["key"] for r in log.read()] == ["organism"]
    again = scan_models(["organism"], CONFIG, tmp_path, progress=False)  # nothing left to do
    assert [r["key"] for r in log.read()] == ["organism"]
    pd.testing.assert_frame_equal(again, first)


def test_ray_scan_matches_single_process(tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[scale]')")
    from probes.scaleout import RayConfig

    scan_models(["organism"], CONFIG, tmp_path / "one", progress=False)
    scan_models(["organism"], CONFIG, tmp_path / "ray", ray=RayConfig(workers=1), progress=False)
    for name in ("channels", "head_pairs", "top_channels"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "ray" / "organism" / f"{name}.parquet"),
            pd.read_parquet(tmp_path / "one" / "organism" / f"{name}.parquet"),
        )
