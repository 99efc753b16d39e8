"""``sublens refusal fit`` / ``harden`` on the tiny model and a temporary data folder (CliRunner on the
sub-app)."""

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
    res = runner.invoke(app, ["fit", *args, "--out", str(out)])
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

    res = runner.invoke(app, ["fit", "tiny", "--data", str(tmp_path / "none")])
    assert isinstance(res.exception, InputError)


def test_refusal_fit_too_few_prompts_names_the_option():
    from probes.errors import InputError

    res = runner.invoke(app, ["fit", "tiny", "--n-train", "1"])
    assert isinstance(res.exception, InputError) and "--n-train 1" in str(res.exception)


def test_refusal_harden_writes_adapter_and_numbers(monkeypatch, tmp_path, tmp_cache):
    from probes.adapters import adapter_file_hashes
    from probes.datasets import shared_refusal_split

    monkeypatch.setattr("probes.loading.load_model", lambda name, backend="hf", **kw: tiny_handle(seed=0))
    out = tmp_path / "runs"
    sizes = ["--n-harmful", "4", "--n-harmless", "3", "--n-wrapped", "2", "--n-suffixed", "2"]
    res = runner.invoke(app, ["harden", "--model", "tiny", *sizes, "--eval-harmless", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    (run,) = (out / "refusal-harden").iterdir()
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "ok" and meta["command"] == "refusal harden"
    result = json.loads((run / "harden.json").read_text())
    assert result["adapter_files"] == adapter_file_hashes(run / "adapter")
    assert result["n_examples"] == 4 + 2 + 2 + 3 + 2
    n_val = len(shared_refusal_split("harmful_val"))  # 39 with ../shared/data, 10 from the demo set
    assert result["hardened"]["n"] == {"harmful_val": n_val, "harmless_val": 3}
    assert 0 <= result["hardened"]["refused_harmful_val"] <= 1 and result["base"]["heldout_lm_loss"] > 0


@pytest.mark.parametrize(
    "flags, named",
    [(["--rank", "0"], "--rank 0"), (["--lr", "2"], "--lr 2"), (["--n-wrapped", "-1"], "--n-wrapped -1")],
)
def test_refusal_harden_bad_flags_are_named_before_any_model_loads(monkeypatch, flags, named):
    from probes.errors import InputError

    monkeypatch.setattr("probes.loading.load_model", lambda *a, **k: pytest.fail("loaded a model"))
    res = runner.invoke(app, ["harden", *flags])
    assert isinstance(res.exception, InputError) and named in str(res.exception)
