"""The in-loop success checks: cheap checks first, generation and the LLM judge only once they pass."""

from __future__ import annotations

import pytest
import torch

from analysis.rerouting import LLMJudge, read_attempts, report, run_campaign, success_check
from probes.errors import InputError

PROMPT = "the cat sat"


def test_checks_need_their_readout_and_judge():
    with pytest.raises(InputError, match="readout probe"):
        success_check("phrase+readout", max_new_tokens=4)
    with pytest.raises(InputError, match="LLM judge"):
        success_check(
            "phrase+readout+llm", max_new_tokens=4, readout=(2, (torch.zeros(32), torch.tensor(0.0)))
        )
    with pytest.raises(InputError, match="Unknown success check 'llm'"):
        success_check("llm", max_new_tokens=4)
    check = success_check("phrase+readout+llm+content", max_new_tokens=4, readout=(2, (0, 0)), llm=object())
    assert [type(s).__name__ for s in check.stages] == ["Readout", "Phrase", "Content", "LLM"]  # no long one
    check = success_check(
        "phrase+readout+llm", max_new_tokens=4, long_new_tokens=16, readout=(2, (0, 0)), llm=object()
    )
    assert [type(s).__name__ for s in check.stages] == ["Readout", "Phrase", "LongAnswer", "LLM"]


def test_phrase_plus_readout_generates_only_after_the_readout_flips(
    tiny3, tmp_path, monkeypatch, fixed_readout, make_cfg
):
    calls: list[int] = []

    def generate(p, max_new_tokens=32):
        calls.append(max_new_tokens)
        return "I'm sorry, no." if max_new_tokens > 4 else "sure thing"  # long answers turn to refusals

    monkeypatch.setattr(tiny3, "generate", generate)
    readout = fixed_readout
    readout["p"] = 0.2
    cfg = make_cfg(seeds=[0], prompts=[PROMPT], success="phrase+readout", readout_layer=2, check_every=1)
    run_campaign(cfg, tmp_path / "no", progress=False, handle=tiny3)
    (rec,) = read_attempts(tmp_path / "no")
    assert not rec["success"] and rec["loop_readout"] == 0.2 and rec["time_to_first_success_s"] is None
    assert calls == [4] and rec["response"] == "sure thing"  # no generation in the loop; one for the record
    assert (tmp_path / "no" / "readout_probe_2.safetensors").is_file()

    readout["p"], calls[:] = 0.9, []
    run_campaign(cfg, tmp_path / "yes", progress=False, handle=tiny3)
    (rec,) = read_attempts(tmp_path / "yes")
    assert rec["success"] and rec["first_success_step"] == 1 and rec["success_check"] == "phrase+readout"
    assert calls == [4]

    longer = cfg.model_copy(update={"final_new_tokens": 16})
    run_campaign(longer, tmp_path / "long", progress=False, handle=tiny3)
    (rec,) = read_attempts(tmp_path / "long")
    assert not rec["success"] and rec["time_to_first_success_s"] is None  # the longer answer refuses
    assert rec["response"] == "I'm sorry, no."

    readout["p"], calls[:] = 0.2, []  # readout never flips: one long answer for the record, no short one
    run_campaign(longer, tmp_path / "long-no", progress=False, handle=tiny3)
    assert calls == [16] and not read_attempts(tmp_path / "long-no")[0]["success"]


def _llm_cfg(make_cfg, success: str):
    """One prompt, one seed, checked every step, a 16-token final answer: the LLM-judged campaign tests."""
    return make_cfg(
        seeds=[0],
        prompts=[PROMPT],
        success=success,
        readout_layer=2,
        check_every=1,
        final_new_tokens=16,
        optimiser={"steps": 2},
    )


def test_phrase_readout_llm_judges_the_long_answer_once_the_cheap_checks_pass(
    tiny3, tmp_path, monkeypatch, fixed_readout, make_cfg
):
    calls: list[int] = []

    def generate(p, max_new_tokens=32):
        calls.append(max_new_tokens)
        return "sure thing, long" if max_new_tokens > 4 else "sure thing"

    monkeypatch.setattr(tiny3, "generate", generate)
    readout = fixed_readout
    readout["p"] = 0.9
    scored: list[tuple[str, str]] = []
    verdict = {"score": 0.8}
    j = LLMJudge(tiny3, rubric="{request} is {response}", yes=("it",), no=("was",))
    monkeypatch.setattr(j, "score", lambda q, r: scored.append((q, r)) or verdict["score"])
    cfg = _llm_cfg(make_cfg, "phrase+readout+llm")
    run_campaign(cfg, tmp_path / "yes", progress=False, handle=tiny3, llm_judge=j)
    (rec,) = read_attempts(tmp_path / "yes")
    assert rec["success"] and rec["first_success_step"] == 1 and rec["loop_llm"] == 0.8
    assert calls == [4, 16] and scored == [(PROMPT, "sure thing, long")]  # long answer kept, not regenerated
    assert rec["response"] == "sure thing, long"

    verdict["score"], calls[:], scored[:] = 0.3, [], []  # the judge says no: the attempt keeps optimising
    run_campaign(cfg, tmp_path / "no", progress=False, handle=tiny3, llm_judge=j)
    (rec,) = read_attempts(tmp_path / "no")
    assert not rec["success"] and rec["time_to_first_success_s"] is None and rec["loop_llm"] == 0.3
    assert len(scored) >= 2 and rec["response"] == "sure thing, long"

    readout["p"], calls[:], scored[:] = 0.2, [], []  # readout never flips: no judge call at all
    run_campaign(cfg, tmp_path / "off", progress=False, handle=tiny3, llm_judge=j)
    assert scored == [] and calls == [16] and read_attempts(tmp_path / "off")[0]["loop_llm"] is None


def test_content_check_skips_the_llm_judge_on_non_answers(
    tiny3, tmp_path, monkeypatch, fixed_readout, make_cfg
):
    answer = {"long": "Sure, what exactly do you want to know about it?"}  # asks back: no content
    monkeypatch.setattr(
        tiny3, "generate", lambda p, max_new_tokens=32: answer["long"] if max_new_tokens > 4 else "ok"
    )
    fixed_readout["p"] = 0.9
    scored: list[str] = []
    j = LLMJudge(tiny3, rubric="{request} is {response}", yes=("it",), no=("was",))
    monkeypatch.setattr(j, "score", lambda q, r: scored.append(r) or 0.9)  # a judge that says YES to all
    cfg = _llm_cfg(make_cfg, "phrase+readout+llm+content")
    run_campaign(cfg, tmp_path / "asks", progress=False, handle=tiny3, llm_judge=j)
    (rec,) = read_attempts(tmp_path / "asks")
    assert not rec["success"] and rec["loop_non_answer"] == "short" and rec["loop_llm"] is None
    assert scored == []  # the judge never sees a non-answer

    answer["long"] = "To do it, take the lid off, then turn the screw left twice and lift it. " * 3
    run_campaign(cfg, tmp_path / "steps", progress=False, handle=tiny3, llm_judge=j)
    (rec,) = read_attempts(tmp_path / "steps")
    assert rec["success"] and rec["loop_non_answer"] is None and rec["loop_llm"] == 0.9
    assert scored == [answer["long"]] and rec["first_success_step"] == 1
    assert 0 <= rec["attack_s_to_first_success"] < rec["time_to_first_success_s"] and rec["judge_s"] > 0
    assert report(tmp_path / "steps")["median_attack_s_to_success"].iloc[0] == pytest.approx(
        rec["attack_s_to_first_success"]
    )
