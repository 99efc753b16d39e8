"""RDMs and RSA (reference note §5.1): self-similarity, agreement with scipy, ties, guard rails."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.spatial.distance import pdist, squareform
from scipy.stats import ortho_group

from analysis.similarity import compare_rdms, rdm, rsa
from probes.errors import InputError


def _reps(seed: int = 0, n: int = 25):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = np.tanh(x @ rng.normal(size=(6, 4))) + 0.3 * rng.normal(size=(n, 4))
    return x, y


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "sqeuclidean"])
@pytest.mark.parametrize("method", ["spearman", "pearson", "kendall"])
def test_rsa_of_a_representation_with_itself_is_one(metric, method):
    x, _ = _reps()
    assert rsa(x, x, rdm_metric=metric, method=method) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    "metric,scipy_metric",
    [("correlation", "correlation"), ("euclidean", "euclidean"), ("sqeuclidean", "sqeuclidean")],
)
def test_rdm_matches_scipy_pdist(metric, scipy_metric):
    x, _ = _reps(1)
    d = rdm(x, metric)
    assert isinstance(d, torch.Tensor) and d.shape == (25, 25)
    assert np.allclose(d.numpy(), squareform(pdist(x, scipy_metric)), atol=1e-10)
    assert torch.equal(d, d.T) and torch.all(d.diagonal() == 0)


def test_comparisons_match_scipy_including_ties():
    x, y = _reps(2)
    va, vb = pdist(x, "correlation"), pdist(y, "correlation")
    da, db = rdm(x), rdm(y)
    assert rsa(x, y) == pytest.approx(scipy.stats.spearmanr(va, vb).statistic, abs=1e-12)
    assert rsa(x, y, method="pearson") == pytest.approx(scipy.stats.pearsonr(va, vb).statistic, abs=1e-12)
    assert rsa(x, y, method="kendall") == pytest.approx(scipy.stats.kendalltau(va, vb).statistic, abs=1e-12)
    assert compare_rdms(da, db) == pytest.approx(rsa(x, y), abs=1e-15)
    # Heavily tied (integer) RDMs: average ranks, as scipy.
    rng = np.random.default_rng(3)
    ta = squareform(rng.integers(0, 4, size=300).astype(float))
    tb = squareform(rng.integers(0, 3, size=300).astype(float))
    ua, ub = squareform(ta, checks=False), squareform(tb, checks=False)
    assert compare_rdms(ta, tb) == pytest.approx(scipy.stats.spearmanr(ua, ub).statistic, abs=1e-12)
    assert compare_rdms(ta, tb, "kendall") == pytest.approx(
        scipy.stats.kendalltau(ua, ub).statistic, abs=1e-12
    )


def test_euclidean_rsa_invariant_to_rotation_and_shift():
    x, y = _reps(4)
    q = ortho_group.rvs(6, random_state=0)
    assert rsa(x @ q + 3.0, y, rdm_metric="euclidean") == pytest.approx(
        rsa(x, y, rdm_metric="euclidean"), abs=1e-12
    )


def test_rsa_guard_rails():
    x, y = _reps(5)
    flat = x.copy()
    flat[3] = 2.0  # a pattern constant across features has no correlation distance
    flat[5] = 0.1  # (0.1 is not exact in binary: centring leaves rounding residue)
    with pytest.raises(InputError, match=r"constant across features \(rows \[3, 5\]\)"):
        rdm(flat)
    with pytest.raises(InputError, match="constant across features"):
        rdm(np.zeros((4, 3)))
    rdm(flat, "euclidean")  # fine for distances
    with pytest.raises(InputError, match="constant"):
        compare_rdms(np.ones((5, 5)) - np.eye(5), rdm(x[:5]))
    with pytest.raises(InputError, match="same n"):
        compare_rdms(rdm(x[:5]), rdm(x[:6]))
    with pytest.raises(InputError, match="square"):
        compare_rdms(x, x)
    with pytest.raises(InputError, match="at least 3"):
        rsa(x[:2], y[:2])
    with pytest.raises(InputError, match="metric"):
        rdm(x, "cityblock")
    with pytest.raises(InputError, match="method"):
        rsa(x, y, method="cosine")
