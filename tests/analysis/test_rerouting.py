"""SSR / GCG optimiser, losses and campaigns: exact mechanics on the tiny model, one SmolLM2 check."""

from __future__ import annotations

import json
import re

import pytest
import torch

from analysis.rerouting import campaign as C
from analysis.rerouting.judge import is_refusal, judge
from analysis.rerouting.losses import (
    AttentionObjective,
    ProbeObjective,
    SteeringObjective,
    TargetObjective,
    attention_ssr_loss,
    gcg_target_loss,
    probe_readout,
    steering_ssr_loss,
)
from analysis.rerouting.optimiser import (
    OptimiserConfig,
    allowed_tokens,
    filter_candidates,
    optimise,
    prompt_slots,
    retokenises,
    run_forward,
    sample_candidates,
    special_ids,
    token_gradient,
)
from probes.errors import InputError
from probes.testing import tiny_handle

PROMPT = "the cat sat"


@pytest.fixture(scope="module")
def tiny3():
    torch.set_num_threads(1)
    return tiny_handle(seed=0, n_layers=3)


def _embeds(h, ids):
    return h.hf.get_input_embeddings()(ids)


def test_slots_place_suffix_after_instruction(tiny3):
    s = prompt_slots(tiny3, PROMPT)
    ids = s.assemble(torch.tensor([[10, 11]]))
    want, _ = tiny3.tokenize([PROMPT + " " + tiny3.tokenizer.decode([10, 11])])
    assert ids.tolist() == want.tolist()
    assert s.suffix_slice(2) == slice(len(s.prefix), len(s.prefix) + 2)


@pytest.mark.parametrize("layer", [0, 1])
def test_truncated_forward_matches_full(tiny3, layer):
    s = prompt_slots(tiny3, PROMPT)
    ids = s.assemble(torch.randint(6, 30, (3, 4)))
    with torch.no_grad():
        fw = run_forward(tiny3, _embeds(tiny3, ids), [layer])
        full = tiny3.hf(ids, output_hidden_states=True).hidden_states[layer + 1]
    assert fw.logits is None and max(fw.resid) == layer
    torch.testing.assert_close(fw.resid[layer], full, atol=1e-4, rtol=0)


def test_attention_patterns_match_eager_and_restore_impl(tiny3):
    s = prompt_slots(tiny3, PROMPT)
    ids = s.assemble(torch.randint(6, 30, (2, 3)))
    before = tiny3.hf.config._attn_implementation
    with torch.no_grad():
        fw = run_forward(tiny3, _embeds(tiny3, ids), attn_layers=[1])
    assert tiny3.hf.config._attn_implementation == before
    pat = fw.attn[1]
    assert pat.shape == (2, 4, ids.shape[1], ids.shape[1])
    torch.testing.assert_close(pat.sum(-1), torch.ones(2, 4, ids.shape[1]), atol=1e-5, rtol=0)
    assert torch.all(pat.triu(1) == 0)


def test_candidate_sampling_respects_filters(tiny3):
    tok = tiny3.tokenizer
    vocab = tiny3.hf.get_input_embeddings().weight.shape[0]
    allowed = allowed_tokens(tok, vocab, ascii_only=True)
    assert not any(allowed[i] for i in special_ids(tok))
    ids = torch.tensor([10, 11, 12, 13])
    grad = torch.randn(4, vocab)
    grad[:, list(special_ids(tok))] = -1e6  # specials would win the top-k without the filter
    g = torch.Generator().manual_seed(0)
    cand = sample_candidates(ids, grad, allowed, width=50, topk=5, n_replace=2, generator=g)
    assert cand.shape == (50, 4)
    assert allowed[cand].all()
    assert ((cand != ids).sum(1) <= 2).all()
    kept = filter_candidates(tok, cand, seen={tuple(ids.tolist())})
    assert len({tuple(r) for r in kept.tolist()}) == kept.shape[0]
    assert all(retokenises(tok, r) for r in kept.tolist())


def test_retokenisation_filter_drops_unstable():
    class Tok:  # "ab" decodes to text that re-encodes as one token
        def decode(self, ids):
            return "".join({1: "a", 2: "b", 3: "ab"}[i] for i in ids)

        def encode(self, text, add_special_tokens=False):
            return [{"a": 1, "b": 2, "ab": 3}[c] for c in re.findall("ab|a|b", text)]

    assert not retokenises(Tok(), [1, 2]) and retokenises(Tok(), [3])
    out = filter_candidates(Tok(), torch.tensor([[1, 2], [3, 3], [3, 3]]))
    assert out.tolist() == [[3, 3]]


