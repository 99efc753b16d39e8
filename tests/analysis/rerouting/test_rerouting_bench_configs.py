"""Every campaign config shipped under ``benchmarks/configs/`` validates, and each comparison folder's
configs differ only in the method and what the method needs (same prompts, suffix, budget, check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.rerouting import load_config

CONFIGS = Path(__file__).resolve().parents[3] / "benchmarks" / "configs"
METHOD_KEYS = {"method", "layers", "alphas", "heads", "target"}


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.toml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_validates(path):
    assert load_config(path).method


@pytest.mark.parametrize("folder", ["organism", "qwen05b", "paper"])
def test_a_comparison_folder_shares_everything_but_the_method(folder):
    cfgs = [load_config(p).to_json() for p in sorted((CONFIGS / folder).glob("*.toml"))]
    assert sorted(c["method"] for c in cfgs) == ["attention-ssr", "gcg", "probe-ssr", "steering-ssr"]
    shared = [{k: v for k, v in c.items() if k not in METHOD_KEYS} for c in cfgs]
    assert all(s == shared[0] for s in shared)
