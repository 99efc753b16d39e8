"""Campaign configs, resumable runs, the baseline refusal filter, stricter judging and reports."""

from __future__ import annotations

import json

import pytest
import torch

from analysis.rerouting import (
    ATTEMPTS,
    JUDGED,
    LLMJudge,
    OptimiserConfig,
    baseline_summary,
    load_config,
    parse_config,
    read_attempts,
    report,
    run_campaign,
    stored_config,
    strict_judge,
)
from probes.errors import InputError

PROMPT = "the cat sat"


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"method": "pgd"}, "Unknown method 'pgd'"),
        ({"optimiser": {"n_tokens": 0}}, "n_tokens"),
        ({"seeds": []}, "seeds"),
        ({"method": "probe-ssr", "layers": []}, "needs target layers"),
        ({"stepz": 3}, "stepz"),
        ({"optimiser": {"stepz": 3}}, "optimiser.*stepz"),
        ({"method": "probe-ssr", "layers": ["ten"]}, "layers.0"),  # not a layer index
        ({"method": "probe-ssr", "layers": [1, 1]}, "duplicates"),
        ({"optimiser": {"steps": 0}}, "steps must be >= 1"),
        ({"optimiser": {"seed": 3}}, "seed is set per attempt"),
        ({"success": "llm"}, "Unknown success check 'llm'"),
        ({"final_new_tokens": 0}, "final_new_tokens"),
        ({"judge_dtype": "int8"}, "judge_dtype"),
        ({"steps": 3}, r"steps belongs in the \[optimiser\] table"),
    ],
)
def test_bad_configs(make_cfg, bad, match):
    with pytest.raises(InputError, match=match):
        make_cfg(**bad)


def test_config_is_frozen_and_nests_the_optimiser(make_cfg, tmp_path):
    cfg = make_cfg(optimiser={"steps": 7})
    assert cfg.optimiser == OptimiserConfig(steps=7, search_width=8, topk=4, n_tokens=2)
    with pytest.raises(Exception, match="frozen"):
        cfg.model = "other"
    assert parse_config(cfg.to_json()) == cfg
    (tmp_path / "p.json").write_text('[{"instruction": "the cat sat"}]')
    (tmp_path / "c.toml").write_text(
        'method = "gcg"\nprompts_file = "p.json"\n\n[optimiser]\nn_tokens = 6\nsteps = 3\n'
    )
    loaded = load_config(tmp_path / "c.toml")
    assert loaded.prompts_file == str(tmp_path / "p.json") and loaded.optimiser.n_tokens == 6
    assert loaded.prompt_list() == ["the cat sat"]


def test_bad_configs_at_run(tiny3, tmp_path, make_cfg):
    with pytest.raises(InputError, match="prompt set is empty"):
        run_campaign(make_cfg(prompts=["  "]), tmp_path / "a", progress=False, handle=tiny3)
    with pytest.raises(InputError, match="layer 5 is out of range"):
        run_campaign(
            make_cfg(method="steering-ssr", layers=[5]), tmp_path / "b", progress=False, handle=tiny3
        )
    with pytest.raises(InputError, match="layer -4 is out of range"):
        run_campaign(make_cfg(method="probe-ssr", layers=[-4]), tmp_path / "c", progress=False, handle=tiny3)
    with pytest.raises(InputError, match="head 7 is out of range"):
        run_campaign(make_cfg(heads=[[1, 7]]), tmp_path / "d", progress=False, handle=tiny3)


def test_campaign_resume_and_report(tiny3, tmp_path, make_cfg):
    cfg = make_cfg()
    run_campaign(cfg, tmp_path, progress=False, handle=tiny3)
    rows = read_attempts(tmp_path)
    assert len(rows) == 4 and len({r["key"] for r in rows}) == 4
    with open(tmp_path / ATTEMPTS, "a") as f:  # a torn line from a kill mid-write
        f.write('{"key": "x", "pro')
    run_campaign(cfg, tmp_path, progress=False, handle=tiny3)
    lines = (tmp_path / ATTEMPTS).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x) for x in lines)
    rep = report(tmp_path)
    assert rep.loc[0, "attempts"] == 4 and 0 <= rep.loc[0, "asr"] <= 1
    with pytest.raises(InputError, match="different config"):
        run_campaign(make_cfg(optimiser={"steps": 3}), tmp_path, progress=False, handle=tiny3)
    with pytest.raises(InputError, match="No attempts"):
        report(tmp_path / "empty")


def test_campaign_json_before_the_optimiser_table_still_reads(tmp_path, make_cfg):
    cfg = make_cfg()
    old = {k: v for k, v in cfg.to_json().items() if k != "optimiser"}
    old.update({k: v for k, v in cfg.optimiser.to_json().items() if k not in ("seed", "replace_coefficient")})
    (tmp_path / "campaign.json").write_text(json.dumps(old))  # the flat layout of older runs
    assert stored_config(tmp_path) == cfg


def test_probe_campaign_with_probe_file(tiny3, tmp_path, make_cfg):
    from safetensors.torch import save_file

    path = tmp_path / "p.safetensors"  # a rerouting probe file as written before: P(harmless), no metadata
    save_file({"layer.1.w": torch.randn(32), "layer.1.b": torch.tensor(0.0)}, str(path))
    cfg = make_cfg(method="probe-ssr", layers=[1], probes_file=str(path), seeds=[0], prompts=[PROMPT])
    run_campaign(cfg, tmp_path / "run", progress=False, handle=tiny3)
    (rec,) = read_attempts(tmp_path / "run")
    assert rec["method"] == "probe-ssr" and len(rec["suffix_ids"]) == 2 and "response" in rec
    with pytest.raises(InputError, match="No probe for layers"):
        run_campaign(
            make_cfg(method="probe-ssr", layers=[0], probes_file=str(path)),
            tmp_path / "r2",
            progress=False,
            handle=tiny3,
        )


