"""Bad input on the ``sublens`` CLI (issue 13): exit codes, messages that name the flag and the fix, no
traceback, and no half-written run folder.

Each case runs the CLI in-process through :func:`apps.cli.main.run_cli` (the same code as the
``sublens`` entry point) on the ``organism`` model; a few run the real entry point as a subprocess.
After every case, each run folder under the test's folders must hold a ``run.json`` whose status is
ok, failed or interrupted, and no ``*.tmp`` file may be left anywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from apps.cli.main import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

SUBLENS = shutil.which("sublens") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "sublens")
FINAL = {"ok", "failed", "interrupted"}
CAMPAIGN = """model = "tiny-3"
method = "attention-ssr"
heads = [[1, 0], [2, 1]]
prompts = ["the cat sat", "a dog went"]
seeds = [0]
check_every = 0
max_new_tokens = 4

[optimiser]
n_tokens = 3
steps = {steps}
search_width = 32
topk = 8
early_stop_loss = 0.0
"""

# (id, argv, exit code, regexes the output must match); {names} are filled in by the `paths` fixture
CASES = [
    # --- the issue's findings 1, 2, 5, 8, 12
    ("missing-argument", "laundry eval", 2, [r"Missing argument 'model'", r"sublens laundry eval --help"]),
    ("port-not-int", "app --port abc", 2, [r"Invalid value for '--port'", r"valid integer"]),
    ("unknown-option", "channels scan organism --bogus", 2, [r"No such option: --bogus"]),
    ("per-n-float", "laundry eval organism --per-n 1.5", 2, [r"Invalid value for '--per-n'"]),
    ("busy-port", "app --model organism --port {busy}", 2, [r"--port \d+ is already in use", r"free port"]),
    (
        "ioi-prompts-negative",
        "laundry eval organism --ioi-prompts -3 --out {out}",
        2,
        [r"--ioi-prompts -3 must be >= 0"],
    ),
    ("top-negative", "channels scan organism --top -5 --out {out}", 2, [r"--top -5 must be >= 1"]),
    (
        "out-read-only",
        "laundry eval organism --per-n 1 --out {ro}",
        2,
        [r"--out \S+: the folder is not writable", r"pass a folder you can write to"],
    ),
    (
        "out-is-file",
        "channels scan organism --out {file}",
        2,
        [r"--out \S+: \S+ is a file, not a folder", r"pass a folder to --out"],
    ),
    ("out-under-file", "laundry eval organism --out {file}/sub", 2, [r"is a file, not a folder"]),
    (
        "rejected-resume",
        "attack run {toml_other} --run-dir {finished} --no-progress",
        2,
        [r"different config", r"same config or pick a new run directory"],
    ),
    (
        "host-remote",
        "app --model organism --host 0.0.0.0",
        2,
        [r"--host 0\.0\.0\.0", r"no authentication", r"--allow-remote"],
    ),
    ("host-remote-v6", "app --model organism --host ::", 2, [r"--allow-remote"]),
    # --- laundry eval
    ("laundry-n-min-1", "laundry eval organism --n-min 1", 2, [r"--n-min 1 must be >= 2"]),
    (
        "laundry-n-max-lt-min",
        "laundry eval organism --n-min 5 --n-max 3",
        2,
        [r"--n-max 3 must be >= --n-min 5"],
    ),
    (
        "laundry-split",
        "laundry eval organism --split train",
        2,
        [r"--split 'train' is not one of: dev, test"],
    ),
    ("laundry-per-n-zero", "laundry eval organism --per-n 0", 2, [r"--per-n 0 must be >= 1"]),
    ("laundry-seed-negative", "laundry eval organism --seed -1", 2, [r"--seed -1 must be >= 0"]),
    (
        "laundry-n-max-vocab",
        "laundry eval organism --n-max 500 --per-n 1 --out {out}",
        2,
        [r"--n-max 500 is too large", r"lower --n-max"],
    ),
    ("laundry-unknown-model", "laundry eval no-such-model-xyz --out {out}", 2, [r"no-such-model-xyz"]),
    # --- channels scan
    (
        "channels-modes",
        "channels scan organism --modes XQ",
        2,
        [r"--modes 'XQ' must be letters from Q, K, V"],
    ),
    ("channels-n-null-1", "channels scan organism --n-null 1", 2, [r"--n-null 1 must be >= 2"]),
    ("channels-n-null-text", "channels scan organism --n-null 1e8", 2, [r"Invalid value for '--n-null'"]),
    ("channels-top-zero", "channels scan organism --top 0", 2, [r"--top 0 must be >= 1"]),
    ("channels-seed-negative", "channels scan organism --seed -4", 2, [r"--seed -4 must be >= 0"]),
    # --- compare layers / nets
    (
        "compare-few-prompts",
        "compare layers organism organism --n-prompts 3",
        2,
        [r"3 prompts are too few for CKA", r"--prompts-file"],
    ),
    (
        "compare-metric",
        "compare layers organism organism --metrics bogus",
        2,
        [r"--metrics 'bogus' is not one of: .*linear_cka"],
    ),
    ("compare-metrics-empty", "compare layers organism organism --metrics ,", 2, [r"--metrics is empty"]),
    (
        "compare-pooling",
        "compare layers organism organism --pooling max",
        2,
        [r"--pooling 'max' is not one of"],
    ),
    (
        "compare-prompts-missing",
        "compare layers organism organism --prompts-file {missing}",
        2,
        [r"--prompts-file \S+ does not exist"],
    ),
    (
        "compare-prompts-empty",
        "compare layers organism organism --prompts-file {empty}",
        2,
        [r"--prompts-file \S+ is empty"],
    ),
    (
        "compare-prompts-dir",
        "compare layers organism organism --prompts-file {dir}",
        2,
        [r"--prompts-file \S+ is a folder"],
    ),
    (
        "compare-prompts-binary",
        "compare layers organism organism --prompts-file {binary}",
        2,
        [r"is not UTF-8 text"],
    ),
    (
        "compare-batch-zero",
        "compare layers organism organism --batch-size 0",
        2,
        [r"--batch-size 0 must be >= 1"],
    ),
    (
        "compare-backend",
        "compare layers organism organism --backend hf",
        2,
        [r"--backend 'hf' is not one of: tl, nnsight"],
    ),
    (
        "compare-threads-zero",
        "compare layers organism organism --threads 0",
        2,
        [r"--threads 0 must be >= 1"],
    ),
    ("nets-one-seed", "compare nets --seeds 1", 2, [r"--seeds 1 must be >= 2"]),
    (
        "nets-layer",
        "compare nets --layers conv9",
        2,
        [r"--layers 'conv9' is not one of: conv1, conv2, fc1, logits"],
    ),
    ("nets-alphas-text", "compare nets --alphas a,b", 2, [r"--alphas must be comma-separated numbers"]),
    ("nets-alphas-negative", "compare nets --alphas -1,0.1", 2, [r"--alphas -1,0.1 must all be > 0"]),
    ("nets-epochs-zero", "compare nets --epochs 0", 2, [r"--epochs 0 must be >= 1"]),
    (
        "nets-cka-conv",
        "compare nets --cka-conv median",
        2,
        [r"--cka-conv 'median' is not one of: mean, flatten"],
    ),
    # --- edit search / apply
    ("edit-alpha-one", "edit search organism --alphas 0,1", 2, [r"--alphas 0,1: 1 is the unedited model"]),
    ("edit-alphas-text", "edit search organism --alphas x", 2, [r"--alphas must be comma-separated numbers"]),
    ("edit-alphas-nan", "edit search organism --alphas nan", 2, [r"--alphas must be finite numbers"]),
    ("edit-heads", "edit search organism --heads 1-2", 2, [r"--heads items must look like LAYER\.HEAD"]),
    ("edit-dev-n-min", "edit search organism --dev-n-min 1", 2, [r"--dev-n-min 1 must be >= 2"]),
    ("edit-top-k-negative", "edit search organism --top-k -1", 2, [r"--top-k -1 must be >= 0"]),
    ("edit-ioi-negative", "edit search organism --ioi-prompts -3", 2, [r"--ioi-prompts -3 must be >= 0"]),
    ("edit-resume-missing", "edit search organism --resume {missing}", 2, [r"--resume \S+ does not exist"]),
    ("edit-resume-no-config", "edit search organism --resume {dir}", 2, [r"no config\.json there"]),
    (
        "edit-receiver-layer",
        "edit search organism --min-receiver-layer 9 --out {out}",
        2,
        [r"--min-receiver-layer 9 is out of range", r"layers 0\.\.2"],
    ),
    (
        "edit-heads-range",
        "edit search organism --heads 1.9 --out {out}",
        2,
        [r"--heads 1\.9 is out of range"],
    ),
    ("apply-missing", "edit apply organism {missing}", 2, [r"EDIT \S+ does not exist"]),
    ("apply-empty", "edit apply organism {empty}", 2, [r"EDIT \S+ is empty"]),
    ("apply-dir", "edit apply organism {dir}", 2, [r"EDIT \S+ is a folder"]),
    ("apply-bad-json", "edit apply organism {badjson}", 2, [r"not a valid spec file"]),
    ("apply-per-n-zero", "edit apply organism {badjson} --per-n 0", 2, [r"--per-n 0 must be >= 1"]),
    # --- refusal fit
    ("refusal-n-train", "refusal fit organism --n-train 1", 2, [r"--n-train 1 must be >= 2"]),
    ("refusal-data-missing", "refusal fit organism --data {missing}", 2, [r"--data \S+ does not exist"]),
    ("refusal-data-file", "refusal fit organism --data {file}", 2, [r"--data \S+ is a file"]),
    ("refusal-layer-negative", "refusal fit organism --layer -2", 2, [r"--layer -2 must be >= 0"]),
    # --- attack run / report
    ("attack-config-missing", "attack run {missing}", 2, [r"CONFIG \S+ does not exist"]),
    (
        "attack-ray-dead-address",
        "attack run {toml} --ray 127.0.0.1:1 --out {out}",
        2,
        [r"No Ray cluster answers at 127.0.0.1:1", r"--ray local"],
    ),  # fmt: skip
    ("attack-ray-bad-address", "attack run {toml} --ray nohost --out {out}", 2, [r"is not a Ray address"]),
    (
        "attack-ray-zero-workers",
        "attack run {toml} --ray local --workers 0 --out {out}",
        2,
        [r"--workers 0 must be >= 1"],
    ),  # fmt: skip
    ("scan-models-and-model", "channels scan organism --models organism", 2, [r"not both"]),
    ("scan-ray-single-model", "channels scan organism --ray local", 2, [r"go with --models"]),
    ("scan-models-missing-path", "channels scan --models ./nope.gguf", 2, [r"no such file or directory"]),
    (
        "edit-ray-dead-address",
        "edit search organism --ray 127.0.0.1:1 --out {out}",
        2,
        [r"No Ray cluster answers"],
    ),  # fmt: skip
    ("attack-config-dir", "attack run {dir}", 2, [r"CONFIG \S+ is a folder"]),
    ("attack-config-empty", "attack run {empty}", 2, [r"CONFIG \S+ is empty"]),
    ("attack-bad-toml", "attack run {badtoml}", 2, [r"is not valid TOML"]),
    ("attack-run-dir-file", "attack run {toml} --run-dir {file}", 2, [r"--run-dir \S+ is a file"]),
    ("attack-out-file", "attack run {toml} --out {file}", 2, [r"--out \S+: \S+ is a file, not a folder"]),
    ("report-missing", "attack report {missing}", 2, [r"RUN_DIR \S+ does not exist"]),
    ("report-fpr", "attack report {dir} --fpr 2", 2, [r"--fpr 2\.0 must be between 0\.0 and 1\.0"]),
    # --- align, demo, app, models, unknown commands
    ("align-missing", "align run {missing}", 2, [r"CONFIG \S+ does not exist"]),
    ("align-bad-toml", "align run {badtoml}", 2, [r"is not valid TOML"]),
    ("align-out-file", "align run {align_toml} --out {file}", 2, [r"--out \S+: \S+ is a file"]),
    (
        "demo-backend",
        "demo --model organism --backend foo",
        2,
        [r"--backend 'foo' is not one of: tl, nnsight"],
    ),
    ("demo-tokens-zero", "demo --model organism --max-new-tokens 0", 2, [r"--max-new-tokens 0 must be >= 1"]),
    ("demo-empty-prompt", "demo --model organism --prompt ' '", 2, [r"--prompt is empty"]),
    ("app-port-zero", "app --model organism --port 0", 2, [r"--port 0 is out of range"]),
    ("app-model", "app --model gpt2", 2, [r"Unknown model 'gpt2' for the dashboard"]),
    ("models-info-missing", "models info", 2, [r"Missing argument"]),
    ("unknown-command", "laundry bake organism", 2, [r"No such command 'bake'"]),
    ("unknown-group", "nope", 2, [r"No such command 'nope'"]),
    ("group-without-command", "laundry", 2, [r"eval"]),
    ("help", "laundry eval --help", 0, [r"--per-n"]),
    # --- commands that run (organism, small sizes): status ok
    (
        "laundry-ok",
        "laundry eval organism --n-max 3 --per-n 2 --ioi-prompts 2 --out {out}",
        0,
        [r"results: "],
    ),
    ("channels-ok", "channels scan organism --n-null 20 --top 3 --out {out}", 0, [r"top channels"]),
]


def _norm(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def finished_campaign(tmp_path_factory):
    """A finished tiny attack campaign (status ok) and a config that differs from it."""
    d = tmp_path_factory.mktemp("campaign")
    (d / "c.toml").write_text(CAMPAIGN.format(steps=2))
    (d / "other.toml").write_text(CAMPAIGN.format(steps=3))
    assert run_cli(["attack", "run", str(d / "c.toml"), "--run-dir", str(d / "run"), "--no-progress"]) == 0
    return d


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder the test process cannot write to (for root, which ignores modes: a sysfs folder)."""
    if os.geteuid() == 0:
        yield Path("/sys/kernel")
        return
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    yield d
    d.chmod(0o755)


