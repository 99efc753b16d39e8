"""Centered kernel alignment (CKA) from Gram matrices (any kernel) and linear CKA in feature space.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for Gram matrices K = k(X), L = l(Y) of the same
n samples (Kornblith et al. 2019), with the biased or the unbiased HSIC (:mod:`.hsic`); "debiased CKA"
uses the unbiased one in all three places. Linear CKA can skip the n x n Grams altogether: its HSIC terms
come from X^T Y, X^T X, Y^T Y and row norms (feature space, O(d^2) memory). Minibatch CKA is in
:mod:`.minibatch`.

**How many samples.** CKA compares n x n similarity structures, so it needs enough samples (stimuli,
prompts). Below :data:`MIN_CKA_SAMPLES_HARD` = 4 it is refused: with n = 2 the centred Grams have rank
1 and linear CKA is exactly 1 for any inputs; with n = 3 unrelated Gaussian inputs score 0.4-1.0 (0.98-1.0
at d = 576), and the debiased estimator needs n >= 4. Below :data:`MIN_CKA_SAMPLES` = 32 it warns
(:class:`SmallSampleWarning`) for the biased (Gretton) estimator, which reads about d / (n + d) on
unrelated inputs with d features (measured mean 0.97 at n = 16, d = 576; 0.2 at n = 32, d = 8). The
debiased estimator (``debiased=True``, metric ``"debiased_cka"``) is about 0 on unrelated inputs at any
n >= 4 and is not warned about, but it is noisy at small n (standard deviation 0.7 at n = 4, 0.1 at
n = 16, 0.05 at n = 32 on unrelated Gaussian inputs). :func:`check_cka_samples` applies these rules and
can be called before any activations exist.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from torch import Tensor

from analysis.arrays import (
    Activations,
    Device,
    as_pair,
    check_dtype,
    finalize,
    inspect_pair,
    resolve_device,
    scale_exponent,
)
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

__all__ = [
    "MIN_CKA_SAMPLES",
    "MIN_CKA_SAMPLES_HARD",
    "SmallSampleWarning",
    "check_cka_samples",
    "cka",
    "linear_cka",
]

MIN_CKA_SAMPLES = 32
"""Fewer samples than this warn (:class:`SmallSampleWarning`); see the module docstring."""

MIN_CKA_SAMPLES_HARD = 4
"""Fewer samples than this are refused: CKA is degenerate there (1.0 for any inputs at n = 2)."""


class SmallSampleWarning(UserWarning):
    """A similarity estimate from so few samples that it is biased or mostly noise."""


def check_cka_samples(n: int, what: str = "samples", *, debiased: bool = False) -> None:
    """Refuse ``n < MIN_CKA_SAMPLES_HARD``; warn for ``n < MIN_CKA_SAMPLES`` unless ``debiased`` (module docstring).

    ``what`` names the samples in the user's terms (``"prompts"``, ``"rows of x"``).

    >>> check_cka_samples(40, "prompts")
    >>> check_cka_samples(3, "prompts")
    Traceback (most recent call last):
    probes.errors.InputError: 3 prompts are too few for CKA: below 4 samples it is degenerate (with 2 it is 1.0 for any inputs, with 3 unrelated inputs score 0.4-1.0). Use at least 32 prompts.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise InputError(f"the number of {what} must be an integer, got {n!r}.")
    if n < MIN_CKA_SAMPLES_HARD:
        raise InputError(
            f"{n} {what} are too few for CKA: below {MIN_CKA_SAMPLES_HARD} samples it is degenerate (with 2 it "
            f"is 1.0 for any inputs, with 3 unrelated inputs score 0.4-1.0). Use at least {MIN_CKA_SAMPLES} {what}."
        )
    if n >= MIN_CKA_SAMPLES or debiased:
        return
    why = (
        f"CKA on {n} {what} is biased high: the biased estimator reads about d/(n+d) on unrelated "
        f"inputs with d features (0.97 at n=16, d=576); the debiased estimator (linear_cka(..., "
        f"debiased=True), metric 'debiased_cka') removes that bias"
    )
    warnings.warn(f"{why}. Use at least {MIN_CKA_SAMPLES} {what}.", SmallSampleWarning, stacklevel=3)


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
    ``debiased=True`` uses the unbiased HSIC. Needs n >= 4 samples, warns below 32 (module docstring). For large n with the linear kernel prefer
    :func:`linear_cka` (feature space) or :func:`~analysis.similarity.minibatch_cka`.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(50, 8))
    >>> round(cka(x, x), 6), round(cka(x, x, kernel="rbf", bandwidth=0.5), 6)
    (1.0, 1.0)
    """
    unb = bool(debiased)
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=2, scale_free=True)
    check_cka_samples(tx.shape[0], "samples (rows)", debiased=unb)
    check_varies(tx, "x")
    check_varies(ty, "y")
    k = gram(tx, kernel, bandwidth, "x")
    l = gram(ty, kernel, bandwidth, "y")  # noqa: E741
    return cka_ratio(*gram_terms(k, l, unb), unb)


_CHUNK_ELEMENTS = 1 << 21  # rows per block in streamed feature-space CKA: ~2M values of x and y together


def _streamed_linear_terms(
    rx: Tensor, ry: Tensor, unbiased: bool, dtype: torch.dtype, device: torch.device
) -> tuple[float, float, float]:
    ex, ey = scale_exponent(rx), scale_exponent(ry)  # CKA is scale invariant: exact power-of-two rescale
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
                finalize(rx[start:stop], "x", dtype=dtype, device=device, row_offset=start, exponent=ex),
                finalize(ry[start:stop], "y", dtype=dtype, device=device, row_offset=start, exponent=ey),
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
    rx, ry = inspect_pair(x, y, min_samples=2)
    n, dx, dy = rx.shape[0], rx.shape[1], ry.shape[1]
    check_cka_samples(n, "samples (rows)", debiased=unb)
    if method == "feature" or (method == "auto" and feature_space_is_cheaper(n, dx, dy)):
        return cka_ratio(*_streamed_linear_terms(rx, ry, unb, dtype, dev), unb)
    ex, ey = scale_exponent(rx), scale_exponent(ry)
    tx = finalize(rx, "x", dtype=dtype, device=dev, exponent=ex)
    ty = finalize(ry, "y", dtype=dtype, device=dev, exponent=ey)
    check_varies(tx, "x")
    check_varies(ty, "y")
    tx, ty = center(tx), center(ty)  # HSIC is translation invariant; centring first avoids cancellation
    return cka_ratio(*gram_terms(tx @ tx.T, ty @ ty.T, unb), unb)
