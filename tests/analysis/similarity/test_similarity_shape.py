"""Procrustes and generalized shape metrics (reference note §5.1 item 4, netrep semantics)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes, subspace_angles
from scipy.stats import ortho_group

from analysis.similarity import procrustes_distance, procrustes_similarity, shape_distance
from probes.errors import InputError


def _rep(seed: int, n: int = 40, d: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ np.diag(np.linspace(0.3, 2.0, d))


def test_zero_for_rotated_scaled_shifted_copies():
    x = _rep(0)
    q = ortho_group.rvs(5, random_state=1)
    y = 3.0 * x @ q - 2.0
    assert procrustes_distance(x, y) == pytest.approx(0.0, abs=1e-6)
    assert procrustes_similarity(x, y) == pytest.approx(1.0, abs=1e-12)
    for alpha in (0.0, 0.5, 1.0):
        assert shape_distance(x, y, alpha=alpha) == pytest.approx(0.0, abs=1e-6)
    # Zero-padding a copy (different widths) does not change the shape.
    assert procrustes_distance(x, np.column_stack([y, np.zeros((40, 3))])) == pytest.approx(0.0, abs=1e-6)


def test_matches_scipy_orthogonal_procrustes():
    x, y = _rep(2), _rep(3)
    xu = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0))
    yu = (y - y.mean(0)) / np.linalg.norm(y - y.mean(0))
    r, _ = orthogonal_procrustes(yu, xu)
    assert procrustes_distance(x, y) == pytest.approx(np.linalg.norm(xu - yu @ r), abs=1e-12)
    assert procrustes_distance(x, y) == pytest.approx(procrustes_distance(y, x), abs=1e-12)


def test_whitening_alpha_zero_ignores_invertible_maps_but_procrustes_does_not():
    x = _rep(4, n=60)
    w = np.random.default_rng(5).normal(size=(5, 5))
    y = x @ w + 1.5
    assert shape_distance(x, y, alpha=0.0) == pytest.approx(0.0, abs=1e-6)
    assert shape_distance(x, y, alpha=1.0) > 0.05
    assert shape_distance(x, y, alpha=1.0) > shape_distance(x, y, alpha=0.5) > 1e-4


def test_angular_procrustes_is_mean_cosine_of_principal_angles():
    rng = np.random.default_rng(6)
    qx, _ = np.linalg.qr(rng.normal(size=(50, 4)) - 0.0)
    qx, _ = np.linalg.qr(qx - qx.mean(0))  # orthonormal and centred
    qy, _ = np.linalg.qr(rng.normal(size=(50, 4)))
    qy, _ = np.linalg.qr(qy - qy.mean(0))
    expected = np.arccos(np.mean(np.cos(subspace_angles(qx, qy))))
    assert shape_distance(qx, qy, alpha=1.0) == pytest.approx(expected, abs=1e-10)
    assert shape_distance(qx, qy, alpha=1.0) == pytest.approx(
        np.arccos(procrustes_similarity(qx, qy)), abs=1e-10
    )


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_triangle_inequality_and_symmetry(alpha):
    reps = [_rep(10 + i, n=30, d=d) for i, d in enumerate([3, 4, 6, 5, 8])]
    dist = {(i, j): shape_distance(reps[i], reps[j], alpha=alpha) for i in range(5) for j in range(5)}
    for i, j in itertools.combinations(range(5), 2):
        assert dist[i, j] == pytest.approx(dist[j, i], abs=1e-10)
    for i, j, k in itertools.permutations(range(5), 3):
        assert dist[i, k] <= dist[i, j] + dist[j, k] + 1e-10
    assert all(0.0 <= v <= np.pi / 2 + 1e-12 for v in dist.values())


def test_scale_invariance_for_partial_whitening():
    x, y = _rep(20), _rep(21)
    assert shape_distance(7.0 * x, y, alpha=0.5) == pytest.approx(shape_distance(x, y, alpha=0.5), abs=1e-12)


def test_wide_inputs_use_the_same_formula():
    rng = np.random.default_rng(22)
    x, y = rng.normal(size=(12, 40)), rng.normal(size=(12, 30))
    xu = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0))
    yu = (y - y.mean(0)) / np.linalg.norm(y - y.mean(0))
    expected = np.linalg.svd(xu.T @ yu, compute_uv=False).sum()
    assert procrustes_similarity(x, y) == pytest.approx(expected, abs=1e-12)
    assert shape_distance(x, y, alpha=1.0) == pytest.approx(np.arccos(expected), abs=1e-8)


def test_shape_errors():
    x = _rep(23)
    with pytest.raises(InputError, match="alpha"):
        shape_distance(x, x, alpha=1.5)
    with pytest.raises(InputError, match="constant"):
        procrustes_distance(np.ones((40, 2)), x)
    with pytest.raises(InputError, match="constant"):
        shape_distance(x, np.ones((40, 2)), alpha=0.0)