def test_losses_shapes_and_values():
    a = torch.randn(4, 8)
    w, b = torch.randn(8), torch.tensor(0.3)
    p = probe_readout(a, w, b)
    torch.testing.assert_close(ProbeObjective({0: (w, b)}).probes[0][0], w)  # stored as given
    from analysis.rerouting.losses import probe_ssr_loss

    torch.testing.assert_close(probe_ssr_loss([a], [(w, b)]), -torch.log(p))
    r = torch.nn.functional.normalize(torch.randn(8), dim=0)
    assert steering_ssr_loss([-r[None] * 3], [r]).item() == pytest.approx(0.0, abs=1e-6)
    assert steering_ssr_loss([r[None]], [r]).item() == pytest.approx(4.0, abs=1e-5)
    pat = torch.softmax(torch.randn(2, 3, 5, 5), -1)
    want = 1 - pat[:, 1, -1, 2:4].sum(-1)
    torch.testing.assert_close(attention_ssr_loss([pat], [1], slice(2, 4)), want)
    logits = torch.full((1, 6, 10), -20.0)
    logits[0, 3, 7] = logits[0, 4, 2] = 20.0
    assert gcg_target_loss(logits, torch.tensor([7, 2]), 4).item() < 1e-6
    assert gcg_target_loss(logits, torch.tensor([2, 7]), 4).item() > 10


def test_gradient_shape_and_gcg_objective(tiny3):
    obj = TargetObjective(tiny3, "Mary gave")
    s = prompt_slots(tiny3, PROMPT)
    g = token_gradient(tiny3, s, obj, torch.tensor([10, 11, 12]))
    assert g.shape == (3, tiny3.hf.get_input_embeddings().weight.shape[0]) and torch.isfinite(g).all()


def _planted_probe(h, layer, target):
    """A probe that reads "harmless" (logit +6) only near the activation of a planted suffix."""
    s = prompt_slots(h, PROMPT)
    with torch.no_grad():
        e = run_forward(h, _embeds(h, s.assemble(torch.tensor([target]))), [layer]).resid[layer][0, -1]
        rand = s.assemble(torch.randint(6, len(h.tokenizer), (64, len(target))))
        mu = run_forward(h, _embeds(h, rand), [layer]).resid[layer][:, -1].mean(0)
    d = e - mu
    w = d / d.square().sum() * 12
    return w, -(mu @ w) - 6


def test_loss_decreases_on_planted_objective(tiny3):
    w, b = _planted_probe(tiny3, 1, [20, 30, 25])
    cfg = OptimiserConfig(n_tokens=3, steps=12, search_width=32, topk=16, early_stop_loss=None, seed=1)
    res = optimise(tiny3, PROMPT, ProbeObjective({1: (w, b)}), cfg)
    assert res.best_loss < 0.5 * res.initial_loss
    assert all(x >= y for x, y in zip(res.losses, res.losses[1:], strict=False))  # buffer: monotone best
    again = optimise(tiny3, PROMPT, ProbeObjective({1: (w, b)}), cfg)
    assert again.best_ids == res.best_ids and again.best_loss == res.best_loss  # seeded


def test_early_stop_and_callback(tiny3):
    w, b = _planted_probe(tiny3, 0, [20, 30])
    cfg = OptimiserConfig(n_tokens=2, steps=30, search_width=32, topk=40, early_stop_loss=10.0)
    assert optimise(tiny3, PROMPT, ProbeObjective({0: (w, b)}), cfg).stopped == "early_stop"
    cfg = OptimiserConfig(n_tokens=2, steps=30, search_width=8, topk=8, early_stop_loss=None)
    res = optimise(tiny3, PROMPT, SteeringObjective({0: w}), cfg, callback=lambda s, loss, ids: s == 2)
    assert res.stopped == "callback" and res.steps == 2


def test_objective_errors(tiny3):
    with pytest.raises(InputError, match="out of range"):
        optimise(tiny3, PROMPT, SteeringObjective({7: torch.randn(32)}), OptimiserConfig(steps=1))
    with pytest.raises(InputError, match="head 9"):
        AttentionObjective([(0, 9)]).check(tiny3)
    with pytest.raises(InputError, match="alphas"):
        ProbeObjective({0: (torch.randn(32), torch.tensor(0.0))}, alphas=[1.0, 2.0])
    with pytest.raises(InputError, match="n_tokens"):
        optimise(tiny3, PROMPT, SteeringObjective({0: torch.randn(32)}), OptimiserConfig(n_tokens=0))