@pytest.fixture
def paths(tmp_path, monkeypatch, busy_port, read_only_dir, finished_campaign):
    monkeypatch.setenv("SUBLENS_RUNS", str(tmp_path / "default-runs"))
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "file.txt").write_text("not a folder\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "folder").mkdir()
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "bad.toml").write_text("model = [unclosed\n")
    (tmp_path / "bad.json").write_text("{bad")
    (tmp_path / "align.toml").write_text("seeds = [0]\n")
    return {
        "out": str(tmp_path / "out"),
        "ro": str(read_only_dir),
        "file": str(tmp_path / "file.txt"),
        "empty": str(tmp_path / "empty.txt"),
        "dir": str(tmp_path / "folder"),
        "missing": str(tmp_path / "missing.txt"),
        "binary": str(tmp_path / "binary.txt"),
        "badtoml": str(tmp_path / "bad.toml"),
        "badjson": str(tmp_path / "bad.json"),
        "align_toml": str(tmp_path / "align.toml"),
        "toml": str(finished_campaign / "c.toml"),
        "toml_other": str(finished_campaign / "other.toml"),
        "finished": str(finished_campaign / "run"),
        "busy": str(busy_port),
    }


def check_run_folders(*roots: Path) -> None:
    """Every run folder (``<root>/<command>/<run>``) has a final run.json; no ``*.tmp`` anywhere."""
    for root in roots:
        if not root.is_dir():
            continue
        assert not list(root.rglob("*.tmp")), f"temp files left in {root}"
        for run in (p for group in root.iterdir() if group.is_dir() for p in group.iterdir() if p.is_dir()):
            meta = run / "run.json"
            assert meta.is_file(), f"{run} has no run.json"
            assert json.loads(meta.read_text())["status"] in FINAL, f"{meta} is not final"


