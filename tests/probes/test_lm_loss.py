"""lm_loss: equals a hand-computed cross-entropy on the tiny model, padding-independent, clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from probes.errors import InputError
from probes.lm_loss import lm_loss, lm_token_losses


def _hand_loss(handle, text: str) -> tuple[float, int]:
    ids = handle.tokenizer.encode(text, add_special_tokens=True)
    with torch.no_grad():
        logits = handle.hf(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    total = -sum(float(logp[t, ids[t + 1]]) for t in range(len(ids) - 1))
    return total, len(ids) - 1


def test_matches_hand_computed_cross_entropy(tiny):
    texts = ["the cat sat on the mat and then went to the store", "Mary gave a ball to John", "he sat"]
    hand = [_hand_loss(tiny, t) for t in texts]
    expected = sum(t for t, _ in hand) / sum(n for _, n in hand)
    assert math.isclose(lm_loss(tiny, texts, batch_size=2), expected, rel_tol=1e-5)
    assert len(lm_token_losses(tiny, texts)) == sum(n for _, n in hand)
    # batching (and so padding) does not change the answer
    assert math.isclose(lm_loss(tiny, texts, batch_size=1), lm_loss(tiny, texts, batch_size=3), rel_tol=1e-6)


def test_truncation(tiny):
    text = "the cat sat on the mat and then went to the store"
    n = len(tiny.tokenizer.encode("the cat sat on", add_special_tokens=True))
    total, count = _hand_loss(tiny, "the cat sat on")
    assert math.isclose(lm_loss(tiny, [text], max_tokens=n), total / count, rel_tol=1e-5)


def test_errors(tiny):
    with pytest.raises(InputError, match="max_tokens"):
        lm_loss(tiny, ["the cat"], max_tokens=1)
    with pytest.raises(InputError, match="batch_size"):
        lm_loss(tiny, ["the cat"], batch_size=0)
    with pytest.raises(InputError):
        lm_loss(tiny, [])


def test_heldout_sample_loads():
    from analysis.tasks.heldout import heldout_texts

    paras = heldout_texts()
    assert len(paras) >= 8 and sum(len(p.split()) for p in paras) > 1000


def test_texts_longer_than_the_context_are_truncated_to_it():
    """The organism (learned positions, 96 of them) scores a long text instead of failing."""
    from probes.loading import load_model

    handle = load_model("organism")
    text = " ".join(["Mary gave the ball to John ."] * 40)
    n_ctx = handle.info.n_ctx
    assert n_ctx is not None and len(handle.tokenizer.encode(text)) > n_ctx
    assert lm_loss(handle, [text], max_tokens=1000) > 0
    with pytest.raises(InputError, match=rf"is \d+ tokens long, but .* has a context of {n_ctx} tokens"):
        handle.tokenize([text], chat=False)  # everywhere else a prompt past the context is refused
