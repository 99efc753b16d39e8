"""``sublens compare layers|nets``, invoked on the typer sub-app directly (CliRunner)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from apps.cli.compare import app, read_prompts
from probes.errors import InputError
from probes.testing import tiny_handle

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_models(monkeypatch):
    """``load_model("tiny0"|"tiny1")`` returns tiny random models (no pack needed)."""
    handles = {"tiny0": tiny_handle(seed=0), "tiny1": tiny_handle(seed=1)}

    def fake_load(name, backend="tl", **kw):
        return handles[name]

    monkeypatch.setattr("probes.loading.load_model", fake_load)
    return handles


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.txt"
    lines = ["# tiny vocabulary", "the cat sat on the mat", "", "a dog went to the store", "he bought a hat"]
    path.write_text("\n".join([*lines, "then they went", ""]))
    return path


def test_layers_writes_a_run(tmp_path, tiny_models, prompts_file):
    out = tmp_path / "runs"
    args = [
        "layers",
        "tiny0",
        "tiny1",
        "--prompts-file",
        str(prompts_file),
        "--pooling",
        "mean",
        "--out",
        str(out),
    ]
    res = runner.invoke(app, [*args, "--metrics", "linear_cka,debiased_cka"])
    assert res.exit_code == 0, res.output
    run = next(out.glob("compare-layers/*"))
    grid = pd.read_parquet(run / "grid.parquet")
    assert len(grid) == 8 and set(grid.metric) == {"linear_cka", "debiased_cka"}
    assert pd.read_parquet(run / "prompts.parquet").prompt.tolist()[0] == "the cat sat on the mat"
    for name in (
        "best_matches.parquet",
        "grid.html",
        "plotly.min.js",
        "pooled_a.safetensors",
        "pooled_b.safetensors",
    ):
        assert (run / name).is_file(), name
    meta = json.loads((run / "run.json").read_text())
    assert meta["command"] == "compare layers" and meta["model_b"] == "tiny-llama-s1"
    assert meta["config"]["pooling"] == "mean" and meta["config"]["n_prompts"] == 4
    assert "best layer of tiny-llama-s1" in res.output


def test_layers_with_itself_and_n_prompts(tmp_path, tiny_models, prompts_file):
    prompts_file.write_text(
        prompts_file.read_text() + "the mat was red\n"
    )  # 5 prompts, 4 used (CKA's minimum)
    res = runner.invoke(
        app,
        [
            "layers",
            "tiny0",
            "tiny0",
            "--prompts-file",
            str(prompts_file),
            "--n-prompts",
            "4",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    run = next(tmp_path.glob("compare-layers/*"))
    grid = pd.read_parquet(run / "grid.parquet")
    assert (grid[grid.layer_a == grid.layer_b].value.round(9) == 1.0).all()
    assert not (run / "pooled_b.safetensors").exists()


def test_layers_bad_input(tmp_path, tiny_models, prompts_file):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    cases = [
        (["--prompts-file", str(empty)], "holds no prompts"),
        (["--prompts-file", str(tmp_path / "missing.txt")], "does not exist"),
        (["--prompts-file", str(prompts_file), "--pooling", "max"], "--pooling"),
        (["--prompts-file", str(prompts_file), "--n-prompts", "2"], "--n-prompts"),
    ]
    for extra, msg in cases:
        res = runner.invoke(app, ["layers", "tiny0", "tiny1", *extra, "--out", str(tmp_path)])
        assert isinstance(res.exception, InputError) and msg in str(res.exception), (extra, res.output)
    with pytest.raises(InputError, match="no prompts"):
        read_prompts(empty)


def test_nets_writes_a_run(tmp_path):
    args = ["nets", "--seeds", "2", "--epochs", "3", "--layers", "conv1,fc1", "--alphas", "0.03,0.3"]
    res = runner.invoke(app, [*args, "--n-random", "5", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    run = next(tmp_path.glob("compare-nets/*"))
    for name in ("accuracy", "matching", "sparse", "clusters", "cluster_summary", "cka", "layer_id"):
        assert not pd.read_parquet(run / f"{name}.parquet").empty, name
    for name in ("matching.html", "sparse.html", "cka.html"):
        assert (run / name).is_file()
    meta = json.loads((run / "run.json").read_text())
    assert meta["config"]["seeds"] == [0, 1] and meta["config"]["layers"] == ["conv1", "fc1"]
    assert set(meta["test_accuracy"]) == {"0", "1"} and 0 <= meta["layer_identification_accuracy"] <= 1
    assert "mean matched correlation" in res.output and "layer identification" in res.output


def test_nets_bad_input(tmp_path):
    cases = [
        (["--seeds", "1"], "--seeds"),
        (["--layers", "conv1,conv3"], "--layers 'conv3' is not one of"),
        (["--alphas", "0.1,abc"], "--alphas"),
        (["--alphas", "-1"], "must all be > 0"),
        (["--conv-units", "pixels"], "--conv-units 'pixels'"),
    ]
    for extra, msg in cases:
        res = runner.invoke(app, ["nets", *extra, "--out", str(tmp_path)])
        assert isinstance(res.exception, InputError) and msg in str(res.exception), (extra, res.output)


@pytest.mark.pack
def test_layers_on_the_packaged_model(tmp_path, smollm2, monkeypatch):
    # reuse the session's SmolLM2 (the pack/loader path is tested in tests/probes)
    monkeypatch.setattr("probes.loading.load_model", lambda name, backend="tl", **kw: smollm2)
    args = [
        "layers",
        "smollm2-135m-instruct",
        "smollm2-135m-instruct",
        "--n-prompts",
        "5",
        "--pooling",
        "mean",
    ]
    res = runner.invoke(app, [*args, "--backend", "nnsight", "--threads", "1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    run = next(tmp_path.glob("compare-layers/*"))
    grid = pd.read_parquet(run / "grid.parquet")
    assert len(grid) == 900 and (grid[grid.layer_a == grid.layer_b].value.round(9) == 1.0).all()
    assert json.loads((run / "run.json").read_text())["pack_sha256"].startswith("b179c952")