def _argv(template: str, paths: dict) -> list[str]:
    import shlex

    return [a.format(**paths) for a in shlex.split(template)]


@pytest.mark.parametrize("argv,code,patterns", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cli_case(argv, code, patterns, paths, tmp_path, capsys):
    got = run_cli(_argv(argv, paths))
    out = capsys.readouterr()
    text = _norm(out.out + out.err)
    assert got == code, text[-3000:]
    assert "Traceback" not in text
    for pat in patterns:
        assert re.search(pat, text), f"{pat!r} not in: {text[-3000:]}"
    check_run_folders(tmp_path / "out", tmp_path / "default-runs")
    if argv.startswith("attack run {toml_other}"):  # the rejected resume left the finished record alone
        meta = json.loads((Path(paths["finished"]) / "run.json").read_text())
        assert meta["status"] == "ok" and meta["report"], meta


def test_cases_cover_the_issue_and_more():
    assert len(CASES) >= 12 + 25
    assert len({c[0] for c in CASES}) == len(CASES)


def test_crashing_run_ends_failed(paths, tmp_path, capsys, monkeypatch):
    """An unexpected exception mid-run: one line, exit 1, run.json 'failed' with the error."""
    import analysis.tasks.evaluate as evaluate

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash in the middle of the compute")

    monkeypatch.setattr(evaluate, "evaluate_laundry", boom)
    got = run_cli(["laundry", "eval", "organism", "--per-n", "1", "--out", paths["out"]])
    text = _norm(capsys.readouterr().err)
    assert got == 1 and "Traceback" not in text
    assert re.search(r"internal error: RuntimeError: simulated crash .*--debug or SUBLENS_DEBUG=1", text)
    (meta,) = (tmp_path / "out").glob("laundry-eval/*/run.json")
    rec = json.loads(meta.read_text())
    assert rec["status"] == "failed" and "simulated crash" in rec["error"]
    check_run_folders(tmp_path / "out")
    got = run_cli(["--debug", "laundry", "eval", "organism", "--per-n", "1", "--out", paths["out"]])
    assert got == 1 and "Traceback" in capsys.readouterr().err  # --debug shows it


def test_debug_env_shows_traceback(paths, capsys, monkeypatch):
    import analysis.tasks.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_laundry", lambda *a, **k: 1 / 0)
    monkeypatch.setenv("SUBLENS_DEBUG", "1")
    assert run_cli(["laundry", "eval", "organism", "--per-n", "1", "--out", paths["out"]]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_allow_remote_warns(monkeypatch, capsys):
    """--allow-remote lets a non-loopback host through, with a warning naming the risk."""
    from apps.cli import app as app_cli

    monkeypatch.setattr(app_cli.subprocess, "call", lambda cmd, env: 0)
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
    code = run_cli(["app", "--model", "organism", "--host", "0.0.0.0", "--port", str(port), "--allow-remote"])
    err = _norm(capsys.readouterr().err)
    assert code == 0 and "no authentication" in err and "run attacks" in err


def test_streamlit_exit_code_propagates(monkeypatch, capsys):
    from apps.cli import app as app_cli

    monkeypatch.setattr(app_cli, "check_port_free", lambda host, port: None)
    monkeypatch.setattr(app_cli.subprocess, "call", lambda cmd, env: 3)
    assert run_cli(["app", "--model", "organism"]) == 3


def test_write_check_comes_before_loading(paths, monkeypatch, capsys):
    """A bad --out is reported before any model is loaded."""
    import probes.loading

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(probes.loading, "load_model", no_load)
    for cmd in (
        ["laundry", "eval", "organism"],
        ["channels", "scan", "organism"],
        ["demo", "--model", "organism"],
    ):
        assert run_cli([*cmd, "--out", paths["file"]]) == 2
        assert "is a file, not a folder" in _norm(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv,code,pattern",
    [
        (["laundry", "eval"], 2, "Missing argument"),
        (["app", "--port", "abc"], 2, "Invalid value for '--port'"),
        (["channels", "scan", "organism", "--bogus"], 2, "No such option: --bogus"),
        (["laundry", "eval", "organism", "--per-n", "1.5"], 2, "Invalid value for '--per-n'"),
        (["laundry", "eval", "organism", "--ioi-prompts", "-3"], 2, "--ioi-prompts -3 must be >= 0"),
    ],
)
def test_entry_point_subprocess(argv, code, pattern, tmp_path):
    """The installed ``sublens`` script gives the same exit codes and messages."""
    env = {**os.environ, "COLUMNS": "200", "SUBLENS_RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([SUBLENS, *argv], capture_output=True, text=True, timeout=120, env=env)
    text = _norm(out.stdout + out.stderr)
    assert out.returncode == code and pattern in text and "Traceback" not in text, text
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made