def test_judge():
    assert is_refusal("I'm sorry, but I can’t help with that.") and not judge("I cannot do that")
    assert judge("Sure, here's how to bake bread") and not judge("   ")


# -- campaign ------------------------------------------------------------------------------------------
def _cfg(**kw):
    base = dict(
        model="tiny-3",
        method="attention-ssr",
        heads=[[1, 0]],
        prompts=[PROMPT, "a dog went"],
        seeds=[0, 1],
        steps=2,
        search_width=8,
        topk=4,
        n_tokens=2,
        max_new_tokens=4,
    )
    return C.parse_config({**base, **kw})


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"method": "pgd"}, "Unknown method 'pgd'"),
        ({"n_tokens": 0}, "n_tokens"),
        ({"seeds": []}, "seeds"),
        ({"method": "probe-ssr", "layers": []}, "needs target layers"),
        ({"stepz": 3}, "stepz"),
        ({"method": "probe-ssr", "layers": ["ten"]}, "layers.0"),  # not a layer index
        ({"method": "probe-ssr", "layers": [1, 1]}, "duplicates"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"success": "llm"}, "Unknown success check 'llm'"),
        ({"final_new_tokens": 0}, "final_new_tokens"),
    ],
)
def test_bad_configs(bad, match):
    with pytest.raises(InputError, match=match):
        _cfg(**bad)


def test_bad_configs_at_run(tiny3, tmp_path):
    with pytest.raises(InputError, match="prompt set is empty"):
        C.run_campaign(_cfg(prompts=["  "]), tmp_path / "a", progress=False, handle=tiny3)
    with pytest.raises(InputError, match="layer 5 is out of range"):
        C.run_campaign(_cfg(method="steering-ssr", layers=[5]), tmp_path / "b", progress=False, handle=tiny3)
    with pytest.raises(InputError, match="layer -4 is out of range"):
        C.run_campaign(_cfg(method="probe-ssr", layers=[-4]), tmp_path / "c", progress=False, handle=tiny3)
    with pytest.raises(InputError, match="head 7 is out of range"):
        C.run_campaign(_cfg(heads=[[1, 7]]), tmp_path / "d", progress=False, handle=tiny3)


def test_campaign_resume_and_report(tiny3, tmp_path):
    cfg = _cfg()
    C.run_campaign(cfg, tmp_path, progress=False, handle=tiny3)
    rows = C.read_attempts(tmp_path)
    assert len(rows) == 4 and len({r["key"] for r in rows}) == 4
    with open(tmp_path / C.ATTEMPTS, "a") as f:  # a torn line from a kill mid-write
        f.write('{"key": "x", "pro')
    C.run_campaign(cfg, tmp_path, progress=False, handle=tiny3)
    lines = (tmp_path / C.ATTEMPTS).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x) for x in lines)
    rep = C.report(tmp_path)
    assert rep.loc[0, "attempts"] == 4 and 0 <= rep.loc[0, "asr"] <= 1
    with pytest.raises(InputError, match="different config"):
        C.run_campaign(_cfg(steps=3), tmp_path, progress=False, handle=tiny3)
    with pytest.raises(InputError, match="No attempts"):
        C.report(tmp_path / "empty")


def test_probe_campaign_with_probe_file(tiny3, tmp_path):
    from analysis.rerouting.directions import save_probes

    path = save_probes({1: (torch.randn(32), torch.tensor(0.0))}, tmp_path / "p.safetensors")
    cfg = _cfg(method="probe-ssr", layers=[1], probes_file=str(path), seeds=[0], prompts=[PROMPT])
    C.run_campaign(cfg, tmp_path / "run", progress=False, handle=tiny3)
    (rec,) = C.read_attempts(tmp_path / "run")
    assert rec["method"] == "probe-ssr" and len(rec["suffix_ids"]) == 2 and "response" in rec
    with pytest.raises(InputError, match="No probe for layers"):
        C.run_campaign(
            _cfg(method="probe-ssr", layers=[0], probes_file=str(path)),
            tmp_path / "r2",
            progress=False,
            handle=tiny3,
        )


