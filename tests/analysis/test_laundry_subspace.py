"""The positional subspace: a planted k-dimensional channel is recovered with its known dimension, planted
positional coordinates crowd as N grows, and the order-sensitivity correlation finds a planted link."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.linalg import subspace_angles

from analysis.laundry.figures import crowding_figure, subspace_figure
from analysis.laundry.pipeline import correct_items, write_directions
from analysis.laundry.subspace import (
    coordinate_frame,
    crowding,
    crowding_correlation,
    decodability,
    effective_dimension,
    head_angles,
    subspace_basis,
)
from probes.errors import InputError
from probes.head_weights import HeadWeights

D = 64


def _planted(k: int, heads: int = 4, per_head: int = 2, noise: float = 1e-4, seed: int = 0):
    """``heads`` blocks of ``per_head`` unit directions inside a random ``k``-dim subspace (plus noise)."""
    g = torch.Generator().manual_seed(seed)
    P = torch.linalg.qr(torch.randn(D, k, generator=g, dtype=torch.float64))[0]
    blocks = {f"h{i}": P @ torch.randn(k, per_head, generator=g, dtype=torch.float64) for i in range(heads)}
    blocks = {
        n: b + noise * torch.randn(b.shape, generator=g, dtype=torch.float64) for n, b in blocks.items()
    }
    return P, blocks


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_planted_channel_recovered_with_its_dimension(k):
    P, blocks = _planted(k, heads=6, per_head=4)  # 24 directions, spread over the k planted dimensions
    V = torch.cat(list(blocks.values()), dim=1)
    dim = effective_dimension(V)
    assert dim["m"] == 24 and dim["k95"] == k and dim["k90"] <= k
    assert sum(dim["energy"][:k]) > 0.98  # the rest is the noise
    B = subspace_basis(V)  # 95 % of the energy
    assert B.shape == (D, k)
    assert np.degrees(subspace_angles(B.double().numpy(), P.numpy())).max() < 0.5
    assert torch.allclose(B.T @ B, torch.eye(k), atol=1e-5)


def test_head_angles_zero_inside_one_channel_and_ninety_across_orthogonal_ones():
    _, blocks = _planted(2, heads=2, per_head=2, noise=0.0)
    same = head_angles({n: b.float() for n, b in blocks.items()})
    assert same["max_angle"].iloc[0] < 0.1
    eye = torch.eye(D)
    other = head_angles({"a": eye[:, :2], "b": eye[:, 2:4], "c": eye[:, [0, 5]]})
    assert other.set_index(["head_a", "head_b"]).loc[("a", "b"), "min_angle"] == pytest.approx(90)
    assert other.set_index(["head_a", "head_b"]).loc[("a", "c"), "min_angle"] == pytest.approx(0, abs=1e-4)


def test_bad_directions_are_refused():
    with pytest.raises(InputError, match="non-zero"):
        effective_dimension(torch.zeros(D, 2))
    with pytest.raises(InputError, match="dimension k must be"):
        subspace_basis(torch.randn(D, 2), k=3)


def _planted_coords(ns, per_n=60, noise=0.35, seed=0) -> pd.DataFrame:
    """Answer positions written on a circle in a 3D subspace of R^D (fixed radius, so more positions
    crowd it as N grows); the model is wrong more often where neighbours overlap (planted link)."""
    rng = np.random.default_rng(seed)
    P = np.linalg.qr(rng.normal(size=(D, 3)))[0]
    rows, xs = [], []
    for n in ns:
        for j in range(per_n):
            p = j % n
            angle = 2 * np.pi * p / n
            c = np.array([np.cos(angle), np.sin(angle), 0.0]) + noise * rng.normal(size=3)
            xs.append(P @ c + 0.01 * rng.normal(size=D))
            rows.append({"n_items": n, "position": p})
    prompts = pd.DataFrame(rows)
    return prompts, torch.tensor(np.array(xs)), torch.tensor(P)


def test_crowding_planted_positions_decode_worse_as_n_grows():
    prompts, x, P = _planted_coords([2, 4, 8, 12])
    coords = coordinate_frame(x, P.float(), prompts, [True] * len(prompts))
    dec = decodability(coords).set_index("n_items")["decode_accuracy"]
    assert dec[2] > 0.95 and dec[4] > 0.9
    assert dec[12] < dec[4] - 0.2 and dec[12] > 1 / 12 + 0.1  # crowded, still above chance
    assert list(coords.columns[:3]) == ["n_items", "position", "correct"]


def test_order_sensitivity_finds_a_planted_link_and_none_without_it():
    prompts, x, P = _planted_coords([3, 5, 7, 9], per_n=90, noise=0.2)
    coords = coordinate_frame(x, P.float(), prompts, [True] * len(prompts))
    overlap = crowding(coords).set_index(["n_items", "position"])["overlap"]
    rng = np.random.default_rng(1)
    key = list(zip(prompts["n_items"], prompts["position"], strict=True))
    # planted: the probability of a correct answer falls with the position's overlap with its neighbours
    p_ok = np.array([1 - 0.9 * overlap[k] / overlap.max() for k in key])
    linked = coords.assign(correct=rng.random(len(coords)) < p_ok)
    corr = crowding_correlation(linked, n_boot=200).set_index("correlation")
    assert corr.loc["pooled", "spearman_rho"] < -0.5 and corr.loc["pooled", "ci_high"] < 0
    unlinked = coords.assign(correct=rng.random(len(coords)) < 0.6)
    corr = crowding_correlation(unlinked, n_boot=200).set_index("correlation")
    assert corr.loc["within_n", "ci_low"] < 0 < corr.loc["within_n", "ci_high"]


def test_write_directions_are_the_ov_components_outputs():
    w = HeadWeights.random(2, 3, 16, 4)
    comps = pd.DataFrame({"sender_layer": [0, 0, 1], "sender_head": [2, 2, 0], "component": [0, 3, 1]})
    V, per_head = write_directions(w, comps)
    assert V.shape == (16, 3) and set(per_head) == {"L0.H2", "L1.H0"}
    U, S, _ = w.ov_svd
    for col, (layer, head, c) in enumerate(comps.itertuples(index=False)):
        out = U[layer, head, :, c] @ w.OV.AB[layer, head]  # reading along u_c writes s_c v_c
        assert torch.allclose(out / S[layer, head, c], V[:, col], atol=1e-4)


def test_correct_items_and_figures():
    prompts = pd.DataFrame({"n_items": [2, 3], "position": [1, 0]})
    logits = torch.tensor([[0.0, 1.0, float("nan")], [1.0, 1.0, 0.0]])
    assert correct_items(logits, prompts) == [True, False]  # a tie is wrong
    prompts, x, P = _planted_coords([3], per_n=9)
    coords = coordinate_frame(x, P.float(), prompts, [True, False, True] * 3)
    fig = subspace_figure(coords, 3)
    assert [t.name for t in fig.data] == ["position 0", "position 1", "position 2"]
    for pos, trace in enumerate(fig.data):
        wrong = int((~coords.loc[coords["position"] == pos, "correct"]).sum())
        symbols = list(trace.marker.symbol)
        assert symbols.count("cross") == wrong  # the second prompt (position 1) was wrong
        assert symbols == sorted(symbols)  # "circle" < "cross": correct answers first, as in the legend
    with pytest.raises(InputError, match="no prompts with N = 5"):
        subspace_figure(coords, 5)
    assert len(crowding_figure(decodability(coords, n_splits=3)).data) == 2
