"""The truncated forward (``run_forward``) and eager attention patterns, checked against full HF passes."""

from __future__ import annotations

import pytest
import torch

from probes.architecture import eager_attention, run_forward
from probes.testing import tiny_handle


@pytest.fixture(scope="module")
def tiny3():
    torch.set_num_threads(1)
    return tiny_handle(seed=0, n_layers=3)


def _ids(h, batch: int, pos: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(batch * 100 + pos)
    return torch.randint(6, len(h.tokenizer), (batch, pos), generator=g)


def _embeds(h, ids):
    return h.hf.get_input_embeddings()(ids)


@pytest.mark.parametrize("layer", [0, 1])
def test_truncated_forward_matches_full(tiny3, layer):
    ids = _ids(tiny3, 3, 9)
    with torch.no_grad():
        fw = run_forward(tiny3, _embeds(tiny3, ids), [layer])
        full = tiny3.hf(ids, output_hidden_states=True).hidden_states[layer + 1]
    assert fw.logits is None and max(fw.resid) == layer
    torch.testing.assert_close(fw.resid[layer], full, atol=1e-4, rtol=0)


def test_logits_last_keeps_the_last_positions(tiny3):
    ids = _ids(tiny3, 2, 7)
    with torch.no_grad():
        fw = run_forward(tiny3, _embeds(tiny3, ids), [1], logits=True, logits_last=3)
        full = tiny3.hf(ids).logits
    assert fw.logits.shape[1] == 3 and fw.logits_start == 4 and sorted(fw.resid) == [1]
    torch.testing.assert_close(fw.logits, full[:, 4:], atol=1e-4, rtol=0)


def test_attention_patterns_match_eager_and_restore_impl(tiny3):
    ids = _ids(tiny3, 2, 8)
    before = tiny3.hf.config._attn_implementation
    with torch.no_grad():
        fw = run_forward(tiny3, _embeds(tiny3, ids), attn_layers=[1])
    assert tiny3.hf.config._attn_implementation == before
    pat = fw.attn[1]
    assert pat.shape == (2, 4, ids.shape[1], ids.shape[1])
    torch.testing.assert_close(pat.sum(-1), torch.ones(2, 4, ids.shape[1]), atol=1e-5, rtol=0)
    assert torch.all(pat.triu(1) == 0)
    with torch.no_grad(), eager_attention(tiny3.hf):
        want = tiny3.hf(ids, output_attentions=True).attentions[1]
    torch.testing.assert_close(pat, want, atol=1e-5, rtol=0)
    assert tiny3.hf.config._attn_implementation == before
