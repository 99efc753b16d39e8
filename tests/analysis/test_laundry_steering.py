"""Steering in the positional subspace: the cached END pass equals a full forward pass, a zero change is
the identity, targets land at END, the fitted rule recovers a planted map, the oracle is >= the rule and
the baseline on every prompt, Wilson intervals, and the study runs end to end and resumes per N."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from analysis.interventions import PromptContext, SubspaceSet, orthonormalize
from analysis.laundry.channel import laundry_batch, record_end
from analysis.laundry.pipeline import SteerConfig, steering_study
from analysis.laundry.steering import (
    AffineRule,
    EndSteer,
    fit_rule,
    margins,
    oracle_margins,
    steering_table,
    wilson,
)
from analysis.tasks.laundry import laundry_list_prompts
from probes.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")
LAYER = 2


@pytest.fixture(scope="module")
def organism():
    from probes.organism import load_organism

    return load_organism()


@pytest.fixture(scope="module")
def batch(organism):
    return laundry_batch(
        organism, laundry_list_prompts(organism.tokenizer, n_items=[3, 5], n_per_n=10, seed=3)
    )


def _basis(organism, k, seed):
    return orthonormalize(
        torch.randn(organism.info.d_model, k, generator=torch.Generator().manual_seed(seed))
    )


def test_cached_end_pass_is_a_full_forward_and_zero_change_is_the_identity(organism, batch):
    rec = record_end(organism, batch, batch_size=7)  # boots the TransformerLens bridge first
    steer = EndSteer(organism, batch, _basis(organism, 3, 0), LAYER, batch_size=6)  # 4 chunks, padding
    full = rec.item_logits.nan_to_num(nan=-torch.inf)
    assert torch.allclose(steer.base, full, atol=1e-4)
    assert torch.allclose(steer.coords, rec.resid_pre[LAYER] @ steer.basis, atol=1e-4)
    same = steer.item_logits(steer.coords)  # set the coordinates to where they already are
    assert torch.allclose(same, steer.base, atol=1e-5)
    assert torch.allclose(steer.item_logits(None), steer.base)  # the cache is left as it was


def test_steered_end_pass_equals_subspace_set_in_a_full_forward(organism, batch):
    basis = _basis(organism, 2, 1)
    steer = EndSteer(organism, batch, basis, LAYER, batch_size=8)
    targets = torch.randn(len(batch.prompts), 2, generator=torch.Generator().manual_seed(2)) * 5

    def hooks(sl, lengths, width):  # the same change through analysis.interventions on the whole prompt
        iv = SubspaceSet(f"resid_pre.{LAYER}", basis, targets[sl][:, None, :], positions="last")
        return iv.hooks(organism, PromptContext(lengths, width))

    full = record_end(organism, batch, batch_size=8, extra_hooks=hooks)
    assert torch.allclose(full.resid_pre[LAYER] @ basis, targets, atol=1e-4)  # the targets land at END
    steered = steer.item_logits(targets)
    assert torch.allclose(steered, full.item_logits.nan_to_num(nan=-torch.inf), atol=1e-4)
    assert not torch.allclose(steered, steer.base, atol=1e-3)
    with pytest.raises(InputError, match="targets must be"):
        steer.item_logits(targets[:3])


def test_margins_score_as_correct_items():
    il = torch.tensor([[1.0, 3.0, -torch.inf], [2.0, 0.5, 1.0], [1.0, 1.0, 0.0]])
    assert margins(il, torch.tensor([1, 0, 0])).tolist() == [2.0, 1.0, 0.0]  # a tie is not correct


class _Planted:
    """A stand-in for :class:`EndSteer` whose item logits are the target itself (k = N items) and whose
    answer is ``argmax(c Mᵀ)``: the best affine rule is a large multiple of ``M``."""

    def __init__(self, M, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.coords = torch.randn(n, M.shape[0], generator=g)
        self.positions = (self.coords @ M.T).argmax(1)
        self.basis = torch.eye(M.shape[0])

    def item_logits(self, targets):
        return targets


def test_fit_rule_recovers_a_planted_map():
    M = orthonormalize(torch.randn(4, 4, generator=torch.Generator().manual_seed(5)))
    dev, test = _Planted(M, 400, 0), _Planted(M, 200, 1)
    acc = lambda s, r: float((margins(s.item_logits(r.targets(s.coords)), s.positions) > 0).float().mean())  # noqa: E731
    assert acc(test, AffineRule.identity(4)) < 0.6
    rule, log = fit_rule([dev], steps=150, lr=0.1, l2=0.0)
    assert log[-1] < 0.5 * log[0] and acc(test, rule) > 0.95  # held-out planted prompts
    stay, _ = fit_rule([dev], steps=150, lr=0.1, l2=1e4)  # a strong pull stays near no change
    assert (stay.A - torch.eye(4)).norm() < 0.1 * (rule.A - torch.eye(4)).norm()


def test_oracle_is_at_least_the_rule_and_the_baseline_on_every_prompt(organism, batch):
    steer = EndSteer(organism, batch, _basis(organism, 4, 3), LAYER)
    g = torch.Generator().manual_seed(4)
    rule = AffineRule(torch.eye(4) + 0.5 * torch.randn(4, 4, generator=g), torch.randn(4, generator=g))
    targets = rule.targets(steer.coords)
    with torch.no_grad():
        m_rule = margins(steer.item_logits(targets), steer.positions)
    m_base = margins(steer.base, steer.positions)
    best = oracle_margins(steer, targets, steps=5)
    assert (best >= m_rule).all() and (best >= m_base).all()
    assert (best > torch.maximum(m_rule, m_base) + 1e-6).any()  # the ascent finds better points


def test_wilson_and_steering_table():
    lo, hi = wilson(0, 40)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.0876, abs=1e-3)
    assert wilson(20, 40)[0] == pytest.approx(1 - wilson(20, 40)[1])
    prompts = pd.DataFrame({"n_items": [2, 2, 3, 3], "position": [0, 1, 0, 1]})
    table = steering_table(prompts, {"baseline": [True, False, False, False], "rule": [True, True, True, False]},
                           ("n_items",))  # fmt: skip
    rule = table[table.condition == "rule"].set_index("n_items")
    assert rule["accuracy"].tolist() == [1.0, 0.5] and rule["gain_pp"].tolist() == [50.0, 50.0]
    assert (table["ci_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["ci_high"]).all()


def test_steering_study_end_to_end_and_resumes_per_n(organism, tmp_path):
    config = SteerConfig(n_items=(3, 4), per_n=6, fit_per_n=8, locate_per_n=8, n_null=50, k=3, steps=3,
                         oracle_steps=2)  # fmt: skip
    res = steering_study(organism, config, run_dir=tmp_path)
    by_n = res["by_n"]
    assert set(by_n["condition"]) == {"baseline", "rule", "oracle"} and (by_n["n_prompts"] == 6).all()
    s = res["summary"]
    assert s["layer"] == min(m[0] for m in s["movers"]) and s["basis_k"] == 3
    assert s["oracle_ge_rule_every_prompt"] and s["oracle_ge_rule_every_n"]
    scored = res["scored"]
    assert len(scored) == 12 and (scored["oracle"] >= scored["baseline"]).all()
    assert (scored["margin_oracle"] >= scored["margin_rule"]).all()
    fit = json.loads((tmp_path / "steer_fit.json").read_text())
    assert len(fit["fit_loss"]) == 3 and len(fit["A"]) == 3
    # resume: N = 4 is redone, N = 3 and the fit are read back; same numbers
    (tmp_path / "scored_n4.parquet").unlink()
    kept = (tmp_path / "scored_n3.parquet").stat().st_mtime_ns
    again = steering_study(organism, config, run_dir=tmp_path)
    assert (tmp_path / "scored_n3.parquet").stat().st_mtime_ns == kept
    pd.testing.assert_frame_equal(again["scored"], scored, atol=1e-4)
    assert again["summary"]["dev_accuracy"] == s["dev_accuracy"]


@pytest.mark.pack
def test_cached_end_pass_matches_a_full_forward_on_smollm2(smollm2):
    """RoPE and grouped-query attention: the cached END pass keeps each prompt's own positions."""
    prompts = laundry_list_prompts(smollm2.tokenizer, n_items=[2, 6], n_per_n=3, seed=1, split="test")
    batch = laundry_batch(smollm2, prompts)
    assert batch.lengths.unique().numel() > 1  # right padding is exercised
    rec = record_end(smollm2, batch)
    basis = _basis(smollm2, 8, 0)
    steer = EndSteer(smollm2, batch, basis, 21)
    assert torch.allclose(steer.base, rec.item_logits.nan_to_num(nan=-torch.inf), atol=1e-3)
    assert torch.allclose(steer.coords, rec.resid_pre[21] @ basis, atol=1e-3)
    assert torch.allclose(steer.item_logits(steer.coords), steer.base, atol=1e-3)
