"""Steering in the positional subspace: a zero change is the identity, targets land where they are set,
the dev-fitted targets and Wilson intervals are what they say, and the study runs end to end."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from analysis.interventions import orthonormalize
from analysis.laundry.channel import laundry_batch, record_end
from analysis.laundry.pipeline import SteerConfig, steering_study
from analysis.laundry.steering import fit_targets, mover_attention, steer, steering_table, targets_for, wilson
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


def test_zero_change_is_the_identity(organism, batch):
    basis = orthonormalize(torch.randn(organism.info.d_model, 3, generator=torch.Generator().manual_seed(0)))
    base = record_end(organism, batch, batch_size=7)
    same = (base.resid_pre[LAYER].double() @ basis.double()).float()  # set to where they already are
    rec = steer(organism, batch, basis, LAYER, same, batch_size=7)
    assert torch.allclose(rec.item_logits, base.item_logits, atol=1e-5, equal_nan=True)
    assert torch.allclose(rec.resid_final, base.resid_final, atol=1e-5)
    assert torch.equal(steer(organism, batch, basis, LAYER, None, batch_size=7).item_logits.nan_to_num(),
                       base.item_logits.nan_to_num())  # fmt: skip


def test_targets_are_set_at_end_only(organism, batch):
    basis = orthonormalize(torch.randn(organism.info.d_model, 2, generator=torch.Generator().manual_seed(1)))
    targets = torch.randn(len(batch.prompts), 2, generator=torch.Generator().manual_seed(2))
    base = record_end(organism, batch, batch_size=8)
    rec = steer(organism, batch, basis, LAYER, targets, batch_size=8)
    assert torch.allclose(rec.resid_pre[LAYER] @ basis, targets, atol=1e-4)
    # the complement of the subspace is untouched at END, and earlier layers are not touched at all
    P = torch.eye(basis.shape[0]) - basis @ basis.T
    assert torch.allclose(rec.resid_pre[LAYER] @ P, base.resid_pre[LAYER] @ P, atol=1e-4)
    assert torch.allclose(rec.resid_pre[LAYER - 1], base.resid_pre[LAYER - 1])
    assert not torch.allclose(rec.item_logits.nan_to_num(), base.item_logits.nan_to_num())
    with pytest.raises(InputError, match="targets must be"):
        steer(organism, batch, basis, LAYER, targets[:3])
    assert mover_attention(rec, batch, [(2, 0), (1, 1)]).shape == (len(batch.prompts),)


def test_fitted_targets_and_push_factor():
    coords = pd.DataFrame({"n_items": 2, "position": [0, 0, 1, 1], "correct": True,
                           "c0": [1.0, 3.0, -1.0, -1.0], "c1": [0.0, 0.0, 2.0, 4.0]})  # fmt: skip
    fitted = fit_targets(coords)
    mu, centre = fitted[2]
    assert mu.tolist() == [[2.0, 0.0], [-1.0, 3.0]] and centre.tolist() == [0.5, 1.5]
    prompts = pd.DataFrame({"n_items": [2, 2]})
    assert targets_for(prompts, [0, 1], fitted, 0.0).tolist() == [[2.0, 0.0], [-1.0, 3.0]]
    assert targets_for(prompts, [0, 1], fitted, 1.0).tolist() == [[3.5, -1.5], [-2.5, 4.5]]
    with pytest.raises(InputError, match="miss some positions"):
        fit_targets(coords[coords.position == 0])


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


def test_steering_study_end_to_end(organism):
    config = SteerConfig(n_items=(3, 4), per_n=6, fit_per_n=8, locate_per_n=8, n_null=50, gammas=(0.0, 1.0))
    res = steering_study(organism, config)
    by_n = res["by_n"]
    assert set(by_n["condition"]) == {"baseline", "position", "decoded", "oracle"}
    assert (by_n["n_prompts"] == 6).all()
    s = res["summary"]
    assert s["gamma"]["position"] in (0.0, 1.0) and set(s["max_gain_pp"]) == {"position", "decoded", "oracle"}
    assert s["layer"] == min(m[0] for m in s["movers"])
    scored = res["scored"]
    assert len(scored) == 12 and set(scored["oracle_choice"]) <= {0, 1, 2}
    # where the oracle kept the unsteered point (candidate 0), its answer is the baseline's
    kept = scored[scored["oracle_choice"] == 0]
    assert (kept["oracle"] == kept["baseline"]).all()
    if s["gamma"]["position"] == 0.0:  # the γ=0 candidate is the position rule's own pass
        chose = scored[scored["oracle_choice"] == 1]
        assert (chose["oracle"] == chose["position"]).all()
