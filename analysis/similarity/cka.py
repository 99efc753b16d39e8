"""Centered kernel alignment (CKA) from Gram matrices (any kernel) and linear CKA in feature space.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for Gram matrices K = k(X), L = l(Y) of the same
n samples (Kornblith et al. 2019), with the biased or the unbiased HSIC (:mod:`.hsic`); "debiased CKA"
uses the unbiased one in all three places. Linear CKA can skip the n x n Grams altogether: its HSIC terms
come from X^T Y, X^T X, Y^T Y and row norms (feature space, O(d^2) memory). Minibatch CKA is in
:mod:`.minibatch`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from analysis.arrays import Activations, Device, as_pair, check_dtype, finalize, inspect_pair, resolve_device
from probes.errors import InputError

from .hsic import (
    FeatureSums,
    Kernel,
    check_varies,
    cka_ratio,
    feature_space_is_cheaper,
    gram,
    gram_terms,
    raise_constant,
)
from .linalg import center

__all__ = ["cka", "linear_cka"]

Method = Literal["auto", "feature", "gram"]


def check_method(method: str) -> Method:
    """Accept only the linear-CKA routes ``'auto'``, ``'feature'`` and ``'gram'``."""
    if method not in ("auto", "feature", "gram"):
        raise InputError(f"method must be 'auto', 'feature' or 'gram', got {method!r}.")
    return method  # type: ignore[return-value]


def cka(
    x: Activations,
    y: Activations,
    *,
    kernel: Kernel = "linear",
    bandwidth: float = 1.0,
    debiased: bool = False,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """CKA of ``x [n, dx]`` and ``y [n, dy]`` computed from ``[n, n]`` Gram matrices (any kernel; O(n^2) memory).

    ``kernel='rbf'`` uses ``sigma = bandwidth * median pairwise distance`` per representation.
    ``debiased=True`` uses the unbiased HSIC (n >= 4). For large n with the linear kernel prefer
    :func:`linear_cka` (feature space) or :func:`~analysis.similarity.minibatch_cka`.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(50, 8))
    >>> round(cka(x, x), 6), round(cka(x, x, kernel="rbf", bandwidth=0.5), 6)
    (1.0, 1.0)
    """
    unb = bool(debiased)
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=4 if unb else 2)
    check_varies(tx, "x")
    check_varies(ty, "y")
    k = gram(tx, kernel, bandwidth, "x")
    l = gram(ty, kernel, bandwidth, "y")  # noqa: E741
    return cka_ratio(*gram_terms(k, l, unb), unb)


_CHUNK_ELEMENTS = 1 << 21  # rows per block in streamed feature-space CKA: ~2M values of x and y together


def _streamed_linear_terms(
    rx: Tensor, ry: Tensor, unbiased: bool, dtype: torch.dtype, device: torch.device
) -> tuple[float, float, float]:
    """Feature-space HSIC terms of unconverted inputs, converted block by block (O(d^2) extra memory).

    Pass 1 takes the column means (and checks that each input varies), pass 2 accumulates the centred
    blocks, so the result equals centring the whole matrices first.
    """
    n = rx.shape[0]
    step = max(1, _CHUNK_ELEMENTS // (rx.shape[1] + ry.shape[1]))

    def blocks():
        for start in range(0, n, step):
            stop = min(start + step, n)
            yield (
                finalize(rx[start:stop], "x", dtype=dtype, device=device, row_offset=start),
                finalize(ry[start:stop], "y", dtype=dtype, device=device, row_offset=start),
            )

    sum_x = sum_y = first_x = first_y = None
    varies_x = varies_y = False
    for bx, by in blocks():
        if sum_x is None:
            sum_x, sum_y, first_x, first_y = bx.sum(dim=0), by.sum(dim=0), bx[:1], by[:1]
        else:
            sum_x, sum_y = sum_x + bx.sum(dim=0), sum_y + by.sum(dim=0)
        varies_x = varies_x or bool((bx != first_x).any())
        varies_y = varies_y or bool((by != first_y).any())
    for varies, name in ((varies_x, "x"), (varies_y, "y")):
        if not varies:
            raise_constant(name)
    assert sum_x is not None and sum_y is not None
    mean_x, mean_y = sum_x / n, sum_y / n
    acc = FeatureSums()
    for bx, by in blocks():
        acc.add(bx - mean_x, by - mean_y, unbiased)
    return acc.terms(n, unbiased)


def linear_cka(
    x: Activations,
    y: Activations,
    *,
    debiased: bool = False,
    method: Method = "auto",
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """Linear CKA, ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred ``x [n, dx]``, ``y [n, dy]``.

    ``method='feature'`` works with ``d x d`` products, converting the inputs block by block (O(n d^2)
    time, O(d^2) extra memory, so float32 or numpy inputs are never copied whole); ``'gram'`` with
    ``n x n`` Grams; ``'auto'`` picks the cheaper. Both give the same value (to rounding).
    ``debiased=True`` uses the unbiased HSIC (Song et al. 2012; n >= 4), about 0 for independent inputs.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(100, 10))
    >>> round(linear_cka(x, x), 6), round(linear_cka(x, 3 * x + 1), 6)
    (1.0, 1.0)
    >>> abs(linear_cka(x, rng.normal(size=(100, 10)), debiased=True)) < 0.05
    True
    """
    unb = bool(debiased)
    method = check_method(method)
    dtype = check_dtype(dtype)
    dev = resolve_device(device, x, y)
    rx, ry = inspect_pair(x, y, min_samples=4 if unb else 2)
    n, dx, dy = rx.shape[0], rx.shape[1], ry.shape[1]
    if method == "feature" or (method == "auto" and feature_space_is_cheaper(n, dx, dy)):
        return cka_ratio(*_streamed_linear_terms(rx, ry, unb, dtype, dev), unb)
    tx, ty = finalize(rx, "x", dtype=dtype, device=dev), finalize(ry, "y", dtype=dtype, device=dev)
    check_varies(tx, "x")
    check_varies(ty, "y")
    tx, ty = center(tx), center(ty)  # HSIC is translation invariant; centring first avoids cancellation
    return cka_ratio(*gram_terms(tx @ tx.T, ty @ ty.T, unb), unb)
