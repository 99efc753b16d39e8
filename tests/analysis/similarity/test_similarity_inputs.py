"""Guard rails shared by every public metric: mismatched n, NaN/inf, too few samples, bad shapes."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from analysis.similarity import (
    canonical_correlations,
    cca_similarity,
    cka,
    cknna,
    linear_cka,
    minibatch_cka,
    mutual_knn,
    procrustes_distance,
    procrustes_similarity,
    pwcca,
    rsa,
    shape_distance,
    svcca,
)
from probes.errors import InputError

# name -> (function, minimum number of samples it accepts for 3-feature inputs)
METRICS = {
    "linear_cka": (linear_cka, 4),
    "debiased_cka": (partial(linear_cka, debiased=True), 4),
    "gram_cka": (cka, 4),
    "rbf_cka": (partial(cka, kernel="rbf"), 4),
    "minibatch_cka": (partial(minibatch_cka, batch_size=8), 4),
    "canonical_correlations": (canonical_correlations, 7),
    "cca_similarity": (cca_similarity, 7),
    "svcca": (svcca, 7),
    "pwcca": (pwcca, 7),
    "procrustes_distance": (procrustes_distance, 2),
    "procrustes_similarity": (procrustes_similarity, 2),
    "shape_distance": (partial(shape_distance, alpha=0.5), 2),
    "rsa": (rsa, 3),
    "mutual_knn": (partial(mutual_knn, k=1), 2),
    "cknna": (partial(cknna, k=1), 4),
}
NAMES = list(METRICS)


def _xy(n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return x, x @ rng.normal(size=(3, 3)) + 0.5 * rng.normal(size=(n, 3))


@pytest.mark.parametrize("name", NAMES)
def test_returns_python_float_from_numpy_and_torch(name):
    fn, _ = METRICS[name]
    x, y = _xy()
    value = fn(x, y)
    if name == "canonical_correlations":
        assert isinstance(value, np.ndarray) and value.dtype == np.float64
        value = float(value.mean())
    assert isinstance(value, float) and np.isfinite(value)
    from_torch = fn(torch.from_numpy(x), torch.from_numpy(y).float())
    if name == "canonical_correlations":
        from_torch = float(from_torch.mean())
    assert from_torch == pytest.approx(value, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_sample_counts_raise(name):
    fn, _ = METRICS[name]
    x, y = _xy()
    with pytest.raises(InputError, match="same number of samples"):
        fn(x, y[:-1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", NAMES)
def test_non_finite_values_raise(name, bad):
    fn, _ = METRICS[name]
    x, y = _xy()
    y = y.copy()
    y[4, 2] = bad
    with pytest.raises(InputError, match="NaN/inf"):
        fn(x, y)
    with pytest.raises(InputError, match="NaN/inf"):
        fn(torch.from_numpy(y), torch.from_numpy(x))


@pytest.mark.parametrize("name", NAMES)
def test_too_few_samples_raise(name):
    fn, min_n = METRICS[name]
    x, y = _xy(min_n)
    fn(x, y)  # the minimum is accepted
    with pytest.raises(InputError):
        fn(x[: min_n - 1], y[: min_n - 1])


@pytest.mark.parametrize("name", NAMES)
def test_bad_shapes_raise_with_a_fix(name):
    fn, _ = METRICS[name]
    x, y = _xy()
    with pytest.raises(InputError, match=r"reshape"):
        fn(x[:, 0], y)
    with pytest.raises(InputError, match=r"2-D"):
        fn(x.reshape(20, 3, 1), y)
    with pytest.raises(InputError, match="not a real number"):
        fn(x.astype(str), y)


def test_input_error_is_a_value_error_and_names_the_fix():
    x, y = _xy()
    with pytest.raises(ValueError) as info:
        linear_cka(x, y[:5])
    assert "got 20 and 5" in str(info.value) and "transposes" in str(info.value)
    nan = x.copy()
    nan[7, 1] = np.nan
    with pytest.raises(InputError, match=r"row 7, column 1"):
        linear_cka(nan, y)


def test_dtype_must_be_floating():
    x, y = _xy()
    with pytest.raises(InputError, match="dtype"):
        linear_cka(x, y, dtype=torch.int64)
    assert linear_cka(x, y, dtype=torch.float32) == pytest.approx(linear_cka(x, y), abs=1e-5)


def test_integer_and_list_inputs_are_accepted():
    x = np.arange(24).reshape(8, 3) ** 2
    assert linear_cka(x, x.tolist()) == pytest.approx(1.0, abs=1e-12)
