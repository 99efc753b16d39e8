"""CKA identities and known values (reference note §4.1, §5.1 items 1-2)."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from analysis.similarity import cka, hsic, linear_cka, linear_gram, rbf_gram
from probes.errors import InputError


def _data(seed: int = 0, n: int = 60, dx: int = 7, dy: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dx))
    y = np.tanh(x[:, :dy] @ rng.normal(size=(dy, dy))) + 0.5 * rng.normal(size=(n, dy))
    return x, y


ALL_CKA = [
    ("linear-feature", lambda a, b: linear_cka(a, b, method="feature")),
    ("linear-gram", lambda a, b: linear_cka(a, b, method="gram")),
    ("debiased-feature", lambda a, b: linear_cka(a, b, debiased=True, method="feature")),
    ("debiased-gram", lambda a, b: cka(a, b, debiased=True)),
    ("rbf", lambda a, b: cka(a, b, kernel="rbf", bandwidth=0.8)),
    ("rbf-debiased", lambda a, b: cka(a, b, kernel="rbf", bandwidth=0.8, debiased=True)),
]


@pytest.mark.parametrize("name,fn", ALL_CKA, ids=[n for n, _ in ALL_CKA])
def test_self_similarity_is_one_and_symmetric(name, fn):
    x, y = _data()
    assert fn(x, x) == pytest.approx(1.0, abs=1e-12)
    assert fn(x, y) == pytest.approx(fn(y, x), abs=1e-12)
    assert 0.0 < fn(x, y) < 1.0


@pytest.mark.parametrize("name,fn", ALL_CKA, ids=[n for n, _ in ALL_CKA])
def test_invariant_to_orthogonal_transform_scale_and_shift(name, fn):
    x, y = _data(1)
    q = ortho_group.rvs(x.shape[1], random_state=3)
    moved = 4.5 * x @ q + np.arange(x.shape[1])
    assert fn(moved, y) == pytest.approx(fn(x, y), abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_not_invariant_to_general_invertible_maps(debiased):
    x, y = _data(2)
    rng = np.random.default_rng(5)
    a = rng.normal(size=(x.shape[1], x.shape[1])) @ np.diag(np.geomspace(0.1, 10.0, x.shape[1]))
    assert abs(np.linalg.det(a)) > 1e-6
    assert abs(linear_cka(x @ a, y, debiased=debiased) - linear_cka(x, y, debiased=debiased)) > 1e-3


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("shape", [(50, 8, 3), (10, 40, 25)])
def test_feature_space_equals_gram_space(debiased, shape):
    n, dx, dy = shape
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(n, dx)) + 3.0, rng.normal(size=(n, dy)) * 2.0
    y[:, 0] += x[:, 0]
    f = linear_cka(x, y, debiased=debiased, method="feature")
    g = linear_cka(x, y, debiased=debiased, method="gram")
    assert f == pytest.approx(g, abs=1e-13)
    assert cka(x, y, debiased=debiased) == pytest.approx(f, abs=1e-13)
    assert linear_cka(x, y, debiased=debiased) == pytest.approx(f, abs=1e-13)  # method="auto"


def _song_loop(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Unbiased HSIC as the U-statistic over ordered 4-tuples of distinct indices (Song et al. 2012)."""
    n = k.shape[0]
    total = 0.0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2.0 * k[i, j] * l[i, q]
    return total / (n * (n - 1) * (n - 2) * (n - 3))


def test_debiased_equals_explicit_u_statistic():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    y[:, 0] += x[:, 1]
    k, l = x @ x.T, y @ y.T  # noqa: E741
    loops = [_song_loop(k, l), _song_loop(k, k), _song_loop(l, l)]
    assert hsic(k, l, unbiased=True) == pytest.approx(loops[0], abs=1e-12)
    expected = loops[0] / np.sqrt(loops[1] * loops[2])
    assert linear_cka(x, y, debiased=True, method="feature") == pytest.approx(expected, abs=1e-12)
    assert cka(x, y, debiased=True) == pytest.approx(expected, abs=1e-12)


def test_biased_hsic_matches_centering_matrix_formula():
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(9, 4)), rng.normal(size=(9, 6))
    k, l = x @ x.T, y @ y.T  # noqa: E741
    h = np.eye(9) - 1.0 / 9
    assert hsic(k, l) == pytest.approx(np.trace(k @ h @ l @ h) / 64, abs=1e-12)
    assert np.allclose(linear_gram(x).numpy(), k)


