"""A campaign on a private 2-CPU Ray cluster gives the single-process records; a killed driver resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from analysis.rerouting import CampaignConfig, run_campaign
from analysis.rerouting.campaign import read_attempts
from probes.scaleout import RayConfig

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[scale]')")

PROMPTS = ["the cat sat", "a dog went", "Mary gave ball"]
CONFIG = {
    "model": "tiny-3",
    "method": "attention-ssr",
    "heads": [[1, 0], [2, 1]],
    "prompts": PROMPTS,
    "seeds": [0, 1, 2],
    "check_every": 0,
    "max_new_tokens": 4,
    "optimiser": {"n_tokens": 3, "steps": 3, "search_width": 16, "topk": 8, "early_stop_loss": 0.0},
}
DETERMINISTIC = ["key", "prompt", "seed", "initial_loss", "final_loss", "suffix_ids", "steps", "success"]


def _by_key(records):
    return {r["key"]: {k: r[k] for k in DETERMINISTIC} for r in records}


def test_ray_campaign_matches_single_process(tmp_path):
    cfg = CampaignConfig.parse(CONFIG)
    run_campaign(cfg, tmp_path / "single", progress=False)
    run_campaign(cfg, tmp_path / "ray", progress=False, ray=RayConfig(workers=2))
    single, dist = read_attempts(tmp_path / "single"), read_attempts(tmp_path / "ray")
    assert len(dist) == len(single) == 9
    assert _by_key(dist) == _by_key(single)


def _toml(cfg: dict) -> str:
    lines = []
    for k, v in cfg.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {json.dumps(v)}")
    lines.append("[optimiser]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in cfg["optimiser"].items()]
    return "\n".join(lines) + "\n"


def test_cli_ray_run_killed_then_resumed(tmp_path):
    cfg_path, run = tmp_path / "c.toml", tmp_path / "run"
    cfg_path.write_text(_toml({**CONFIG, "optimiser": {**CONFIG["optimiser"], "steps": 6}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    argv = [sys.executable, "-m", "apps.cli.main", "attack", "run", str(cfg_path), "--run-dir", str(run)]
    proc = subprocess.Popen([*argv, "--ray", "local", "--no-progress"], env=env, start_new_session=True)
    log = run / "attempts.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the private cluster it started
    proc.wait()
    n_before = len(read_attempts(run))
    assert 2 <= n_before < 9
    done = subprocess.run([*argv, "--ray", "local", "--no-progress"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    keys = [r["key"] for r in read_attempts(run)]
    assert len(keys) == 9 and len(set(keys)) == 9
    assert json.loads((run / "run.json").read_text())["status"] == "ok"
