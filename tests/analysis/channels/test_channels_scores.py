"""Component- and head-level composition scores: closed forms (U1), energy identity (U2), TL agreement (U3)."""

import numpy as np
import pytest
import torch
from transformer_lens import FactoredMatrix
from transformer_lens.utilities.matrix import composition_scores

from analysis.channels import (
    MODES,
    component_score_tensor,
    component_scores,
    direction_scores,
    head_composition_scores,
    receiver_matrix,
)
from analysis.channels.scores import SCORE_COLUMNS, receiver_readers
from probes.errors import InputError
from probes.head_weights import HeadWeights

L, H, D, DH = 3, 4, 32, 8


@pytest.fixture(scope="module")
def weights():
    return HeadWeights.random(L, H, D, DH, generator=torch.Generator().manual_seed(0))


def later(n_layers=L):
    """[L, 1, L, 1] mask: sender layer < receiver layer."""
    idx = torch.arange(n_layers)
    return (idx[:, None] < idx[None, :])[:, None, :, None]


def test_receiver_matrices_follow_tl_conventions(weights):
    assert torch.allclose(receiver_matrix(weights, "Q").AB, weights.QK.AB)
    assert torch.allclose(receiver_matrix(weights, "K").AB, weights.QK.AB.transpose(-1, -2))
    assert torch.allclose(receiver_matrix(weights, "v").AB, weights.OV.AB)


@pytest.mark.parametrize("mode", MODES)
def test_reader_reproduces_receiver_gram(weights, mode):
    P, norm = receiver_readers(weights, mode)
    R = receiver_matrix(weights, mode).AB
    assert torch.allclose(P @ P.transpose(-1, -2), R @ R.transpose(-1, -2), atol=1e-5)
    assert torch.allclose(norm, R.flatten(-2).norm(dim=-1), rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_component_closed_form_equals_rank1_factored_and_dense(weights, mode):
    """U1: CS_i from the closed form == TL composition_scores of the rank-1 FactoredMatrix == dense ratio."""
    C = component_score_tensor(weights, mode)
    U, S, V = weights.ov_svd
    R = receiver_matrix(weights, mode)
    mask = later()
    for i in range(DH):
        rank1 = FactoredMatrix(
            U[..., i : i + 1] * S[..., None, i : i + 1], V[..., i : i + 1].transpose(-1, -2)
        )
        tl = composition_scores(rank1, R, broadcast_dims=True)  # [L, H, L, H]
        assert (torch.where(mask, tl, 0.0) - C[:, :, i]).abs().max() < 1e-5
    Rd = R.AB
    for sl, sh, i, rl, rh in [(0, 1, 0, 1, 2), (0, 3, 7, 2, 0), (1, 0, 4, 2, 3)]:
        comp = S[sl, sh, i] * torch.outer(U[sl, sh, :, i], V[sl, sh, :, i])
        dense = (comp @ Rd[rl, rh]).norm() / (comp.norm() * Rd[rl, rh].norm())
        closed = (Rd[rl, rh].T @ V[sl, sh, :, i]).norm() / Rd[rl, rh].norm()
        assert abs(C[sl, sh, i, rl, rh] - dense) < 1e-5
        assert abs(C[sl, sh, i, rl, rh] - closed) < 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_head_scores_equal_tl_composition_scores(weights, mode):
    """U3 (tensors): TL's composition_scores(OV, right) with TL's layer mask."""
    ours = head_composition_scores(weights, mode)
    tl = composition_scores(weights.OV, receiver_matrix(weights, mode), broadcast_dims=True)
    assert ours.shape == (L, H, L, H)
    assert (torch.where(later(), tl, 0.0) - ours).abs().max() < 1e-5
    assert torch.all(ours[~later().expand(L, H, L, H)] == 0)
    assert ours.min() >= 0 and ours.max() <= 1


@pytest.mark.parametrize("mode", MODES)
def test_energy_identity(weights, mode):
    """U2: CS² = Σ s_j² CS_j² / Σ s_j²."""
    S = weights.ov_svd.S
    C = component_score_tensor(weights, mode)
    head = head_composition_scores(weights, mode)
    rhs = ((S**2)[..., None, None] * C**2).sum(2) / (S**2).sum(-1)[..., None, None]
    m = later().expand(L, H, L, H)
    rel = (head[m] ** 2 - rhs[m]).abs() / head[m] ** 2
    assert rel.max() < 1e-5


def test_direction_scores_match_components_and_are_scale_free(weights):
    V = weights.ov_svd.V
    dirs = torch.stack([V[0, 1, :, 2], V[1, 3, :, 5]])
    got = direction_scores(3.0 * dirs, weights, "K")
    C = component_score_tensor(weights, "K")
    assert torch.allclose(got[0, 1:], C[0, 1, 2, 1:], atol=1e-6)
    assert torch.allclose(got[1, 2:], C[1, 3, 5, 2:], atol=1e-6)
    with pytest.raises(InputError, match="non-zero"):
        direction_scores(torch.zeros(1, D), weights, "Q")
    with pytest.raises(InputError, match="d_model"):
        direction_scores(torch.ones(2, D + 1), weights, "Q")


def test_component_scores_frame(weights):
    df = component_scores(weights)
    assert list(df.columns) == SCORE_COLUMNS
    n_pairs = sum(H * H for ls in range(L) for lr in range(ls + 1, L))
    assert len(df) == 3 * n_pairs * DH
    assert (df["receiver_layer"] > df["sender_layer"]).all()
    assert list(df["mode"].unique()) == ["Q", "K", "V"]
    S = weights.ov_svd.S.numpy()
    assert np.allclose(df["singular_value"], S[df.sender_layer, df.sender_head, df.component])
    for mode in MODES:
        sub = df[df["mode"] == mode]
        T = component_score_tensor(weights, mode).numpy()
        idx = (sub.sender_layer, sub.sender_head, sub.component, sub.receiver_layer, sub.receiver_head)
        assert np.allclose(sub["score"], T[idx])
    assert component_scores(weights, ["v"])["mode"].unique().tolist() == ["V"]
    with pytest.raises(InputError, match="mode"):
        component_scores(weights, ["X"])


def test_zero_receiver_gives_nan_not_error():
    w = HeadWeights.random(2, 2, 16, 4, generator=torch.Generator().manual_seed(3))
    W_Q = w.W_Q.clone()
    W_Q[1, 0] = 0
    z = HeadWeights(W_Q, w.W_K, w.W_V, w.W_O)
    C = component_score_tensor(z, "Q")
    assert torch.isnan(C[0, :, :, 1, 0]).all() and torch.isfinite(C[0, :, :, 1, 1]).all()


def test_random_baselines_match_note():
    """U5: d_model=768, d_head=64 Gaussian weights: head-level ≈ 0.036, component mean ≈ 0.036, max of 64 ≈ 0.044."""
    w = HeadWeights.random(2, 3, 768, 64, generator=torch.Generator().manual_seed(4))
    head = head_composition_scores(w, "Q")[0, :, 1, :]
    comps = component_score_tensor(w, "Q")[0, :, :, 1, :]  # [sender head, component, receiver head]
    assert abs(float(head.mean()) - 0.0361) < 0.001
    assert abs(float(comps.mean()) - 0.036) < 0.002
    assert abs(float(comps.max(dim=1).values.mean()) - 0.044) < 0.003
