"""The SSR / GCG optimiser and losses: exact mechanics on the tiny model."""

from __future__ import annotations

import re

import pytest
import torch

from analysis.rerouting import (
    AttentionObjective,
    OptimiserConfig,
    ProbeObjective,
    SteeringObjective,
    TargetObjective,
    attention_ssr_loss,
    evaluate,
    gcg_step,
    gcg_target_loss,
    optimise,
    probe_readout,
    probe_ssr_loss,
    prompt_slots,
    steering_ssr_loss,
    token_gradient,
)
from analysis.rerouting.optimiser import (
    allowed_tokens,
    filter_candidates,
    retokenises,
    sample_candidates,
    special_ids,
)
from probes.architecture import run_forward
from probes.errors import InputError

PROMPT = "the cat sat"


def _embeds(h, ids):
    return h.hf.get_input_embeddings()(ids)


def test_slots_place_suffix_after_instruction(tiny3):
    s = prompt_slots(tiny3, PROMPT)
    ids = s.assemble(torch.tensor([[10, 11]]))
    want, _ = tiny3.tokenize([PROMPT + " " + tiny3.tokenizer.decode([10, 11])])
    assert ids.tolist() == want.tolist()
    assert s.suffix_slice(2) == slice(len(s.prefix), len(s.prefix) + 2)


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


def test_gcg_step_keeps_the_best_distinct_suffixes(tiny3):
    w, b = _planted_probe(tiny3, 1, [20, 30, 25])
    obj = ProbeObjective({1: (w, b)})
    cfg = OptimiserConfig(n_tokens=3, search_width=16, topk=8, buffer_size=3)
    slots = prompt_slots(tiny3, PROMPT)
    allowed = allowed_tokens(tiny3.tokenizer, tiny3.hf.get_input_embeddings().weight.shape[0])
    start = [[10, 11, 12], [13, 14, 15]]
    buffer = sorted(zip(evaluate(tiny3, slots, obj, torch.tensor(start)).tolist(), start, strict=True))
    new = gcg_step(tiny3, slots, obj, buffer, 2, cfg, torch.Generator().manual_seed(0), allowed)
    assert len(new) == 3 and len({tuple(ids) for _, ids in new}) == 3  # filled to buffer_size, distinct
    assert [v for v, _ in new] == sorted(v for v, _ in new) and new[0][0] <= buffer[0][0]
    losses = evaluate(tiny3, slots, obj, torch.tensor([ids for _, ids in new]))
    torch.testing.assert_close(losses, torch.tensor([v for v, _ in new]), atol=1e-5, rtol=0)


def test_early_stop_and_callback(tiny3):
    w, b = _planted_probe(tiny3, 0, [20, 30])
    cfg = OptimiserConfig(n_tokens=2, steps=30, search_width=32, topk=40, early_stop_loss=10.0)
    res = optimise(tiny3, PROMPT, ProbeObjective({0: (w, b)}), cfg)
    assert res.stopped in ("already_met", "start_met") and res.steps == 0 and not res.optimised
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


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"n_tokens": 0}, "n_tokens"),
        ({"topk": 0}, "topk must be >= 1"),
        ({"steps": -1}, "steps must be >= 0"),
        ({"replace_coefficient": 0.0}, "replace_coefficient"),
        ({"n_token": 3}, "n_token"),
    ],
)
def test_bad_optimiser_configs(bad, match):
    with pytest.raises(InputError, match=match):
        OptimiserConfig(**bad)
    assert OptimiserConfig(steps=0).steps == 0  # only the starting suffixes are evaluated


def test_stop_reason_when_the_objective_is_met_before_step_1(tiny3):
    """The issue-14 case: a probe that already reads the bare prompt as harmless. The result says so
    (with the prompt's own loss and the threshold) instead of passing a random start off as a result."""
    d = tiny3.info.d_model
    reads_harmless = (torch.zeros(d), torch.tensor(8.0))  # P(harmless) = sigmoid(8) for every input
    cfg = OptimiserConfig(n_tokens=2, steps=5, search_width=8, topk=8)
    res = optimise(tiny3, PROMPT, ProbeObjective({0: reads_harmless}), cfg)
    assert res.stopped == "already_met" and res.steps == 0 and res.losses == []
    assert res.prompt_loss == pytest.approx(float(torch.nn.functional.softplus(torch.tensor(-8.0))), rel=1e-4)
    assert "nothing to optimise" in res.reason and "(0.05)" in res.reason


def test_runs_steps_and_reports_the_bare_prompt_loss(tiny3):
    w, b = _planted_probe(tiny3, 1, [20, 30, 25])
    cfg = OptimiserConfig(n_tokens=3, steps=2, search_width=16, topk=16, seed=1, early_stop_loss=None)
    res = optimise(tiny3, PROMPT, ProbeObjective({1: (w, b)}), cfg)
    s = prompt_slots(tiny3, PROMPT)
    bare = evaluate(tiny3, s, ProbeObjective({1: (w, b)}), torch.zeros(1, 0, dtype=torch.long))
    assert (
        res.prompt_loss == pytest.approx(float(bare[0]), rel=1e-5) and res.prompt_loss > 0.05
    )  # cached prefix
    assert res.optimised and res.steps == 2 and len(res.losses) == 2 and res.stopped == "max_steps"
    assert res.reason.startswith("the step budget ran out")