def test_fitted_probes_and_directions_are_cached(tiny3, tmp_path, make_cfg, tiny_fit_sets):
    from analysis.rerouting import build_objective
    from probes.linear import ProbeFit, load_directions

    cfg = make_cfg(method="probe-ssr", layers=[0, 2])
    obj = build_objective(tiny3, cfg, tmp_path)
    fit = ProbeFit.load(tmp_path / "probes.safetensors")
    assert fit.layers == (0, 2) and fit.classes == ("harmless", "harmful")
    torch.testing.assert_close(obj.probes[1][0], fit.probe(2, "harmless")[0])  # P(harmless) orientation
    again = build_objective(tiny3, cfg, tmp_path)  # read back from the run directory
    torch.testing.assert_close(again.probes[0][1], obj.probes[0][1])

    steer = build_objective(tiny3, make_cfg(method="steering-ssr", layers=[1]), tmp_path)
    r = load_directions(tmp_path / "directions.safetensors")[1]
    torch.testing.assert_close(steer.directions[0], r)
    torch.testing.assert_close(r.norm(), torch.tensor(1.0))


def test_only_refused_filters_and_records_baseline(tiny3, tmp_path, monkeypatch, make_cfg):
    refusing = {"a dog went"}
    monkeypatch.setattr(
        tiny3, "generate", lambda p, max_new_tokens=32: "I'm sorry, no." if p in refusing else "sure thing"
    )
    cfg = make_cfg(prompts=[PROMPT, "a dog went"], seeds=[0], only_refused=True)
    run_campaign(cfg, tmp_path, progress=False, handle=tiny3)
    assert [r["prompt"] for r in read_attempts(tmp_path)] == ["a dog went"]
    assert baseline_summary(tmp_path) == {"n": 2, "refused": 1, "refusal_rate": 0.5}
    rep = report(tmp_path)
    assert rep.loc[0, "baseline_refusal_rate"] == 0.5 and rep.loc[0, "baseline_n"] == 2
    first = parse_config(
        {**cfg.model_dump(), "prompts": ["a dog went", "the cat sat", "Tom is it"], "n_prompts": 1}
    )
    run_campaign(first, tmp_path / "n1", progress=False, handle=tiny3)  # stops at the first refusal
    assert baseline_summary(tmp_path / "n1") == {"n": 1, "refused": 1, "refusal_rate": 1.0}
    refusing.clear()
    with pytest.raises(InputError, match="refuses none"):
        run_campaign(cfg, tmp_path / "b", progress=False, handle=tiny3)


def test_strict_judge_and_report_columns(tiny3, tmp_path, make_cfg, tiny_fit_sets):
    cfg = make_cfg(seeds=[0])
    run_campaign(cfg, tmp_path, progress=False, handle=tiny3)
    rows = read_attempts(tmp_path)
    judged = strict_judge(tmp_path, tiny3, readout_layer=2)
    assert len(judged) == len(rows) and judged["readout"].between(0, 1).all() and judged["llm"].isna().all()
    assert (tmp_path / "readout_probe_2.safetensors").is_file()
    strict_judge(tmp_path, tiny3, readout_layer=2)  # resumes: nothing new appended
    assert len((tmp_path / JUDGED).read_text().splitlines()) == len(rows)
    rep = report(tmp_path)
    ok = torch.tensor([r["success"] for r in rows])
    want = float((ok & torch.tensor((judged["readout"] > 0.5).tolist())).float().mean())
    assert rep.loc[0, "asr_readout"] == pytest.approx(want) and rep.loc[0, "asr_llm"] is None

    j = LLMJudge(tiny3, rubric="{request} is {response}", yes=("it",), no=("was",))
    judged = strict_judge(tmp_path, tiny3, judge_model=j, readout_layer=2)
    assert (judged["judge_model"] == tiny3.name).all() and judged["llm"].between(0, 1).all()
    scores = {r["key"]: (j.score(r["prompt"], r["response"]) if r["success"] else 0.0) for r in rows}
    assert judged.set_index("key")["llm"].to_dict() == pytest.approx(scores)
    llm_ok = [r["success"] and scores[r["key"]] > 0.5 for r in rows]
    assert report(tmp_path).loc[0, "asr_llm"] == pytest.approx(sum(llm_ok) / len(rows))


def test_report_asr_content_counts_successes_with_content(tiny3, tmp_path, monkeypatch, make_cfg):
    answers = iter(["Sure, what exactly do you want?", "Step one: take the lid off. " * 6])
    monkeypatch.setattr(tiny3, "generate", lambda p, max_new_tokens=32: next(answers))
    cfg = make_cfg(prompts=[PROMPT, "a dog went"], seeds=[0], check_every=0, optimiser={"steps": 1})
    run_campaign(cfg, tmp_path, progress=False, handle=tiny3)
    rep = report(tmp_path)
    assert rep.loc[0, "asr"] == 1.0 and rep.loc[0, "asr_content"] == 0.5
