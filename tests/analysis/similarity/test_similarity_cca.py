"""CCA, SVCCA, PWCCA: exact values and guard rails (reference note §4.5, §4.6, §5.1 items 1 and 6)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.similarity import canonical_correlations, cca_similarity, linear_cka, pwcca, svcca
from probes.errors import InputError


def _views(seed: int = 0, n: int = 300, dx: int = 6, dy: int = 4, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    x = z @ rng.normal(size=(3, dx)) + noise * rng.normal(size=(n, dx))
    y = z @ rng.normal(size=(3, dy)) + noise * rng.normal(size=(n, dy))
    return x, y


def _qr_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Textbook CCA: QR of each centred view, singular values of Q_x^T Q_y."""
    qx, _ = np.linalg.qr(x - x.mean(0))
    qy, _ = np.linalg.qr(y - y.mean(0))
    return np.linalg.svd(qx.T @ qy, compute_uv=False)


def test_invertible_map_and_identity_give_all_ones():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 10))
    a = rng.normal(size=(10, 10))
    assert abs(np.linalg.det(a)) > 1e-3
    for y in (x, x @ a, x @ a + 7.0):
        rho = canonical_correlations(x, y)
        assert rho.shape == (10,)
        assert np.allclose(rho, 1.0, atol=1e-10)
    # A 3-d linear image of x: exactly three canonical correlations of 1.
    assert np.allclose(canonical_correlations(x, x @ rng.normal(size=(10, 3))), 1.0, atol=1e-10)


def test_matches_qr_reference_and_is_sorted_in_unit_interval():
    x, y = _views(2)
    rho = canonical_correlations(x, y)
    assert np.allclose(rho, _qr_reference(x, y), atol=1e-12)
    assert np.all(np.diff(rho) <= 1e-15) and rho.min() >= 0 and rho.max() <= 1
    assert cca_similarity(x, y) == pytest.approx(rho.mean(), abs=1e-15)
    assert cca_similarity(x, y, summary="r2") == pytest.approx((rho**2).mean(), abs=1e-15)
    assert np.allclose(canonical_correlations(y, x), rho, atol=1e-12)


def test_r2_cca_equals_cka_of_whitened_views():
    """Kornblith et al. 2019 eq. 11: R^2_CCA = CKA(Q_X, Q_Y) * sqrt(p2 / p1) for p1 <= p2."""
    x, y = _views(3, dx=4, dy=7)
    xc, yc = x - x.mean(0), y - y.mean(0)

    def orth(m):
        w, v = np.linalg.eigh(m.T @ m)
        return m @ v @ np.diag(w**-0.5) @ v.T

    p1, p2 = 4, 7
    r2 = (canonical_correlations(x, y) ** 2).sum() / p1
    assert r2 == pytest.approx(linear_cka(orth(xc), orth(yc)) * np.sqrt(p2 / p1), abs=1e-12)


@pytest.mark.parametrize("n", [5, 10, 11, 13])
def test_n_not_above_dx_plus_dy_raises(n):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(n, 10)), rng.normal(size=(n, 3))
    with pytest.raises(InputError, match="degenerate"):
        canonical_correlations(x, y)
    with pytest.raises(InputError, match="degenerate"):
        pwcca(y, x)
    # The regularised fit is defined and stays in [0, 1].
    rho = canonical_correlations(x, y, reg=0.5)
    assert np.all((rho >= 0) & (rho <= 1 + 1e-12))


def test_n_just_above_dx_plus_dy_is_allowed():
    rng = np.random.default_rng(4)
    rho = canonical_correlations(rng.normal(size=(14, 10)), rng.normal(size=(14, 3)))
    assert rho.shape == (3,) and np.all(rho < 1.0 - 1e-6)


def test_ignoring_the_guard_would_give_trivial_ones():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 11)), rng.normal(size=(12, 3))  # independent, n = d + 1
    assert np.allclose(_qr_reference(x, y), 1.0)  # why the guard exists
    x, y = rng.normal(size=(13, 10)), rng.normal(size=(13, 4))  # n - 1 = 12 < dx + dy = 14
    assert np.sum(np.isclose(_qr_reference(x, y), 1.0)) == 2


