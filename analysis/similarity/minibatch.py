"""Minibatch CKA (Nguyen et al. 2021): the unbiased HSIC terms averaged over batches, then divided.

In the linear case each batch's terms come from X^T Y, X^T X, Y^T Y and row norms (feature space), or
from the b x b batch Grams when the batch is narrower than the features, so memory is O(min(b, d)^2)
whatever n is; no n x n matrix is ever formed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from analysis.arrays import (
    Activations,
    Device,
    check_dtype,
    check_int,
    finalize,
    inspect_pair,
    resolve_device,
    scale_exponent,
)
from probes.errors import InputError

from .cka import Method, check_method
from .hsic import Kernel, cka_ratio, feature_space_is_cheaper, gram, gram_terms, linear_hsic_terms

__all__ = ["MinibatchCKA", "minibatch_cka"]


class MinibatchCKA:
    """Streaming minibatch CKA (Nguyen et al. 2021): unbiased HSIC terms averaged over batches.

    ``update(x_b, y_b)`` adds one batch (the same samples in both, b >= 4 rows); ``compute()`` returns
    ``mean HSIC_u(K, L) / sqrt(mean HSIC_u(K, K) * mean HSIC_u(L, L))``. Every batch has equal weight.
    The linear kernel is evaluated in feature space (``d x d`` products, O(d^2) memory) or, when the
    batch is narrower than the features and ``method='auto'``, from ``b x b`` batch Grams (cheaper
    there; memory O(min(b, d)^2), never n x n). ``kernel='rbf'`` always builds ``b x b`` Grams, with the
    bandwidth taken from each batch's median distance. The three per-batch
    terms are kept (3 floats per batch) and summed exactly (``math.fsum``), so the result does not
    depend on the batch order. With a single batch it equals ``linear_cka(x, y, debiased=True)``.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(64, 5))
    >>> acc = MinibatchCKA()
    >>> for i in range(0, 64, 16):
    ...     acc.update(x[i : i + 16], 2 * x[i : i + 16])
    >>> acc.n_batches, round(acc.compute(), 6)
    (4, 1.0)
    """

    def __init__(
        self,
        *,
        kernel: Kernel = "linear",
        bandwidth: float = 1.0,
        method: Method = "auto",
        dtype: torch.dtype = torch.float64,
        device: Device = None,
    ) -> None:
        if kernel not in ("linear", "rbf"):
            raise InputError(f"kernel must be 'linear' or 'rbf', got {kernel!r}.")
        self.kernel: Kernel = kernel
        self.method = check_method(method)
        self.bandwidth = bandwidth
        self.dtype = check_dtype(dtype)
        self.device = device
        self.reset()

    def reset(self) -> None:
        """Forget all batches."""
        self._terms: list[tuple[float, float, float]] = []
        self._widths: tuple[int, int] | None = None
        self._exponents: tuple[int, int] | None = None
        self.n_samples = 0

    @property
    def n_batches(self) -> int:
        """Number of batches added so far."""
        return len(self._terms)

    def update(self, x: Activations, y: Activations) -> None:
        """Add one batch: ``x`` is ``[b, dx]``, ``y`` is ``[b, dy]`` for the same b samples (b >= 4)."""
        rx, ry = inspect_pair(x, y, min_samples=4)
        if self._exponents is None:  # one power-of-two scale for all batches: the ratio is scale invariant
            self._exponents = (scale_exponent(rx), scale_exponent(ry))
        dev = resolve_device(self.device, x, y)
        tx = finalize(rx, "x", dtype=self.dtype, device=dev, exponent=self._exponents[0])
        ty = finalize(ry, "y", dtype=self.dtype, device=dev, exponent=self._exponents[1])
        widths = (tx.shape[1], ty.shape[1])
        if self._widths is not None and widths != self._widths:
            raise InputError(
                f"batch feature widths changed from {self._widths} to {widths}; every batch must come from "
                f"the same two layers (call reset() to start a new comparison)."
            )
        self._widths = widths
        b = tx.shape[0]
        linear = self.kernel == "linear"
        if linear and (
            self.method == "feature" or (self.method == "auto" and feature_space_is_cheaper(b, *widths))
        ):
            terms = linear_hsic_terms(tx, ty, unbiased=True)
        else:
            k = gram(tx, self.kernel, self.bandwidth, "x")
            l = gram(ty, self.kernel, self.bandwidth, "y")  # noqa: E741
            terms = gram_terms(k, l, unbiased=True)
        self._terms.append(terms)
        self.n_samples += tx.shape[0]

    def compute(self) -> float:
        """Minibatch CKA over the batches added so far."""
        if not self._terms:
            raise InputError("no batches were added; call update(x_batch, y_batch) at least once.")
        m = len(self._terms)
        hxy, hxx, hyy = (math.fsum(t[i] for t in self._terms) / m for i in range(3))
        return cka_ratio(hxy, hxx, hyy, unbiased=True)


def minibatch_cka(
    x: Activations | Iterable[tuple[Activations, Activations]],
    y: Activations | None = None,
    *,
    batch_size: int | None = None,
    drop_last: bool = False,
    kernel: Kernel = "linear",
    bandwidth: float = 1.0,
    method: Method = "auto",
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """Minibatch CKA of ``[n, d]`` arrays split into consecutive batches, or of an iterable of batch pairs.

    Either ``minibatch_cka(x, y, batch_size=b)`` (slices are converted one at a time, so ``x`` and ``y``
    may stay float32/numpy) or ``minibatch_cka(pairs)`` with ``pairs`` yielding ``(x_b, y_b)``. A final
    partial batch counts as a batch unless ``drop_last``; it must still have >= 4 rows. Shuffle the rows
    first if their order is structured. See :class:`MinibatchCKA`.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1000, 16))
    >>> round(minibatch_cka(x, x @ np.diag(np.arange(1.0, 17.0)), batch_size=250), 2)
    0.76
    """
    acc = MinibatchCKA(kernel=kernel, bandwidth=bandwidth, method=method, dtype=dtype, device=device)
    if y is None:
        if batch_size is not None:
            raise InputError(
                "batch_size is only used with two arrays: call minibatch_cka(x, y, batch_size=b)."
            )
        for pair in x:  # type: ignore[union-attr]
            xb, yb = pair
            acc.update(xb, yb)
        return acc.compute()
    if batch_size is None:
        raise InputError("pass batch_size=b (rows per batch) when giving two arrays.")
    b = check_int(batch_size, "batch_size", 4)
    nx, ny = len(x), len(y)  # type: ignore[arg-type]
    if nx != ny:
        raise InputError(f"x and y must have the same number of samples (rows): got {nx} and {ny}.")
    stops = range(0, nx, b)
    for start in stops:
        stop = min(start + b, nx)
        if stop - start < b and drop_last and start > 0:
            break
        if stop - start < 4:
            raise InputError(
                f"the last batch has {stop - start} rows but the unbiased HSIC needs >= 4; pass drop_last=True "
                f"or a batch_size that leaves a larger remainder (n = {nx})."
            )
        acc.update(x[start:stop], y[start:stop])  # type: ignore[index]
    return acc.compute()
