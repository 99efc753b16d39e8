"""``sublens attack``: run/report as a subprocess, resume after SIGKILL, clear config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

PROMPTS = ["the cat sat", "a dog went", "Mary gave ball", "John put hat", "Anna bought sock", "Tom is it"]
TOML = """model = "tiny-3"
method = "attention-ssr"
heads = [[1, 0], [2, 1]]
prompts = {prompts}
seeds = [0, 1, 2]
check_every = 0
max_new_tokens = 4

[optimiser]
n_tokens = 3
steps = {steps}
search_width = 32
topk = 8
early_stop_loss = 0.0
"""


def _env():
    return {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


def sublens(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "apps.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def _write(tmp_path, steps=40, prompts=PROMPTS):
    path = tmp_path / "c.toml"
    path.write_text(TOML.format(prompts=json.dumps(prompts), steps=steps))
    return path


def test_resume_after_sigkill(tmp_path):
    cfg, run = _write(tmp_path), tmp_path / "run"
    log = run / "attempts.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apps.cli.main",
            "attack",
            "run",
            str(cfg),
            "--run-dir",
            str(run),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_killed = log.read_text().count("\n")
    assert 2 <= n_killed < 18, "the campaign was not killed mid-way"
    out = sublens("attack", "run", str(cfg), "--run-dir", str(run), "--no-progress")
    assert out.returncode == 0, out.stderr
    lines = log.read_text().splitlines()
    keys = [json.loads(x)["key"] for x in lines]
    assert len(lines) == 18 and len(set(keys)) == 18
    rep = sublens("attack", "report", str(run), "--strict", "--defence", "--n-harmless", "50")
    assert rep.returncode == 0 and "attention-ssr" in rep.stdout and "asr_readout" in rep.stdout, rep.stderr
    assert "defence view" in rep.stdout and (run / "defence.parquet").is_file()
    assert (run / "report.parquet").is_file() and json.loads((run / "run.json").read_text())["status"] == "ok"


def test_bad_config_errors(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('model = "tiny-3"\nmethod = "pgd"\nprompts = ["the cat"]\n')
    out = sublens("attack", "run", str(path), "--run-dir", str(tmp_path / "r"))
    assert out.returncode == 2 and "Unknown method 'pgd'" in out.stderr and "Traceback" not in out.stderr
    path.write_text('model = "tiny-3"\nmethod = "gcg"\nprompts = []\n')
    out = sublens("attack", "run", str(path), "--run-dir", str(tmp_path / "r"))
    assert out.returncode == 2 and "prompt set is empty" in out.stderr
    path.write_text('model = "tiny-3"\nmethod = "steering-ssr"\nlayers = [9]\nprompts = ["the cat"]\n')
    out = sublens("attack", "run", str(path), "--run-dir", str(tmp_path / "r2"))
    assert out.returncode == 2 and "layer 9 is out of range" in out.stderr
    path.write_text('model = "tiny-3"\nmethod = "gcg"\nprompts = ["the cat"]\n[optimiser]\nn_tokens = 0\n')
    out = sublens("attack", "run", str(path), "--run-dir", str(tmp_path / "r3"))
    assert out.returncode == 2 and "n_tokens (suffix length) must be >= 1" in out.stderr
    path.write_text(
        'model = "tiny-3"\nmethod = "gcg"\nprompts = ["the cat"]\nsteps = 2\n'
    )  # pre-[optimiser] key
    out = sublens("attack", "run", str(path), "--run-dir", str(tmp_path / "r4"))
    assert out.returncode == 2 and "steps belongs in the [optimiser] table" in " ".join(out.stderr.split())
    out = sublens("attack", "report", str(tmp_path / "nothing"))
    assert out.returncode == 2 and "does not exist" in out.stderr
