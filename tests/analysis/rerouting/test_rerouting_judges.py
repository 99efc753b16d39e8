"""Judges (refusal phrases, probe readout, non-answers, rubric LLM) and the probe-monitor defence view."""

from __future__ import annotations

import pytest
import torch

from analysis.rerouting import LLMJudge, is_refusal, llm_judge, non_answer_reason, readout_judge
from analysis.rerouting.defence import defence_view, detection_table, thresholds_at_fpr
from analysis.rerouting.judge import judge
from probes.architecture import run_forward
from probes.errors import InputError

PROMPT = "the cat sat"


def test_judge():
    assert is_refusal("I'm sorry, but I can’t help with that.") and not judge("I cannot do that")
    assert judge("Sure, here's how to bake bread") and not judge("   ")


def test_single_refusal_matcher():
    from analysis.refusal import checks
    from analysis.rerouting import judge as J

    assert J.is_refusal is checks.is_refusal and J.REFUSAL_PHRASES is checks.REFUSAL_PHRASES
    for text in ("I'm unable to help", "I am not able to do that", "Sorry, but no", "I'm really sorry"):
        assert is_refusal(text), text


def test_readout_and_llm_judge_on_tiny(tiny3):
    w, b = torch.randn(32), torch.tensor(0.3)
    prompts = [PROMPT, "a dog went"]
    p = readout_judge(tiny3, prompts, (w, b), 2)
    ids, n = tiny3.tokenize(prompts)  # the last chat-formatted token's resid_post.2, via a plain forward
    with torch.no_grad():
        fw = run_forward(tiny3, tiny3.hf.get_input_embeddings()(ids), [2])
    x = fw.resid[2][torch.arange(2), n - 1]
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


def test_non_answer_reasons():
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


def test_thresholds_and_detection_table():
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
