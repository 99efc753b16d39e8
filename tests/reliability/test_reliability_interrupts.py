"""Ctrl-C (SIGINT) at several points of ``laundry eval``, ``channels scan``, ``edit search`` and ``attack
run`` (issue 13): exit 130, a message saying what was kept and how to resume, a run folder whose
``run.json`` says ``interrupted``, no ``*.tmp``; plus the run lifecycle's write failures at the API level.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from probes.errors import InputError
from probes.runs import check_writable, open_run, write_sidecar, write_table

SUBLENS = shutil.which("sublens") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "sublens")
CAMPAIGN = """model = "tiny-3"
method = "attention-ssr"
heads = [[1, 0], [2, 1]]
prompts = ["the cat sat", "a dog went", "Mary gave ball", "John put hat", "Anna bought sock", "Tom is it"]
seeds = [0, 1, 2]
check_every = 0
max_new_tokens = 4

[optimiser]
n_tokens = 3
steps = 40
search_width = 32
topk = 8
early_stop_loss = 0.0
"""


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", "SUBLENS_RUNS": str(tmp_path / "runs")}


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        assert proc.poll() is None, "the command ended before the interrupt point"
        time.sleep(0.02)
    raise AssertionError("the interrupt point was never reached")


def _run_json(root: Path) -> list[Path]:
    return sorted(root.rglob("run.json"))


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.is_file() else 0


def _interrupt(argv: list[str], tmp_path: Path, point, delay: float = 0.0) -> tuple[str, Path | None]:
    """Start ``sublens argv``, wait for ``point()``, send SIGINT; check exit 130 and the run folder."""
    proc = subprocess.Popen(
        [SUBLENS, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path)
    )
    _wait_for(point, proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    text = " ".join((out + err).split())
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text and "interrupted" in text, text[-3000:]
    assert not list(tmp_path.rglob("*.tmp"))
    metas = _run_json(tmp_path)
    for meta in metas:
        assert json.loads(meta.read_text())["status"] in ("ok", "failed", "interrupted")
    return text, (metas[0].parent if metas else None)


def _check_interrupted(text: str, run: Path | None, how: str) -> dict:
    assert run is not None, "no run folder was left"
    rec = json.loads((run / "run.json").read_text())
    assert rec["status"] == "interrupted" and isinstance(rec["kept"], list), rec
    assert "interrupted: kept" in text and str(run) in text and how in text, text[-3000:]
    return rec


def test_sigint_while_starting(tmp_path):
    """Ctrl-C while Python is still importing the CLI: exit 130 quietly, no folder."""
    _interrupt(["laundry", "eval", "organism", "--per-n", "1"], tmp_path, lambda: True, delay=0.3)
    assert not (tmp_path / "runs").exists() or not _run_json(tmp_path)


@pytest.mark.parametrize("delay", [0.0, 1.5], ids=["loading", "computing"])
def test_sigint_laundry_eval(tmp_path, delay):
    argv = ["laundry", "eval", "organism", "--per-n", "600", "--out", str(tmp_path / "out")]
    text, run = _interrupt(argv, tmp_path, lambda: bool(_run_json(tmp_path)), delay)
    rec = _check_interrupted(
        text, run, "this command does not resume; rerun with: sublens laundry eval organism"
    )
    assert rec["resume"] is None


@pytest.mark.parametrize("delay", [0.0, 1.5], ids=["loading", "computing"])
def test_sigint_channels_scan(tmp_path, delay):
    argv = ["channels", "scan", "organism", "--n-null", "50000", "--out", str(tmp_path / "out")]
    text, run = _interrupt(argv, tmp_path, lambda: bool(_run_json(tmp_path)), delay)
    _check_interrupted(text, run, "rerun with: sublens channels scan organism")


def _edit_argv(tmp_path: Path) -> list[str]:
    return ["edit", "search", "organism", "--dev-n-min", "2", "--dev-n-max", "6", "--dev-per-n", "20",
            "--alphas", "0,0.5,2,3", "--test-per-n", "2", "--ioi-prompts", "0", "--out", str(tmp_path / "out")]  # fmt: skip


def test_sigint_edit_search_then_resume(tmp_path):
    log = lambda: next((tmp_path / "out").glob("edit-search/*/search.jsonl"), Path("/nonexistent"))  # noqa: E731
    text, run = _interrupt(_edit_argv(tmp_path), tmp_path, lambda: _lines(log()) >= 2)
    rec = _check_interrupted(text, run, f"resume with: sublens edit search organism --resume {run}")
    assert any(k.startswith("search.jsonl (") for k in rec["kept"]), rec["kept"]
    n_kept = _lines(run / "search.jsonl")
    out = subprocess.run(
        [SUBLENS, "edit", "search", "organism", "--resume", str(run)],
        capture_output=True, text=True, timeout=600, env=_env(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((run / "run.json").read_text())["status"] == "ok"
    keys = [json.loads(x)["key"] for x in (run / "search.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) > n_kept  # resumed: nothing evaluated twice


@pytest.mark.parametrize("point", ["loading", "attempts"])
def test_sigint_attack_run_then_resume(tmp_path, point):
    cfg, run = tmp_path / "c.toml", tmp_path / "run"
    cfg.write_text(CAMPAIGN)
    argv = ["attack", "run", str(cfg), "--run-dir", str(run), "--no-progress"]
    if point == "loading":
        cond = lambda: (run / "run.json").is_file()  # noqa: E731
    else:
        cond = lambda: _lines(run / "attempts.jsonl") >= 2  # noqa: E731
    text, _ = _interrupt(argv, tmp_path, cond)
    _check_interrupted(text, run, f"resume with: sublens attack run {cfg} --run-dir {run}")
    out = subprocess.run([SUBLENS, *argv], capture_output=True, text=True, timeout=600, env=_env(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    rec = json.loads((run / "run.json").read_text())
    assert rec["status"] == "ok" and rec["report"] and "kept" not in rec
    assert _lines(run / "attempts.jsonl") == 18


# ------------------------------------------------------------------- the lifecycle at the API level
def test_open_run_statuses(tmp_path):
    with open_run("unit test", {"a": 1}, root=tmp_path, model="m", seed=3) as run:
        assert json.loads((run.dir / "run.json").read_text())["status"] == "running"
        run.table(pd.DataFrame({"x": [1.0]}), "t.parquet")
        run.record(n=5)
    rec = json.loads((run.dir / "run.json").read_text())
    assert rec["status"] == "ok" and rec["model"] == "m" and rec["seed"] == 3 and rec["n"] == 5
    assert rec["config"] == {"a": 1} and run.dir.parent.name == "unit-test"

    with pytest.raises(ValueError, match="bad"), open_run("unit test", root=tmp_path) as run:
        (run.dir / "half.parquet.tmp").write_bytes(b"x")
        raise ValueError("bad")
    rec = json.loads((run.dir / "run.json").read_text())
    assert rec["status"] == "failed" and rec["error"] == "ValueError: bad"
    assert not list(run.dir.glob("*.tmp"))

    with (
        pytest.raises(KeyboardInterrupt),
        open_run("unit test", root=tmp_path, resume="sublens x --resume y") as run,
    ):
        (run.dir / "log.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
        raise KeyboardInterrupt
    rec = json.loads((run.dir / "run.json").read_text())
    assert rec["status"] == "interrupted" and rec["kept"] == ["log.jsonl (2 records)"]
    assert rec["resume"] == "sublens x --resume y"


def test_library_sidecar_joins_the_run(tmp_path):
    """Library code that writes its own run.json inside the run keeps its fields; the status is final."""
    from probes.runs import new_run_dir

    with open_run("align run", folder="align", root=tmp_path) as run:
        inner = new_run_dir("align", {"x": 1}, root=tmp_path)
        assert inner == run.dir
        write_sidecar(inner, command="align run", seed=7, extra={"seconds": 1.5})
    rec = json.loads((run.dir / "run.json").read_text())
    assert rec["status"] == "ok" and rec["seed"] == 7 and rec["seconds"] == 1.5
    assert [p.name for p in (tmp_path / "align").iterdir()] == [run.dir.name]


def test_disk_full_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    """ENOSPC while writing a table: the temp file is removed, run.json says failed, a clear InputError."""

    def full(self, path, **kwargs):
        Path(path).write_bytes(b"PAR1 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(InputError, match="disk is full.*free some space or pass --out"):
        with open_run("unit test", root=tmp_path) as run:
            run.table(pd.DataFrame({"x": [1]}), "t.parquet")
    assert not list(tmp_path.rglob("*.tmp")) and not (run.dir / "t.parquet").exists()
    assert json.loads((run.dir / "run.json").read_text())["status"] == "failed"
    with pytest.raises(OSError):
        write_table(pd.DataFrame({"x": [1]}), tmp_path / "plain.parquet")
    assert not list(tmp_path.glob("plain*"))


def test_disk_full_run_json_falls_back_in_place(tmp_path, monkeypatch):
    """When even the final run.json cannot be written atomically, the old record is overwritten in place."""
    import probes.runs.files as runs  # where the atomic writes live

    with pytest.raises(ValueError), open_run("unit test", root=tmp_path) as run:
        real = runs._atomic_write

        def full(path, write):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(runs, "_atomic_write", full)
        raise ValueError("boom")
    monkeypatch.setattr(runs, "_atomic_write", real)
    rec = json.loads((run.dir / "run.json").read_text())
    assert rec["status"] == "failed" and "boom" in rec["error"]


def test_check_writable(tmp_path, monkeypatch):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(InputError, match=r"--out .*is a file, not a folder"):
        check_writable(f)
    with pytest.raises(InputError, match=r"--run-dir .*is a file"):
        check_writable(f / "sub", "--run-dir")
    assert check_writable(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert list((tmp_path / "new" / "deep").iterdir()) == []  # the probe file is gone

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(InputError, match="the disk is full"):
        check_writable(tmp_path / "other")
    assert list((tmp_path / "other").iterdir()) == []
    with pytest.raises(InputError, match=r"default; choose another with --out"):
        check_writable(tmp_path / "other", None)
