"""``benchmarks/attack.py --paper``: the paper-regime configs validate as they are, and run 1 step on CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from analysis.rerouting import METHODS, read_attempts

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "attack.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_attack", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paper_configs_are_the_paper_regime(bench):
    cfgs = bench.paper_configs()
    assert sorted(c.method for c in cfgs) == sorted(METHODS)
    for c in cfgs:
        assert (c.model, c.device) == ("qwen2.5-coder-1.5b-instruct", "cuda")
        assert (c.optimiser.search_width, c.optimiser.topk, c.optimiser.steps) == (512, 256, 60)
    same = {(c.optimiser.n_tokens, c.n_prompts, c.success, c.prompts_file) for c in cfgs}
    assert len(same) == 1  # same suffix length, prompts and success check for every method


def test_paper_smoke_runs_one_step_each_on_the_tiny_model(bench, tmp_path, one_thread):
    root = bench.main(["--paper", "--smoke", "--run-dir", str(tmp_path / "paper")])
    tab = pd.read_parquet(root / "compare.parquet")
    assert sorted(tab["method"]) == sorted(METHODS)
    for m in METHODS:
        (rec,) = read_attempts(root / m)
        assert rec["model"] == "tiny-3" and rec["steps"] <= 1


def test_paper_without_a_gpu_says_so(bench, tmp_path, monkeypatch):
    import torch

    from probes.errors import InputError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="--smoke"):
        bench.main(["--paper", "--run-dir", str(tmp_path / "p")])


def _tiny_toml(path, method, **extra):
    target = {"gcg": "", "attention-ssr": "heads = [[1, 0]]\n"}.get(method, "layers = [1]\n")
    lines = [
        f'model = "tiny-3"\nmethod = "{method}"\n{target}prompts = ["the cat sat"]\nmax_new_tokens = 4\n'
    ]
    lines += [f"{k} = {v}\n" for k, v in extra.items()]
    lines.append("[optimiser]\nn_tokens = 2\nsteps = 2\nsearch_width = 8\ntopk = 4\n")
    path.write_text("".join(lines))
    return path


def test_profile_before_and_after_the_cuts(bench, tmp_path, one_thread):
    import json

    cfg = _tiny_toml(tmp_path / "a.toml", "attention-ssr", check_every=2, refusal_peek=2)
    out = bench.main(["--profile", str(cfg), "--profile-steps", "3", "--out", str(tmp_path / "runs")])
    rows = json.loads((out / "profile.json").read_text())
    assert [(r["variant"], r["check_every"], r["refusal_peek"], r["cache_prefix"]) for r in rows] == [
        ("before", 1, 0, False),
        ("after", 2, 2, True),
    ]
    assert all(r["steps"] == 3 and r["forward"] > 0 for r in rows)  # the full budget, no stop on success
    assert json.loads((out / "run.json").read_text())["status"] == "ok"


def test_compare_mode_writes_the_table(bench, tmp_path, one_thread):
    from analysis.rerouting import load_config, run_campaign

    dirs = []
    for m in ("attention-ssr", "gcg"):
        cfg = load_config(_tiny_toml(tmp_path / f"{m}.toml", m, fit_prompts=2))
        dirs.append(run_campaign(cfg, tmp_path / m, progress=False))
    out = bench.main(["--compare", *map(str, dirs), "--out", str(tmp_path / "runs")])
    tab = pd.read_parquet(out / "compare.parquet")
    assert list(tab["method"]) == ["attention-ssr", "gcg"] and list(tab["attempts"]) == [1, 1]
