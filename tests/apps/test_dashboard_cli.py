"""``sublens app``: the streamlit command it runs, the model it passes on, and its input errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from apps.cli import app as app_cli
from probes.errors import InputError


def test_app_runs_streamlit_on_localhost(monkeypatch):
    seen = {}

    def fake_call(cmd, env):
        seen["cmd"], seen["env"] = cmd, env
        return 0

    monkeypatch.setattr(app_cli.subprocess, "call", fake_call)
    with pytest.raises(typer.Exit) as exc:
        app_cli.app(model=None, port=8600, host="127.0.0.1")
    assert exc.value.exit_code == 0
    cmd = seen["cmd"]
    assert cmd[:4] == [sys.executable, "-m", "apps.dashboard.serve", "run"]
    assert cmd[4].endswith("apps/dashboard/app.py")
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert seen["env"]["SUBLENS_APP_MODEL"] == "smollm2-135m-instruct"  # the embedded default


def test_app_passes_model_and_exit_code(monkeypatch):
    monkeypatch.setattr(
        app_cli.subprocess, "call", lambda cmd, env: 3 if env["SUBLENS_APP_MODEL"] == "organism" else 0
    )
    with pytest.raises(typer.Exit) as exc:
        app_cli.app(model="organism", port=8501, host="127.0.0.1")
    assert exc.value.exit_code == 3


@pytest.mark.parametrize(
    "kwargs,message",
    [({"model": "gpt2"}, "Unknown model 'gpt2'"), ({"model": "organism", "port": 70000}, "--port 70000")],
)
def test_app_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        app_cli.app(**{"model": None, "port": 8501, "host": "127.0.0.1", **kwargs})


def test_cli_help_lists_app():
    out = subprocess.run(
        [sys.executable, "-m", "apps.cli.main", "app", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "--port" in out.stdout and "--model" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "apps.cli.main", "app", "--model", "gpt2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "Unknown model 'gpt2'" in bad.stderr and "Traceback" not in bad.stderr