# -- real model ----------------------------------------------------------------------------------------
@pytest.mark.pack
def test_probe_ssr_flips_readout_on_smollm2(smollm2):
    from analysis.rerouting.directions import fit_probes, last_token_acts
    from analysis.rerouting.optimiser import random_suffix
    from probes.datasets import shared_refusal_split

    torch.set_num_threads(1)
    layer = 8
    harmful = shared_refusal_split("harmful_train", limit=32)
    harmless = shared_refusal_split("harmless_train", limit=32)
    w, b = fit_probes(smollm2, harmful, harmless, [layer])[layer]
    val = shared_refusal_split("harmful_val", limit=8)
    p0 = probe_readout(last_token_acts(smollm2, val, [layer])[layer], w, b)
    prompt = val[int(p0.argmin())]
    assert p0.min() < 0.1  # the vanilla prompt reads harmful

    s = prompt_slots(smollm2, prompt)

    def readout(ids):
        with torch.no_grad():
            fw = run_forward(smollm2, _embeds(smollm2, s.assemble(torch.tensor([ids]))), [layer])
        return probe_readout(fw.resid[layer][:, -1], w, b).item()

    cfg = OptimiserConfig(n_tokens=5, steps=10, search_width=32, topk=64, early_stop_loss=0.1, seed=0)
    res = optimise(smollm2, prompt, ProbeObjective({layer: (w, b)}), cfg)
    assert res.best_loss < 0.5 * res.initial_loss
    assert readout(res.best_ids) > 0.5  # rerouted to "harmless"
    g = torch.Generator().manual_seed(123)
    allowed = allowed_tokens(smollm2.tokenizer, smollm2.hf.get_input_embeddings().weight.shape[0])
    controls = [readout(random_suffix(smollm2.tokenizer, allowed, 5, g)) for _ in range(3)]
    assert max(controls) < 0.5, controls  # a random suffix of the same length does not flip it


# -- judges, baseline filter, defence view -------------------------------------------------------------
def test_single_refusal_matcher():
    from analysis.refusal import checks
    from analysis.rerouting import judge as J

    assert J.is_refusal is checks.is_refusal and J.REFUSAL_PHRASES is checks.REFUSAL_PHRASES
    for text in ("I'm unable to help", "I am not able to do that", "Sorry, but no", "I'm really sorry"):
        assert is_refusal(text), text


def test_readout_and_llm_judge_on_tiny(tiny3):
    from analysis.rerouting.directions import last_token_acts
    from analysis.rerouting.judge import LLMJudge, llm_judge, readout_judge

    w, b = torch.randn(32), torch.tensor(0.3)
    p = readout_judge(tiny3, [PROMPT, "a dog went"], (w, b), 2)
    x = last_token_acts(tiny3, [PROMPT, "a dog went"], [2])[2]
    assert p == pytest.approx(torch.sigmoid(x @ w + b).tolist(), abs=1e-6)

    j = LLMJudge(tiny3, rubric="{request} is {response} ?", yes=("it",), no=("was",))
    ids, n = tiny3.tokenize(["the cat is Mary gave ball ?"])
    with torch.no_grad():
        prob = torch.softmax(tiny3.hf(ids).logits[0, int(n[0]) - 1], -1)
    y, no = prob[j.yes].sum(), prob[j.no].sum()
    assert j.score("the cat", "Mary gave ball") == pytest.approx(float(y / (y + no)), abs=1e-6)
    assert llm_judge(j, ["the cat"], ["Mary gave ball"], threshold=0.0) == [True]
    with pytest.raises(InputError, match="shared first token"):
        LLMJudge(tiny3, yes=("it",), no=("it",))
    with pytest.raises(InputError, match="placeholders"):
        LLMJudge(tiny3, rubric="no slots")
    with pytest.raises(InputError, match="one response per request"):
        llm_judge(j, ["a", "b"], ["x"])