# §4.1: biased linear CKA on independent N(0, 1) data (p = q) is about p / (n + p); unbiased about 0.
CELLS = [(n, p) for n in (32, 128, 1024) for p in (10, 100, 1000)]


@pytest.mark.parametrize("n,p", CELLS, ids=[f"n{n}-p{p}" for n, p in CELLS])
def test_calibration_on_independent_gaussians(n, p):
    repeats = 40 if n * p <= 20_000 else (12 if n * p <= 150_000 else 5)
    biased, unbiased = [], []
    for seed in range(repeats):
        rng = np.random.default_rng(1000 * n + p + seed)
        x, y = rng.normal(size=(n, p)), rng.normal(size=(n, p))
        biased.append(linear_cka(x, y))
        unbiased.append(linear_cka(x, y, debiased=True))
    assert np.mean(biased) == pytest.approx(p / (n + p), abs=0.03)
    se = np.std(unbiased, ddof=1) / np.sqrt(repeats)
    assert abs(np.mean(unbiased)) <= 3.0 * se


def test_rbf_kernel_scale_invariance_and_bandwidth():
    x, y = _data(3)
    assert cka(10.0 * x, y, kernel="rbf") == pytest.approx(cka(x, y, kernel="rbf"), abs=1e-12)
    assert cka(x, y, kernel="rbf", bandwidth=0.2) != pytest.approx(
        cka(x, y, kernel="rbf", bandwidth=2.0), abs=1e-3
    )
    k = rbf_gram(x, bandwidth=0.5).numpy()
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    sigma = 0.5 * np.median(d[np.triu_indices(len(x), 1)])
    assert np.allclose(k, np.exp(-(d**2) / (2 * sigma**2)), atol=1e-12)
    # A very wide RBF kernel behaves like the linear one.
    assert cka(x, y, kernel="rbf", bandwidth=200.0) == pytest.approx(linear_cka(x, y), abs=1e-4)


def test_torch_inputs_dtype_and_device():
    x, y = _data(4)
    tx, ty = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    v64 = linear_cka(tx, ty)  # converted to float64
    v32 = linear_cka(tx, ty, dtype=torch.float32, device="cpu")
    assert isinstance(v64, float) and isinstance(v32, float)
    assert v64 == pytest.approx(linear_cka(tx.double().numpy(), ty.double().numpy()), abs=1e-12)
    assert v32 == pytest.approx(v64, abs=1e-5)


def test_constant_representation_raises():
    x, _ = _data(5)
    const = np.ones((x.shape[0], 3))
    for fn in (
        linear_cka,
        cka,
        lambda a, b: linear_cka(a, b, debiased=True),
        lambda a, b: cka(a, b, kernel="rbf"),
    ):
        with pytest.raises(InputError, match="identical"):
            fn(const, x)


def test_option_errors():
    x, y = _data(6)
    with pytest.raises(InputError, match="kernel"):
        cka(x, y, kernel="poly")
    with pytest.raises(InputError, match="bandwidth"):
        cka(x, y, kernel="rbf", bandwidth=0.0)
    with pytest.raises(InputError, match="method"):
        linear_cka(x, y, method="fast")
    with pytest.raises(InputError, match="square"):
        hsic(x, x)
    with pytest.raises(InputError, match="n >= 4"):
        hsic(np.eye(3), np.eye(3), unbiased=True)


@pytest.mark.parametrize("debiased", [False, True])
def test_streamed_feature_space_blocks_give_the_same_value(monkeypatch, debiased):
    cka_module = importlib.import_module("analysis.similarity.cka")  # the package re-exports a function `cka`
    rng = np.random.default_rng(13)
    x = (rng.normal(size=(103, 6)) + 50.0).astype(np.float32)  # large means: centring must be exact-ish
    y = np.tanh(x[:, :4] - 50.0) + 0.1 * rng.normal(size=(103, 4))
    whole = linear_cka(x, y, debiased=debiased, method="gram")
    monkeypatch.setattr(cka_module, "_CHUNK_ELEMENTS", 10 * (6 + 4))  # 10-row blocks, a 3-row tail
    assert linear_cka(x, y, debiased=debiased, method="feature") == pytest.approx(whole, abs=1e-12)
    bad = y.copy()
    bad[57, 2] = np.inf
    with pytest.raises(InputError, match="row 57, column 2"):
        linear_cka(x, bad, debiased=debiased, method="feature")
    const = np.tile(rng.normal(size=(1, 3)), (103, 1))
    with pytest.raises(InputError, match="identical"):
        linear_cka(const, y, debiased=debiased, method="feature")
