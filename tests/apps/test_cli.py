"""The ``sublens`` CLI, run as a user would (a subprocess), including the README's demo."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def sublens(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "apps.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
    )


def test_models_list():
    out = sublens("models", "list")
    assert out.returncode == 0, out.stderr
    for name in ("smollm2-135m-instruct", "qwen2.5-coder-1.5b-instruct", "gemma-3-270m"):
        assert name in out.stdout


def test_unknown_model_exits_2_with_message():
    out = sublens("models", "info", "gpt2")
    assert out.returncode == 2
    assert "Unknown model pack 'gpt2'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.pack
def test_models_info_reads_gguf_header():
    out = sublens("models", "info", "smollm2-135m-instruct")
    assert out.returncode == 0, out.stderr
    assert "LlamaForCausalLM" in out.stdout and "rotary (theta=100000)" in out.stdout
    assert "gqa_groups" in out.stdout


@pytest.mark.pack
def test_demo_end_to_end(tmp_path):
    import json

    import pandas as pd

    out = sublens("demo", "--out", str(tmp_path), "--max-new-tokens", "12")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Paris" in out.stdout
    run_json = next(tmp_path.glob("demo/*/run.json"))
    meta = json.loads(run_json.read_text())
    assert meta["model"] == "smollm2-135m-instruct" and meta["pack_sha256"].startswith("b179c952")
    assert meta["versions"]["torch"].startswith("2.")
    df = pd.read_parquet(run_json.parent / "residual_stream.parquet")
    assert list(df["layer"]) == list(range(30))


@pytest.mark.pack
def test_laundry_eval_writes_tables(tmp_path):
    import pandas as pd

    out = sublens(
        "laundry",
        "eval",
        "smollm2-135m-instruct",
        "--n-max",
        "3",
        "--per-n",
        "4",
        "--ioi-prompts",
        "6",
        "--out",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    run = next(tmp_path.glob("laundry-eval/*"))
    by_n = pd.read_parquet(run / "laundry_by_n.parquet")
    assert by_n["n_items"].tolist() == [2, 3] and (run / "run.json").is_file()
    assert len(pd.read_parquet(run / "ioi_scored.parquet")) == 6


def test_laundry_eval_bad_n_exits_2(tmp_path):
    out = sublens("laundry", "eval", "smollm2-135m-instruct", "--n-min", "1", "--out", str(tmp_path))
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_channels_scan_on_a_local_model(tmp_path):
    import json

    import pandas as pd

    from probes.testing import tiny_handle

    h = tiny_handle(seed=3)
    h.hf.save_pretrained(tmp_path / "tiny")
    h.tokenizer.save_pretrained(tmp_path / "tiny")
    out = sublens(
        "channels", "scan", str(tmp_path / "tiny"), "--n-null", "300", "--out", str(tmp_path / "runs")
    )
    assert out.returncode == 0, out.stderr[-2000:]
    run = next((tmp_path / "runs").glob("channels-scan/*"))
    df = pd.read_parquet(run / "channels.parquet")
    # 1 sender layer x 4 heads x 8 components x 4 receivers x 3 modes
    assert len(df) == 4 * 8 * 4 * 3 and set(df["mode"]) == {"Q", "K", "V"}
    assert (df["sender_layer"] < df["receiver_layer"]).all() and df["z"].notna().all()
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["n_null"] == 300 and config["center_writing"] is False  # how the weights were read
    assert len(pd.read_parquet(run / "head_pairs.parquet")) == 4 * 4 * 3