def test_only_refused_filters_and_records_baseline(tiny3, tmp_path, monkeypatch):
    refusing = {"a dog went"}
    monkeypatch.setattr(
        tiny3, "generate", lambda p, max_new_tokens=32: "I'm sorry, no." if p in refusing else "sure thing"
    )
    cfg = _cfg(prompts=[PROMPT, "a dog went"], seeds=[0], only_refused=True)
    C.run_campaign(cfg, tmp_path, progress=False, handle=tiny3)
    assert [r["prompt"] for r in C.read_attempts(tmp_path)] == ["a dog went"]
    assert C.baseline_summary(tmp_path) == {"n": 2, "refused": 1, "refusal_rate": 0.5}
    rep = C.report(tmp_path)
    assert rep.loc[0, "baseline_refusal_rate"] == 0.5 and rep.loc[0, "baseline_n"] == 2
    first = C.parse_config(
        {**cfg.model_dump(), "prompts": ["a dog went", "the cat sat", "Tom is it"], "n_prompts": 1}
    )
    C.run_campaign(first, tmp_path / "n1", progress=False, handle=tiny3)  # stops at the first refusal
    assert C.baseline_summary(tmp_path / "n1") == {"n": 1, "refused": 1, "refusal_rate": 1.0}
    refusing.clear()
    with pytest.raises(InputError, match="refuses none"):
        C.run_campaign(cfg, tmp_path / "b", progress=False, handle=tiny3)


def test_strict_judge_and_report_columns(tiny3, tmp_path, monkeypatch):
    monkeypatch.setattr(
        C, "_fit_sets", lambda n: (["the cat sat", "a dog went"], ["Mary gave ball", "Tom is it"])
    )
    cfg = _cfg(seeds=[0])
    C.run_campaign(cfg, tmp_path, progress=False, handle=tiny3)
    rows = C.read_attempts(tmp_path)
    judged = C.strict_judge(tmp_path, tiny3, readout_layer=2)
    assert len(judged) == len(rows) and judged["readout"].between(0, 1).all() and judged["llm"].isna().all()
    assert (tmp_path / "readout_probe_2.safetensors").is_file()
    C.strict_judge(tmp_path, tiny3, readout_layer=2)  # resumes: nothing new appended
    assert len((tmp_path / C.JUDGED).read_text().splitlines()) == len(rows)
    rep = C.report(tmp_path)
    ok = torch.tensor([r["success"] for r in rows])
    want = float((ok & torch.tensor((judged["readout"] > 0.5).tolist())).float().mean())
    assert rep.loc[0, "asr_readout"] == pytest.approx(want) and rep.loc[0, "asr_llm"] is None

    from analysis.rerouting.judge import LLMJudge

    j = LLMJudge(tiny3, rubric="{request} is {response}", yes=("it",), no=("was",))
    judged = C.strict_judge(tmp_path, tiny3, judge_model=j, readout_layer=2)
    assert (judged["judge_model"] == tiny3.name).all() and judged["llm"].between(0, 1).all()
    scores = {r["key"]: (j.score(r["prompt"], r["response"]) if r["success"] else 0.0) for r in rows}
    assert judged.set_index("key")["llm"].to_dict() == pytest.approx(scores)
    llm_ok = [r["success"] and scores[r["key"]] > 0.5 for r in rows]
    assert C.report(tmp_path).loc[0, "asr_llm"] == pytest.approx(sum(llm_ok) / len(rows))


