"""The cached prompt prefix (``OptimiserConfig.cache_prefix``): candidate losses and token gradients equal
the full forward's for every objective, also once the TransformerLens bridge has wrapped the model."""

from __future__ import annotations

import copy

import pytest
import torch

from analysis.rerouting import (
    AttentionObjective,
    OptimiserConfig,
    ProbeObjective,
    SteeringObjective,
    TargetObjective,
    evaluate,
    optimise,
    prompt_slots,
    token_gradient,
)

PROMPT = "the cat sat on the mat"


def _objectives(h):
    g = torch.Generator().manual_seed(0)
    d = h.info.d_model
    return {
        "probe": ProbeObjective(
            {1: (torch.randn(d, generator=g), torch.tensor(0.1)), 2: (torch.randn(d), 0.0)}
        ),
        "steering": SteeringObjective({0: torch.randn(d, generator=g), 2: torch.randn(d, generator=g)}),
        "attention": AttentionObjective([(1, 0), (2, 3)]),
        "gcg": TargetObjective(h, "Sure, here"),
    }


@pytest.mark.parametrize("name", ["probe", "steering", "attention", "gcg"])
def test_cached_prefix_gives_the_full_forwards_losses_and_gradient(tiny3, name):
    obj = _objectives(tiny3)[name]
    full = prompt_slots(tiny3, PROMPT)
    cached = copy.copy(full).cache(tiny3)
    assert full.kv is None and cached.kv.length == full.prefix.numel() > 3
    cand = torch.randint(5, 40, (5, 3), generator=torch.Generator().manual_seed(1))
    want, got = evaluate(tiny3, full, obj, cand, 2), evaluate(tiny3, cached, obj, cand, 2)
    assert want.std() > 1e-4  # the candidates differ, so the comparison can fail
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    ids = cand[0]
    torch.testing.assert_close(
        token_gradient(tiny3, cached, obj, ids), token_gradient(tiny3, full, obj, ids), atol=1e-5, rtol=1e-4
    )
    bare = torch.zeros(1, 0, dtype=torch.long)  # the prompt with no suffix: post (+ target) only
    torch.testing.assert_close(evaluate(tiny3, cached, obj, bare), evaluate(tiny3, full, obj, bare))


def test_cache_works_under_the_bridge_and_the_search_is_unchanged():
    from probes.testing import tiny_handle

    h = tiny_handle(seed=1, n_layers=3)
    obj = _objectives(h)["probe"]
    cfg = OptimiserConfig(n_tokens=3, steps=3, search_width=8, topk=8, early_stop_loss=None)
    plain = optimise(h, PROMPT, obj, cfg.model_copy(update={"cache_prefix": False}))
    assert (
        h.tl is not None
    )  # boot the TransformerLens bridge: it wraps the HF modules (and would ignore a cache)
    cached = optimise(h, PROMPT, obj, cfg)
    assert cached.best_ids == plain.best_ids
    assert cached.losses == pytest.approx(plain.losses, abs=1e-5)
    assert cached.prompt_loss == pytest.approx(plain.prompt_loss, abs=1e-5)


def test_a_sliding_window_shorter_than_the_prefix_runs_uncached():
    from transformers import MistralConfig, MistralForCausalLM

    from probes.architecture import prefix_kv, run_forward
    from probes.handle import ModelHandle
    from probes.testing import tiny_tokenizer

    tok = tiny_tokenizer(True)
    cfg = MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, sliding_window=4)  # fmt: skip
    torch.manual_seed(0)
    h = ModelHandle(MistralForCausalLM(cfg).eval(), tok, name="tiny-mistral", source="in-memory")
    emb = h.hf.get_input_embeddings()(torch.arange(1, 9)[None])
    assert prefix_kv(h, emb[:, :6]) is None  # the window keeps 4 of 6 prefix positions: no cache
    kv = prefix_kv(h, emb[:, :3])  # fits; the 8-token pass then slides past it
    with torch.no_grad():
        want, got = (
            run_forward(h, emb, [1]).resid[1][:, 3:],
            run_forward(h, emb[:, 3:], [1], prefix=kv).resid[1],
        )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
