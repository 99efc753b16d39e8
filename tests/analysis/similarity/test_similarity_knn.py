"""Mutual k-NN and CKNNA (Huh et al. 2024; reference note §4.9, §5.1 item 7)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from analysis.similarity import cknna, linear_cka, mutual_knn, mutual_knn_chance
from probes.errors import InputError


def test_mutual_knn_identity_and_invariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16))
    q = ortho_group.rvs(16, random_state=1)
    assert mutual_knn(x, x, k=10) == 1.0
    assert mutual_knn(x, 5.0 * x @ q, k=10) == 1.0  # cosine neighbours survive rotation and scaling
    # L2-normalised features: the Euclidean neighbours equal the cosine ones.
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert mutual_knn(xn, xn @ q, k=10, metric="euclidean") == 1.0


def test_mutual_knn_hand_example():
    x = np.array([[0.0], [1.0], [3.0], [10.0], [12.0]])
    y = np.array([[0.0], [5.0], [6.0], [20.0], [30.0]])
    # 1-NN in x: 0->1, 1->0, 3->1, 10->12, 12->10; in y: 0->5, 5->6, 6->5, 20->30, 30->20.
    assert mutual_knn(x, y, k=1, metric="euclidean") == pytest.approx(0.8)


def test_mutual_knn_on_independent_data_is_at_chance():
    n, k = 1024, 10
    chance = mutual_knn_chance(n, k)
    assert chance == pytest.approx(10 / 1023)
    scores = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        scores.append(mutual_knn(rng.normal(size=(n, 32)), rng.normal(size=(n, 24)), k=k))
    # Per-sample overlap is hypergeometric; the mean over n samples has sd ~ sqrt(chance / n / k).
    sd = np.sqrt(chance * (1 - chance) / (n * k) / len(scores))
    assert abs(np.mean(scores) - chance) <= 3 * sd


def test_cknna_with_all_neighbours_is_debiased_linear_cka():
    rng = np.random.default_rng(4)
    n = 40
    x = rng.normal(size=(n, 6)) + 1.0
    y = np.tanh(x @ rng.normal(size=(6, 5))) + 0.5 * rng.normal(size=(n, 5))
    assert cknna(x, y, k=n - 1, normalize=False) == pytest.approx(linear_cka(x, y, debiased=True), abs=1e-12)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    assert cknna(x, y, k=n - 1) == pytest.approx(linear_cka(xn, yn, debiased=True), abs=1e-12)


def test_cknna_properties():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 10))
    y = x @ rng.normal(size=(10, 8)) + 0.5 * rng.normal(size=(120, 8))
    z = rng.normal(size=(120, 8))
    assert cknna(x, x, k=10) == pytest.approx(1.0, abs=1e-12)
    assert cknna(x, x, k=10, unbiased=False) == pytest.approx(1.0, abs=1e-12)
    assert cknna(x, y, k=10, symmetric=True) == pytest.approx(cknna(y, x, k=10, symmetric=True), abs=1e-12)
    assert cknna(x, y, k=10) == pytest.approx(cknna(y, x, k=10), abs=0.01)  # the published form: nearly
    assert cknna(x, y, k=10) > cknna(x, z, k=10) + 0.1
    assert cknna(x, y, k=119) == pytest.approx(cknna(x, y, k=119, symmetric=True), abs=1e-12)  # full mask


def _reference_cknna(a: np.ndarray, b: np.ndarray, k: int, unbiased: bool = True) -> float:
    """Huh et al.'s CKNNA as in platonic-rep's ``AlignmentMetrics.cknna`` (numpy, no 1e-6 in the
    denominator, self excluded from the neighbours): masked kernels used as they are."""
    n = len(a)

    def knn_mask(g: np.ndarray) -> np.ndarray:
        g = g.copy()
        np.fill_diagonal(g, -np.inf)
        mask = np.zeros_like(g)
        np.put_along_axis(mask, np.argsort(-g, axis=1)[:, :k], 1.0, axis=1)
        return mask

    def hsic_u(kk: np.ndarray, ll: np.ndarray) -> float:
        kt, lt = kk.copy(), ll.copy()
        np.fill_diagonal(kt, 0.0)
        np.fill_diagonal(lt, 0.0)
        total = (
            np.sum(kt * lt.T) + kt.sum() * lt.sum() / ((n - 1) * (n - 2)) - 2.0 * np.sum(kt @ lt) / (n - 2)
        )
        return total / (n * (n - 3))

    def hsic_b(kk: np.ndarray, ll: np.ndarray) -> float:
        h = np.eye(n) - 1.0 / n
        return np.trace(kk @ h @ ll @ h)

    hsic = hsic_u if unbiased else hsic_b
    kk, ll = a @ a.T, b @ b.T
    mk, ml = knn_mask(kk), knn_mask(ll)
    m = mk * ml
    return hsic(m * kk, m * ll) / np.sqrt(hsic(mk * kk, mk * kk) * hsic(ml * ll, ml * ll))


@pytest.mark.parametrize("n", [200, 512])
@pytest.mark.parametrize("unbiased", [True, False])
def test_cknna_matches_the_reference_formula(n, unbiased):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 32))
    y = x[:, :16] @ rng.normal(size=(16, 24)) + 2.0 * rng.normal(size=(n, 24))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    ours = cknna(x, y, k=10, unbiased=unbiased)
    assert ours == pytest.approx(_reference_cknna(xn, yn, 10, unbiased), abs=1e-9)
    assert abs(cknna(x, y, k=10, unbiased=unbiased, symmetric=True) - ours) > 1e-4  # the variants differ


def test_knn_guard_rails():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(20, 4)), rng.normal(size=(20, 3))
    for fn in (mutual_knn, cknna):
        with pytest.raises(InputError, match=r"k = 20 neighbours is out of range for 20 samples.*k <= 19"):
            fn(x, y, k=20)
        with pytest.raises(InputError, match=r"k = 0 neighbours is out of range"):
            fn(x, y, k=0)
        with pytest.raises(InputError, match="same number of samples"):
            fn(x, y[:10], k=3)
    zero = x.copy()
    zero[2] = 0.0
    with pytest.raises(InputError, match="all-zero rows"):
        mutual_knn(zero, y, k=3)
    with pytest.raises(InputError, match="metric"):
        mutual_knn(x, y, metric="manhattan")
    with pytest.raises(InputError, match="k must be"):
        mutual_knn_chance(10, 10)
