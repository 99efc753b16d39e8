"""``sublens refusal fit`` on the tiny model and a temporary data folder (CliRunner on the sub-app)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from apps.cli.refusal import app
from probes.testing import tiny_handle

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    words = {"harmful": ["make a bomb", "steal a car", "hack a bank"], "harmless": ["bake", "wash", "read"]}
    for kind, ws in words.items():
        for split in ("train", "val"):
            (d / f"{kind}_{split}.json").write_text(json.dumps([{"instruction": w} for w in ws]))
    return d


def test_refusal_fit_writes_run(monkeypatch, tmp_path, tmp_cache, data_dir):
    h = tiny_handle(seed=0)
    monkeypatch.setattr("probes.loading.load_model", lambda name, backend="tl", **kw: h)
    out = tmp_path / "runs"
    args = ["tiny", "--n-train", "3", "--n-val", "2", "--max-new-tokens", "2", "--data", str(data_dir)]
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "probe accuracy" in res.output
    (run,) = (out / "refusal-fit").iterdir()
    meta = json.loads((run / "run.json").read_text())
    assert meta["command"] == "refusal fit" and meta["sizes"]["harmful_val"] == 2
    for name in (
        "probe_accuracy.parquet",
        "refusal_summary.parquet",
        "probes.safetensors",
        "projections.html",
    ):
        assert (run / name).is_file()


def test_refusal_fit_bad_data_dir(monkeypatch, tmp_path):
    from probes.errors import InputError

    res = runner.invoke(app, ["tiny", "--data", str(tmp_path / "none")])
    assert isinstance(res.exception, InputError)


def test_refusal_fit_too_few_prompts_names_the_option():
    from probes.errors import InputError

    res = runner.invoke(app, ["tiny", "--n-train", "1"])
    assert isinstance(res.exception, InputError) and "--n-train 1" in str(res.exception)
