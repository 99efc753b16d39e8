"""Minibatch CKA (Nguyen et al. 2021): one batch = full debiased CKA, order invariance, convergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.similarity import MinibatchCKA, cka, linear_cka, minibatch_cka
from probes.errors import InputError


def _pair(n: int, seed: int = 0, dx: int = 12, dy: int = 9) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dx)) @ np.diag(np.linspace(0.5, 3.0, dx))
    y = np.maximum(x[:, :dy] @ rng.normal(size=(dy, dy)), 0.0) + rng.normal(size=(n, dy))
    return x, y


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_one_batch_equals_full_debiased_cka(kernel):
    x, y = _pair(80)
    full = cka(x, y, kernel=kernel, debiased=True)
    assert minibatch_cka(x, y, batch_size=80, kernel=kernel) == pytest.approx(full, abs=1e-12)
    assert minibatch_cka(x, y, batch_size=1000, kernel=kernel) == pytest.approx(full, abs=1e-12)
    if kernel == "linear":
        assert full == pytest.approx(linear_cka(x, y, debiased=True), abs=1e-12)


def test_batch_order_does_not_matter():
    x, y = _pair(640, seed=1)
    batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 640, 64)]
    forward = minibatch_cka(batches)
    rng = np.random.default_rng(3)
    for _ in range(3):
        order = rng.permutation(len(batches))
        assert minibatch_cka([batches[i] for i in order]) == forward  # exact: terms are summed with fsum
    assert minibatch_cka(x, y, batch_size=64) == forward


def test_streaming_accumulator_matches_function_and_resets():
    x, y = _pair(300, seed=2)
    acc = MinibatchCKA()
    for i in range(0, 300, 100):
        acc.update(torch.from_numpy(x[i : i + 100]).float(), y[i : i + 100])
    assert (acc.n_batches, acc.n_samples) == (3, 300)
    expected = minibatch_cka(x.astype(np.float32), y, batch_size=100)
    assert acc.compute() == pytest.approx(expected, abs=1e-12)
    acc.reset()
    with pytest.raises(InputError, match="no batches"):
        acc.compute()


def test_converges_to_full_data_cka_as_batches_grow():
    x, y = _pair(4096, seed=4)
    full = linear_cka(x, y, debiased=True)
    gaps = {b: abs(minibatch_cka(x, y, batch_size=b) - full) for b in (16, 256, 2048)}
    assert gaps[2048] <= 0.02 and gaps[256] <= 0.02
    assert gaps[2048] <= gaps[16] + 1e-3


def test_last_batch_rules():
    x, y = _pair(130, seed=5)
    # 130 = 2 * 64 + 2: a 2-row remainder cannot give an unbiased HSIC.
    with pytest.raises(InputError, match="drop_last"):
        minibatch_cka(x, y, batch_size=64)
    assert minibatch_cka(x, y, batch_size=64, drop_last=True) == pytest.approx(
        minibatch_cka(x[:128], y[:128], batch_size=64), abs=1e-15
    )
    # A usable remainder counts as one more (equally weighted) batch.
    acc = MinibatchCKA()
    for lo, hi in ((0, 60), (60, 120), (120, 130)):
        acc.update(x[lo:hi], y[lo:hi])
    assert minibatch_cka(x, y, batch_size=60) == pytest.approx(acc.compute(), abs=1e-15)


def test_minibatch_errors():
    x, y = _pair(64)
    with pytest.raises(InputError, match="batch_size"):
        minibatch_cka(x, y)
    with pytest.raises(InputError, match="batch_size"):
        minibatch_cka(x, y, batch_size=2)
    with pytest.raises(InputError, match="same number of samples"):
        minibatch_cka(x, y[:60], batch_size=16)
    with pytest.raises(InputError, match="at least 4"):
        MinibatchCKA().update(x[:3], y[:3])
    with pytest.raises(InputError, match="kernel"):
        MinibatchCKA(kernel="cosine")
    acc = MinibatchCKA()
    acc.update(x[:16], y[:16])
    with pytest.raises(InputError, match="widths changed"):
        acc.update(x[16:32, :5], y[16:32])
    bad = x.copy()
    bad[20, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        minibatch_cka(bad, y, batch_size=16)


def test_feature_and_batch_gram_routes_agree():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(96, 40)), rng.normal(size=(96, 30))
    y[:, :10] += x[:, :10]
    values = [minibatch_cka(x, y, batch_size=16, method=m) for m in ("feature", "gram", "auto")]
    assert values[0] == pytest.approx(values[1], abs=1e-13)
    assert values[2] == pytest.approx(values[0], abs=1e-13)
    with pytest.raises(InputError, match="method"):
        MinibatchCKA(method="fast")
