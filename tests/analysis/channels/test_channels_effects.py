"""What OV components do on a tiny model: their read/write tokens and the effect of removing them."""

from __future__ import annotations

import pytest
import torch

from analysis.channels.effects import component_tokens, removal_effects
from analysis.tasks.common import single_token_id
from probes.edits import EditSpec
from probes.testing import tiny_handle
from probes.weights import head_ov_svd

PROMPT = "then John and Mary went to the store and John gave a ball to"


@pytest.fixture(scope="module")
def handle():
    torch.manual_seed(0)
    return tiny_handle(seed=0)


def _logit_diff(handle, answer: int, distractor: int) -> float:
    ids, lengths = handle.tokenize([PROMPT], chat=False)
    with torch.no_grad():
        logits = handle.hf(ids.to(handle.device)).logits[0, int(lengths[0]) - 1].float()
    return float(logits[answer] - logits[distractor])


def test_removal_effects_match_the_weight_edit(handle):
    mary, john = single_token_id(handle.tokenizer, "Mary"), single_token_id(handle.tokenizer, "John")
    out = removal_effects(handle, PROMPT, mary, john, 1, 2, (0, 3))
    assert list(out.columns) == ["component", "logit_diff_clean", "logit_diff_removed", "effect"]
    assert out["component"].tolist() == [0, 3]
    assert out["logit_diff_clean"].tolist() == pytest.approx([_logit_diff(handle, mary, john)] * 2, abs=1e-4)
    assert (out["effect"] == out["logit_diff_removed"] - out["logit_diff_clean"]).all()
    assert out["effect"].abs().gt(1e-6).all()
    for c, removed in zip(out["component"], out["logit_diff_removed"], strict=True):
        with EditSpec.build(handle, [(1, 2, int(c), 0.0)]).apply(handle):  # undone on exit
            assert removed == pytest.approx(_logit_diff(handle, mary, john), abs=1e-4)


def test_component_tokens_follow_the_ov_svd(handle):
    out = component_tokens(handle, 0, 1, (0, 2), k=3)
    assert list(out.columns) == ["component", "singular_value", "writes", "reads"]
    S = head_ov_svd(handle, 0, 1).S
    assert out["singular_value"].tolist() == pytest.approx([float(S[0]), float(S[2])])
    assert all(len(cell.split(", ")) == 3 for cell in [*out["writes"], *out["reads"]])
    _, _, V = head_ov_svd(handle, 0, 1)
    top = int((handle.hf.get_output_embeddings().weight.float() @ V[:, 0]).argmax())
    assert out["writes"][0].split(", ")[0] == repr(handle.tokenizer.decode([top]))
