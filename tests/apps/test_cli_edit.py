"""``sublens edit``: bad input gives clear errors (exit 2); search + apply on SmolLM2 with a tiny budget."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

MODEL = "smollm2-135m-instruct"


def sublens(*args, timeout=300):
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "apps.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_empty_alpha_grid_is_a_clear_error(tmp_path):
    r = sublens("edit", "search", MODEL, "--alphas", "", "--out", str(tmp_path))
    assert r.returncode == 2 and "alphas is empty" in r.stderr


def test_resume_without_config_is_a_clear_error(tmp_path):
    r = sublens("edit", "search", MODEL, "--resume", str(tmp_path))
    assert r.returncode == 2 and "no config.json" in r.stderr


@pytest.mark.pack
def test_apply_spec_for_another_model_is_refused(tiny, tmp_path):
    from probes.edits import EditSpec

    path = EditSpec.build(tiny, [(0, 1, 0, 0.0)]).save(tmp_path / "tiny_edit.json")
    r = sublens("edit", "apply", MODEL, str(path))
    assert r.returncode == 2 and "d_model=32" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.pack
def test_search_then_apply(tmp_path):
    r = sublens(
        "edit", "search", MODEL, "--top-k", "0", "--heads", "21.5", "--head-components", "1",
        "--alphas", "0,3", "--dev-n-min", "6", "--dev-n-max", "7", "--dev-per-n", "2",
        "--test-per-n", "1", "--ioi-prompts", "2", "--out", str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    run_dirs = list((tmp_path / "edit-search").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "search.jsonl").read_text().count("\n") == 3
    spec = run_dirs[0] / "best_edit.json"
    if spec.exists():
        r = sublens("edit", "apply", MODEL, str(spec), "--n-min", "2", "--n-max", "3", "--per-n", "2")
        assert r.returncode == 0, r.stderr
        assert "LM loss" in r.stdout and "gain_pp" in r.stdout
    r = sublens("edit", "search", MODEL, "--resume", str(run_dirs[0]))  # all done: nothing re-evaluated
    assert r.returncode == 0, r.stderr
    assert (run_dirs[0] / "search.jsonl").read_text().count("\n") == 3
