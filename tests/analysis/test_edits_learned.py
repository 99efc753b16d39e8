"""Learned edits: the differentiable scales ≡ the saved spec as a weight edit (float64), identity at 1,
the WY factor's closed form, the proximal L1 step, config errors, Pareto flags."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from analysis.edits_learned import ComponentScales, EditLearnConfig, pareto_flags, wy_factor
from analysis.edits_learned.learn import _prox
from probes.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny64():
    from probes.testing import tiny_handle

    h = tiny_handle(seed=3)
    h.hf.double()
    return h


@pytest.fixture(scope="module")
def organism64():
    from probes.organism import load_organism

    return load_organism(dtype=torch.float64)


def test_wy_factor_is_the_product_of_the_rank1_updates():
    g = torch.Generator().manual_seed(0)
    V = torch.nn.functional.normalize(
        torch.randn(5, 9, generator=g, dtype=torch.float64), dim=-1
    )  # not orthogonal
    beta = torch.randn(5, generator=g, dtype=torch.float64)
    prod = torch.eye(9, dtype=torch.float64)
    for b, v in zip(beta, V, strict=True):
        prod = prod @ (torch.eye(9, dtype=torch.float64) + b * torch.outer(v, v))
    T = wy_factor(beta[None], (V @ V.T)[None])[0]
    assert torch.allclose(torch.eye(9, dtype=torch.float64) + V.T @ T @ V, prod, atol=1e-13, rtol=0)
    assert torch.equal(T, torch.triu(T))


def _logits(h, ids):
    with torch.no_grad():
        return h.hf(ids).logits


@pytest.mark.parametrize("which", ["tiny64", "organism64"])
def test_hook_equals_the_learned_spec_applied_as_a_weight_edit(which, request):
    """Random scales on many components (some exactly 1): hook forward == spec weight edit (float64)."""
    h = request.getfixturevalue(which)
    info = h.info
    cands = [
        (la, hd, c)
        for la in range(info.n_layers)
        for hd in (0, info.n_heads - 1)
        for c in range(0, info.d_head, 2)
    ]
    cs = ComponentScales(h, cands)
    g = torch.Generator().manual_seed(1)
    scales = 1 + 0.8 * torch.randn(len(cs), generator=g, dtype=torch.float64)
    scales[::3] = 1.0
    ids = torch.randint(6, info.vocab_size, (3, 11), generator=g)
    base = _logits(h, ids)
    with cs.attached(torch.ones(len(cs), dtype=torch.float64)):
        assert torch.equal(_logits(h, ids), base)  # scales = 1 is exactly the identity
    with cs.attached(scales):
        hooked = _logits(h, ids)
    spec = cs.to_spec(scales, tol=1e-9, note="test")
    assert len(spec.edits) == len(cs) - len(range(0, len(cs), 3))
    with spec.apply(h):
        edited = _logits(h, ids)
    assert (hooked - base).abs().max() > 1e-2  # the edit does something
    assert torch.allclose(hooked, edited, atol=1e-10, rtol=0)
    assert torch.equal(_logits(h, ids), base)  # undone exactly


@pytest.mark.parametrize("which", ["tiny64", "organism64"])
def test_qk_scales_hook_equals_the_spec_applied_as_a_weight_edit(which, request):
    """OV and QK scales together (QK on every layer's first and last head, GQA on the tiny Llama): the
    hook forward pass == the saved spec applied as a weight edit (float64); scales = 1 are the identity."""
    h = request.getfixturevalue(which)
    info = h.info
    heads = [(la, hd) for la in range(info.n_layers) for hd in (0, info.n_heads - 1)]
    ov = [(la, hd, c) for la, hd in heads for c in (0, 1)]
    qk = [(la, hd, c) for la, hd in heads for c in range(info.d_head)]
    cs = ComponentScales(h, ov, qk=qk)
    assert cs.kinds == ["ov"] * len(ov) + ["qk"] * len(qk)
    g = torch.Generator().manual_seed(2)
    scales = 1 + 0.8 * torch.randn(len(cs), generator=g, dtype=torch.float64)
    scales[::4] = 1.0
    ids = torch.randint(6, info.vocab_size, (3, 11), generator=g)
    base = _logits(h, ids)
    with cs.attached(torch.ones(len(cs), dtype=torch.float64)):
        assert torch.equal(_logits(h, ids), base)
    only_qk = scales.clone()
    only_qk[: len(ov)] = 1.0
    with cs.attached(only_qk):
        assert (_logits(h, ids) - base).abs().max() > 1e-5  # the QK scales alone change the model (>> 1e-10)
    with cs.attached(scales):
        hooked = _logits(h, ids)
    spec = cs.to_spec(scales, tol=1e-9)
    assert {e.kind for e in spec.edits} == {"ov", "qk"}
    with spec.apply(h):
        edited = _logits(h, ids)
    assert torch.allclose(hooked, edited, atol=1e-10, rtol=0)
    assert torch.equal(_logits(h, ids), base)


def test_spec_round_trip_and_other_model_is_refused(organism64, tmp_path):
    from probes.edits import EditSpec
    from probes.testing import tiny_handle

    cs = ComponentScales(organism64, [(1, 3, 1), (2, 1, 0), (2, 1, 4)])
    scales = torch.tensor([1.0, 2.5, 1.01], dtype=torch.float64)
    assert cs.to_spec(torch.ones(3, dtype=torch.float64), 0.02) is None
    spec = cs.to_spec(scales, 0.02)
    assert [(e.layer, e.head, e.component, e.alpha) for e in spec.edits] == [(2, 1, 0, 2.5)]
    loaded = EditSpec.load(spec.save(tmp_path / "point.json"))
    assert torch.equal(loaded.vectors, spec.vectors) and loaded.edits == spec.edits
    with pytest.raises(InputError, match="d_model=40"):
        loaded.apply(tiny_handle())


def test_gradient_reaches_only_the_scales(organism64):
    cs = ComponentScales(organism64, [(1, 3, 1), (2, 1, 0)])
    scales = cs.ones()
    ids = torch.randint(6, organism64.info.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    with cs.attached(scales):
        organism64.hf(ids).logits[:, -1].logsumexp(-1).sum().backward()
    assert scales.grad is not None and scales.grad.abs().min() > 0


def test_prox_pulls_towards_one_and_clips():
    s = torch.tensor([1.0, 1.05, 0.9, 3.0, 9.0, -5.0])
    _prox(s, 0.1, -2.0, 4.0)
    assert s.tolist() == pytest.approx([1.0, 1.0, 1.0, 2.9, 4.0, -2.0])


def test_config_errors():
    with pytest.raises(InputError, match="l1 must be finite"):
        EditLearnConfig(l1=())
    with pytest.raises(InputError, match="lm_weight must be finite"):
        EditLearnConfig(lm_weight=(-1.0,))
    with pytest.raises(InputError, match="steps must be >= 1"):
        EditLearnConfig(steps=0)
    with pytest.raises(InputError, match="scale_min < 1 < scale_max"):
        EditLearnConfig(scale_max=0.5)
    with pytest.raises(InputError, match="no candidates"):
        EditLearnConfig(top_k=0, components=())
    with pytest.raises(InputError, match="test_n"):
        EditLearnConfig(test_n=(1, 2))


def test_pareto_flags():
    df = pd.DataFrame(
        {
            "mean_gain_pp": [5.0, 3.0, 5.0, 8.0, 1.0],
            "lm_loss_rel_change_pct": [1.0, 2.0, 1.0, 4.0, 0.1],
            "n_edited": [2, 3, 4, 2, 9],
        }
    )
    assert pareto_flags(df) == [True, False, False, True, True]