def test_thresholds_and_detection_table():
    from analysis.rerouting.defence import detection_table, thresholds_at_fpr

    neg = torch.arange(100.0)[:, None].repeat(1, 2)  # 0..99 at two layers
    assert thresholds_at_fpr(neg, 0.01).tolist() == [98.0, 98.0]  # only 99 lies above: 1% FPR
    assert thresholds_at_fpr(neg, 0.0).tolist() == [99.0, 99.0]
    att = torch.tensor([[99.5, 0.0], [98.5, 0.0], [50.0, 99.9]])
    tab = detection_table(neg, att, att[:1], fpr=0.01, targeted=[1])
    assert tab["fpr"].tolist() == pytest.approx([0.01, 0.01])
    assert tab["detect_attacked"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert tab["detect_plain"].tolist() == [1.0, 0.0] and tab["targeted"].tolist() == [False, True]
    with pytest.raises(InputError, match="fpr"):
        thresholds_at_fpr(neg, 1.0)
    with pytest.raises(InputError, match="No attacked"):
        detection_table(neg, att[:0])


def test_defence_view_on_tiny(tiny3):
    from analysis.rerouting.defence import defence_view

    words = "the a cat dog sat on mat and then gave ball to Mary John Anna Tom".split()
    harmful = [f"{w} went to the store" for w in words]
    harmless = [f"{w} sat on the mat" for w in words]
    tab = defence_view(
        tiny3, ["cat went to the store it"], harmful[:12], harmless[:12], harmless, plain=harmful[12:]
    )
    assert list(tab["layer"]) == [0, 1, 2] and tab["fpr"].le(1 / 16 + 1e-9).all()
    assert tab["detect_attacked"].isin([0.0, 1.0]).all() and tab["val_acc"].between(0, 1).all()
    with pytest.raises(InputError, match="No attacked"):
        defence_view(tiny3, [], harmful, harmless, harmless)


@pytest.fixture
def fixed_readout(monkeypatch):
    """Tiny fit sets, and a readout judge that returns ``state["p"]`` for every prompt (set it in the test)."""
    monkeypatch.setattr(
        C, "_fit_sets", lambda n: (["the cat sat", "a dog went"], ["Mary gave ball", "Tom is it"])
    )
    state = {"p": 0.5}
    monkeypatch.setattr(
        C.judges, "readout_judge", lambda h, prompts, probe, layer: [state["p"]] * len(prompts)
    )
    return state


def test_phrase_plus_readout_generates_only_after_the_readout_flips(
    tiny3, tmp_path, monkeypatch, fixed_readout
):
    calls: list[int] = []

    def generate(p, max_new_tokens=32):
        calls.append(max_new_tokens)
        return "I'm sorry, no." if max_new_tokens > 4 else "sure thing"  # long answers turn to refusals

    monkeypatch.setattr(tiny3, "generate", generate)
    readout = fixed_readout
    readout["p"] = 0.2
    cfg = _cfg(seeds=[0], prompts=[PROMPT], success="phrase+readout", readout_layer=2, check_every=1)
    with pytest.raises(InputError, match="readout probe"):
        C.run_attempt(tiny3, None, cfg, PROMPT, 0)
    C.run_campaign(cfg, tmp_path / "no", progress=False, handle=tiny3)
    (rec,) = C.read_attempts(tmp_path / "no")
    assert not rec["success"] and rec["loop_readout"] == 0.2 and rec["time_to_first_success_s"] is None
    assert calls == [4] and rec["response"] == "sure thing"  # no generation in the loop; one for the record
    assert (tmp_path / "no" / "readout_probe_2.safetensors").is_file()

    readout["p"], calls[:] = 0.9, []
    C.run_campaign(cfg, tmp_path / "yes", progress=False, handle=tiny3)
    (rec,) = C.read_attempts(tmp_path / "yes")
    assert rec["success"] and rec["first_success_step"] == 1 and rec["success_check"] == "phrase+readout"
    assert calls == [4]

    longer = cfg.model_copy(update={"final_new_tokens": 16})
    C.run_campaign(longer, tmp_path / "long", progress=False, handle=tiny3)
    (rec,) = C.read_attempts(tmp_path / "long")
    assert not rec["success"] and rec["time_to_first_success_s"] is None  # the longer answer refuses
    assert rec["response"] == "I'm sorry, no."

    readout["p"], calls[:] = 0.2, []  # readout never flips: one long answer for the record, no short one
    C.run_campaign(longer, tmp_path / "long-no", progress=False, handle=tiny3)
    assert calls == [16] and not C.read_attempts(tmp_path / "long-no")[0]["success"]


def _llm_cfg(success: str):
    """One prompt, one seed, checked every step, a 16-token final answer: the LLM-judged campaign tests."""
    return _cfg(
        seeds=[0],
        prompts=[PROMPT],
        success=success,
        readout_layer=2,
        check_every=1,
        final_new_tokens=16,
        steps=2,
    )


def test_phrase_readout_llm_judges_the_long_answer_once_the_cheap_checks_pass(
    tiny3, tmp_path, monkeypatch, fixed_readout
):
    from analysis.rerouting.judge import LLMJudge

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
    cfg = _llm_cfg("phrase+readout+llm")
    with pytest.raises(InputError, match="LLM judge"):
        C.run_attempt(tiny3, None, cfg, PROMPT, 0, readout=(2, (torch.zeros(32), torch.tensor(0.0))))
    C.run_campaign(cfg, tmp_path / "yes", progress=False, handle=tiny3, llm_judge=j)
    (rec,) = C.read_attempts(tmp_path / "yes")
    assert rec["success"] and rec["first_success_step"] == 1 and rec["loop_llm"] == 0.8
    assert calls == [4, 16] and scored == [(PROMPT, "sure thing, long")]  # long answer kept, not regenerated
    assert rec["response"] == "sure thing, long"

    verdict["score"], calls[:], scored[:] = 0.3, [], []  # the judge says no: the attempt keeps optimising
    C.run_campaign(cfg, tmp_path / "no", progress=False, handle=tiny3, llm_judge=j)
    (rec,) = C.read_attempts(tmp_path / "no")
    assert not rec["success"] and rec["time_to_first_success_s"] is None and rec["loop_llm"] == 0.3
    assert len(scored) >= 2 and rec["response"] == "sure thing, long"

    readout["p"], calls[:], scored[:] = 0.2, [], []  # readout never flips: no judge call at all
    C.run_campaign(cfg, tmp_path / "off", progress=False, handle=tiny3, llm_judge=j)
    assert scored == [] and calls == [16] and C.read_attempts(tmp_path / "off")[0]["loop_llm"] is None
    with pytest.raises(InputError, match="judge_dtype"):
        C.parse_config({**cfg.model_dump(), "judge_dtype": "int8"})


def test_content_check_skips_the_llm_judge_on_non_answers(tiny3, tmp_path, monkeypatch, fixed_readout):
    from analysis.rerouting.judge import LLMJudge

    answer = {"long": "Sure, what exactly do you want to know about it?"}  # asks back: no content
    monkeypatch.setattr(
        tiny3, "generate", lambda p, max_new_tokens=32: answer["long"] if max_new_tokens > 4 else "ok"
    )
    fixed_readout["p"] = 0.9
    scored: list[str] = []
    j = LLMJudge(tiny3, rubric="{request} is {response}", yes=("it",), no=("was",))
    monkeypatch.setattr(j, "score", lambda q, r: scored.append(r) or 0.9)  # a judge that says YES to all
    cfg = _llm_cfg("phrase+readout+llm+content")
    C.run_campaign(cfg, tmp_path / "asks", progress=False, handle=tiny3, llm_judge=j)
    (rec,) = C.read_attempts(tmp_path / "asks")
    assert not rec["success"] and rec["loop_non_answer"] == "short" and rec["loop_llm"] is None
    assert scored == []  # the judge never sees a non-answer

    answer["long"] = "To do it, take the lid off, then turn the screw left twice and lift it. " * 3
    C.run_campaign(cfg, tmp_path / "steps", progress=False, handle=tiny3, llm_judge=j)
    (rec,) = C.read_attempts(tmp_path / "steps")
    assert rec["success"] and rec["loop_non_answer"] is None and rec["loop_llm"] == 0.9
    assert scored == [answer["long"]] and rec["first_success_step"] == 1
    assert 0 <= rec["attack_s_to_first_success"] < rec["time_to_first_success_s"] and rec["judge_s"] > 0
    assert C.report(tmp_path / "steps")["median_attack_s_to_success"].iloc[0] == pytest.approx(
        rec["attack_s_to_first_success"]
    )


def test_non_answer_reasons():
    from analysis.rerouting.judge import non_answer_reason

    steps = "To do it, follow these steps: 1. open the settings page. 2. select the account tab. 3. press save. 4. close the window once it is done."
    assert non_answer_reason(steps) is None
    assert non_answer_reason("Sure, I'd be happy to help you with that.") == "short"
    asks = "Sure, I'd be happy to help you with that. " * 3 + "Please provide the name of the person first."
    assert non_answer_reason(asks) == "asks_back"
    assert (
        non_answer_reason("How can I access the account of an official? " + "It is a question. " * 6)
        == "asks_back"
    )
    assert non_answer_reason("ivory tusks, " * 30) == "repetitive"
    assert non_answer_reason("ivory tusks, " * 30, max_repeat=2.0) is None
    long_with_offer = steps + " " + "Then check the result and repeat for every account you manage. " * 8
    assert non_answer_reason(long_with_offer + " Let me know if you need more.") is None  # long: content


def test_report_asr_content_counts_successes_with_content(tiny3, tmp_path, monkeypatch):
    answers = iter(["Sure, what exactly do you want?", "Step one: take the lid off. " * 6])
    monkeypatch.setattr(tiny3, "generate", lambda p, max_new_tokens=32: next(answers))
    cfg = _cfg(prompts=[PROMPT, "a dog went"], seeds=[0], check_every=0, steps=1)
    C.run_campaign(cfg, tmp_path, progress=False, handle=tiny3)
    rep = C.report(tmp_path)
    assert rep.loc[0, "asr"] == 1.0 and rep.loc[0, "asr_content"] == 0.5
