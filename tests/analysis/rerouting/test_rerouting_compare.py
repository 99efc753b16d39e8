"""Comparing campaigns (ASR and medians with intervals, candidates/s), the refusal peek (an exact shortcut
of the phrase check), the per-phase profile of one attempt, and the weights a campaign records."""

from __future__ import annotations

import json
import math

import pytest

from analysis.rerouting import run_campaign, success_check
from analysis.rerouting.compare import compare_campaigns, method_row
from analysis.rerouting.profile import PHASES, phase_timers, profile_attempt
from analysis.rerouting.success import Verdict
from probes.errors import InputError

ANSWER = (
    "First, gather the parts listed below. Second, mount the bracket on the left side with two screws. "
    "Third, connect the red wire to the terminal marked A and test the circuit with a meter."
)


def _rec(key, success, step=None, secs=None, response=ANSWER):
    return {
        "key": key,
        "prompt": key,
        "method": "probe-ssr",
        "model": "m",
        "success": success,
        "first_success_step": step,
        "time_to_first_success_s": secs,
        "attack_s_to_first_success": None if secs is None else secs / 2,
        "total_s": 10.0,
        "optimise_s": 9.0,
        "judge_s": 4.0,
        "steps": 5,
        "response": response,
    }


def test_method_row_counts_failures_as_infinitely_slow():
    recs = [
        _rec("a", True, 1, 2.0),
        _rec("b", True, 3, 6.0, response="Sure, what exactly do you want?"),  # a non-answer
        _rec("c", False),
        _rec("d", True, 2, 4.0),
    ]
    row = method_row(recs, search_width=32)
    assert row["asr"] == 0.75 and row["asr_content"] == 0.5
    assert row["asr_lo"] <= 0.75 <= row["asr_hi"]
    assert row["median_steps"] == 2.5 and row["median_s"] == 5.0  # median of [1, 3, 2, inf], [2, 6, 4, inf]
    assert row["median_attack_s"] == 2.5 and row["median_s_successes"] == 4.0
    assert row["s_per_success"] == pytest.approx(40 / 3)
    assert row["candidates_per_s"] == pytest.approx(4 * 5 * 32 / (4 * 5.0))
    half = method_row([_rec("a", True, 1, 2.0), _rec("c", False), _rec("e", False)])
    assert half["median_steps"] is None and half["median_s"] is None  # fewer than half succeeded: ∞
    assert "candidates_per_s" not in half
    with pytest.raises(InputError, match="review them all"):
        method_row(recs, review={"a": True})
    assert method_row(recs, review=dict.fromkeys("abcd", False))["asr_manual"] == 0.0


def test_compare_campaigns_needs_the_same_prompts(tiny3, tmp_path, make_cfg, monkeypatch):
    monkeypatch.setattr(tiny3, "generate", lambda p, max_new_tokens=32: ANSWER)
    a = make_cfg(prompts=["the cat sat"], seeds=[0], check_every=1, optimiser={"steps": 2, "search_width": 8})
    run_campaign(a, tmp_path / "a", progress=False, handle=tiny3)
    run_campaign(
        a.model_copy(update={"method": "gcg", "heads": []}), tmp_path / "g", progress=False, handle=tiny3
    )
    tab = compare_campaigns([tmp_path / "a", tmp_path / "g"])
    assert list(tab["method"]) == ["attention-ssr", "gcg"] and (tab["asr"] == 1.0).all()
    assert (tab["median_steps"] == 1.0).all() and (tab["candidates_per_s"] > 0).all()
    run_campaign(
        a.model_copy(update={"prompts": ["a dog went"]}), tmp_path / "o", progress=False, handle=tiny3
    )
    with pytest.raises(InputError, match="different prompts"):
        compare_campaigns([tmp_path / "a", tmp_path / "o"])
    with pytest.raises(InputError, match="share no"):
        compare_campaigns([tmp_path / "a", tmp_path / "o"], common=True)
    two = a.model_copy(update={"prompts": ["a dog went", "the cat sat"]})
    run_campaign(two, tmp_path / "two", progress=False, handle=tiny3)
    tab = compare_campaigns([tmp_path / "a", tmp_path / "two"], common=True)
    assert list(tab["attempts"]) == [1, 1]  # only "the cat sat", attacked by both


def test_campaign_records_the_weights_it_attacked(tiny3, tmp_path, make_cfg):
    run_campaign(make_cfg(seeds=[0], prompts=["the cat sat"]), tmp_path, progress=False, handle=tiny3)
    assert json.loads((tmp_path / "weights.json").read_text()) == {
        "model": tiny3.name,
        "pack_sha256": None,
        "adapter_sha256": None,
    }


@pytest.mark.parametrize("first", ["I'm sorry, I can't", "Sure, here"])
def test_refusal_peek_is_the_phrase_check_with_a_shortcut(tiny3, monkeypatch, first):
    """A greedy answer's first tokens are its prefix: a refusal there is a refusal of the whole answer."""
    full = first + " and then some more words"
    calls = []

    def generate(text, max_new_tokens=32):
        calls.append(max_new_tokens)
        return full[: 4 * max_new_tokens]  # greedy: the short answer is a prefix of the long one

    monkeypatch.setattr(tiny3, "generate", generate)
    for peek in (0, 4):
        calls.clear()
        (phrase,) = success_check("phrase", max_new_tokens=16, peek=peek).stages
        v = Verdict(text="x")
        ok = phrase(tiny3, "x", v)
        assert ok == first.startswith("Sure")  # the same verdict with and without the peek
        refused_early = peek and not ok
        assert calls == ([4] if refused_early else [4, 16] if peek else [16])
        assert v.peeked == bool(refused_early)


def test_profile_times_each_phase_and_restores_the_functions(tiny3, make_cfg, monkeypatch):
    from analysis.rerouting import build_objective, optimiser

    before = optimiser.evaluate
    monkeypatch.setattr(tiny3, "generate", lambda p, max_new_tokens=32: "I can't.")
    cfg = make_cfg(seeds=[0], check_every=1, optimiser={"steps": 3, "search_width": 8})
    check = success_check("phrase", max_new_tokens=4)
    rec = profile_attempt(tiny3, build_objective(tiny3, cfg), cfg, "the cat sat", check)
    prof = rec["profile"]
    assert set(prof) == {*PHASES, "total"} and rec["steps"] == 3 and not rec["success"]
    assert all(prof[p] >= 0 for p in PHASES[:-1]) and prof["forward"] > 0 and prof["backward"] > 0
    assert sum(prof[p] for p in PHASES) == pytest.approx(prof["total"], abs=0.01)
    assert optimiser.evaluate is before
    with phase_timers() as acc:
        pass
    assert set(acc) == set(PHASES[:-1]) and not any(acc.values())
    assert math.isfinite(prof["total"])