def test_zero_variance_units_are_masked_not_nan():
    x, y = _views(6)
    x_dead = np.column_stack([x[:, :2], np.full(len(x), 3.0), x[:, 2:], np.zeros(len(x))])
    rho = canonical_correlations(x_dead, y)
    assert np.all(np.isfinite(rho))
    assert np.allclose(rho, canonical_correlations(x, y), atol=1e-12)
    assert pwcca(x_dead, y) == pytest.approx(pwcca(x, y), abs=1e-12)
    assert svcca(x_dead, y) == pytest.approx(svcca(x, y), abs=1e-12)
    # The guard counts only the varying units: n = 8 with 5 live + 10 dead units is fine.
    rng = np.random.default_rng(7)
    small = np.column_stack([rng.normal(size=(8, 5)), np.zeros((8, 10))])
    assert np.all(np.isfinite(canonical_correlations(small, rng.normal(size=(8, 2)))))
    with pytest.raises(InputError, match="constant"):
        canonical_correlations(np.ones((50, 3)), y[:50])


def test_regularisation_shrinks_towards_pls_and_zero_reg_is_plain_cca():
    x, y = _views(8, noise=2.0)
    assert np.allclose(canonical_correlations(x, y, reg=0.0), canonical_correlations(x, y), atol=0)
    first = [canonical_correlations(x, y, reg=r)[0] for r in (0.0, 0.3, 0.9)]
    assert first[0] >= first[1] - 1e-12 >= first[2] - 2e-12  # the plain CCA direction is the most correlated
    with pytest.raises(InputError, match="reg"):
        canonical_correlations(x, y, reg=1.0)


def test_svcca_keep_rules_and_rescue_when_n_below_d():
    rng = np.random.default_rng(9)
    n, d = 60, 100
    z = rng.normal(size=(n, 4))
    x = z @ rng.normal(size=(4, d)) + 0.01 * rng.normal(size=(n, d))
    y = z @ rng.normal(size=(4, 80)) + 0.01 * rng.normal(size=(n, 80))
    with pytest.raises(InputError):
        cca_similarity(x, y)
    assert svcca(x, y, keep=4) > 0.99
    assert svcca(x, y, keep=0.99) > 0.99  # 4 signal directions hold > 99% of the variance
    with pytest.raises(InputError, match="degenerate"):
        svcca(x, y, keep=1.0)  # keeping everything brings the degenerate case back
    with pytest.raises(InputError, match="keep"):
        svcca(x, y, keep=0.0)
    with pytest.raises(InputError, match="keep"):
        svcca(x, y, keep=True)
    with pytest.warns(UserWarning, match="rank"):
        svcca(x[:, :3], y, keep=5)
    # keep = all directions of full-rank data is plain CCA.
    a, b = _views(10)
    assert svcca(a, b, keep=1.0) == pytest.approx(cca_similarity(a, b), abs=1e-12)


def test_pwcca_weights_and_asymmetry():
    x, y = _views(11, dx=8, dy=5)
    rho = _qr_reference(x, y)
    # Independent reference: canonical variates of x from the QR route, weights = sum_j |<h_i, x_j>|.
    xc, yc = x - x.mean(0), y - y.mean(0)
    qx, _ = np.linalg.qr(xc)
    qy, _ = np.linalg.qr(yc)
    u, s, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    h = qx @ u
    a = np.abs(h.T @ xc).sum(1)
    assert pwcca(x, y) == pytest.approx((a * s).sum() / a.sum(), abs=1e-12)
    assert np.allclose(s, rho)
    back = pwcca(y, x)
    assert abs(pwcca(x, y) - back) > 1e-4  # asymmetric
    assert pwcca(x, y, symmetric=True) == pytest.approx(0.5 * (pwcca(x, y) + back), abs=1e-12)
    assert min(rho) - 1e-12 <= pwcca(x, y) <= max(rho) + 1e-12
    assert pwcca(x, x @ np.random.default_rng(0).normal(size=(8, 8))) == pytest.approx(1.0, abs=1e-10)
