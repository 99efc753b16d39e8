"""Centered kernel alignment (CKA): linear, RBF, debiased and minibatch.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for Gram matrices K = k(X), L = l(Y) of the same
n samples (Kornblith et al. 2019). Two HSIC estimators:

* biased (Gretton et al. 2005): tr(K H L H) / (n - 1)^2 with H = I - 11^T / n. Inflated when the
  feature count is not much smaller than n: on independent Gaussian data linear CKA is about p/(n+p).
* unbiased (Song et al. 2012), with K~, L~ the Grams with zeroed diagonals::

      HSIC_u = [tr(K~ L~) + 1^T K~ 1 * 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) * 1^T K~ L~ 1] / (n(n-3))

  "Debiased CKA" uses it in all three places; it needs n >= 4 and is about 0 on independent data.

Minibatch CKA (Nguyen et al. 2021) averages the unbiased HSIC terms over batches, then divides. In the
linear case each batch's terms come from X^T Y, X^T X, Y^T Y and row norms (feature space), or from the
b x b batch Grams when the batch is narrower than the features, so memory is O(min(b, d)^2) whatever n
is; no n x n matrix is ever formed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError

from ._validate import (
    Activations,
    Device,
    as_matrix,
    as_pair,
    center,
    check_dtype,
    check_int,
    finalize,
    inspect_pair,
    resolve_device,
)

Kernel = Literal["linear", "rbf"]

__all__ = [
    "MinibatchCKA",
    "cka",
    "hsic",
    "linear_cka",
    "linear_gram",
    "minibatch_cka",
    "rbf_gram",
]


# --------------------------------------------------------------------------------------------------
# Gram matrices and HSIC
# --------------------------------------------------------------------------------------------------


def linear_gram(
    x: Activations, *, dtype: torch.dtype = torch.float64, device: Device = None
) -> Float[Tensor, "n n"]:
    """Linear kernel Gram matrix ``K = X X^T`` of an ``[n, d]`` matrix.

    >>> linear_gram([[1.0, 0.0], [1.0, 2.0]]).tolist()
    [[1.0, 1.0], [1.0, 5.0]]
    """
    t = as_matrix(x, "x", dtype=dtype, device=device, min_samples=1)
    return t @ t.T


def _sq_distances(x: Tensor) -> Tensor:
    x = center(x)  # distances are translation invariant; centring first avoids cancellation
    sq = (x * x).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    return d2


def _median(v: Tensor) -> Tensor:
    """Median with numpy semantics (mean of the two middle values for even counts)."""
    s, _ = torch.sort(v)
    m = s.numel()
    return s[m // 2] if m % 2 else 0.5 * (s[m // 2 - 1] + s[m // 2])


def _rbf_from_matrix(x: Tensor, bandwidth: float, name: str) -> Tensor:
    if not (isinstance(bandwidth, int | float) and bandwidth > 0 and math.isfinite(bandwidth)):
        raise InputError(f"bandwidth must be a positive fraction of the median distance, got {bandwidth!r}.")
    d2 = _sq_distances(x)
    iu = torch.triu_indices(x.shape[0], x.shape[0], offset=1, device=x.device)
    med = _median(d2[iu[0], iu[1]].sqrt())
    if float(med) <= 0.0:
        raise InputError(
            f"{name}: the median pairwise distance is 0 (most samples are identical), so the RBF bandwidth "
            f"is undefined; remove duplicate samples or use kernel='linear'."
        )
    sigma = bandwidth * med
    return torch.exp(-d2 / (2.0 * sigma * sigma))


def rbf_gram(
    x: Activations, bandwidth: float = 1.0, *, dtype: torch.dtype = torch.float64, device: Device = None
) -> Float[Tensor, "n n"]:
    """RBF Gram matrix ``exp(-|x_i - x_j|^2 / (2 sigma^2))`` with ``sigma = bandwidth * median distance``.

    The median is over the off-diagonal pairwise Euclidean distances, so the kernel (and RBF CKA) is
    invariant to rescaling ``x``.

    >>> k = rbf_gram([[0.0], [1.0], [3.0]], bandwidth=1.0)  # median distance 2, sigma 2
    >>> round(float(k[0, 1]), 4), float(k[0, 0])
    (0.8825, 1.0)
    """
    t = as_matrix(x, "x", dtype=dtype, device=device, min_samples=2)
    return _rbf_from_matrix(t, bandwidth, "x")


def _check_gram(k: object, name: str, dtype: torch.dtype, device: Device) -> Tensor:
    t = as_matrix(k, name, dtype=dtype, device=device, min_samples=2)
    if t.shape[0] != t.shape[1]:
        raise InputError(f"{name} must be a square [n, n] Gram matrix, got shape {tuple(t.shape)}.")
    return t


# Both estimators are written for general square matrices (tr(AB) = sum(A * B^T), 1^T A B 1 = colsums(A)
# . rowsums(B)), so masked, non-symmetric kernels (CKNNA) go through the same code as Grams.


def _hsic_biased_gram(k: Tensor, l: Tensor) -> Tensor:  # noqa: E741
    kc = k - k.mean(dim=0, keepdim=True)
    kc = kc - kc.mean(dim=1, keepdim=True)
    n = k.shape[0]
    return (kc * l.T).sum() / (n - 1) ** 2


def _hsic_unbiased_gram(k: Tensor, l: Tensor) -> Tensor:  # noqa: E741
    n = k.shape[0]
    kt = k.clone()
    kt.fill_diagonal_(0.0)
    lt = l.clone()
    lt.fill_diagonal_(0.0)
    k1, l1 = kt.sum(dim=0), lt.sum(dim=1)
    trace = (kt * lt.T).sum()
    sums = k1.sum() * l1.sum() / ((n - 1) * (n - 2))
    cross = 2.0 * (k1 @ l1) / (n - 2)
    return (trace + sums - cross) / (n * (n - 3))


def _gram_terms(k: Tensor, l: Tensor, unbiased: bool) -> tuple[float, float, float]:  # noqa: E741
    """(HSIC(K, L), HSIC(K, K), HSIC(L, L)) for symmetric Grams, sharing the centred/zeroed copies."""
    n = k.shape[0]
    if not unbiased:  # tr(KHLH) = <HKH, HLH>; the 1/(n-1)^2 factor cancels in CKA
        kc = k - k.mean(dim=0, keepdim=True)
        kc -= kc.mean(dim=1, keepdim=True)
        lc = l - l.mean(dim=0, keepdim=True)
        lc -= lc.mean(dim=1, keepdim=True)
        return float((kc * lc).sum()), float((kc * kc).sum()), float((lc * lc).sum())
    kt, lt = k.clone(), l.clone()
    kt.fill_diagonal_(0.0)
    lt.fill_diagonal_(0.0)
    k1, l1 = kt.sum(dim=1), lt.sum(dim=1)
    sk, sl = k1.sum(), l1.sum()

    def u(trace: Tensor, s_a: Tensor, s_b: Tensor, v_a: Tensor, v_b: Tensor) -> float:
        return float((trace + s_a * s_b / ((n - 1) * (n - 2)) - 2.0 * (v_a @ v_b) / (n - 2)) / (n * (n - 3)))

    return (
        u((kt * lt).sum(), sk, sl, k1, l1),
        u((kt * kt).sum(), sk, sk, k1, k1),
        u((lt * lt).sum(), sl, sl, l1, l1),
    )


def _feature_space_is_cheaper(n: int, dx: int, dy: int) -> bool:
    """d x d products cost n (dx^2 + dy^2 + dx dy); n x n Grams cost n^2 (dx + dy)."""
    return dx * dx + dy * dy + dx * dy <= n * (dx + dy)


def hsic(
    k: Float[Tensor, "n n"],
    l: Float[Tensor, "n n"],  # noqa: E741
    *,
    unbiased: bool = False,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """HSIC of two symmetric ``[n, n]`` Gram matrices: biased (Gretton) or unbiased (Song, n >= 4).

    >>> x = torch.eye(4, dtype=torch.float64)
    >>> round(hsic(x, x), 4), round(hsic(x, x, unbiased=True), 4)
    (0.3333, 0.0)
    """
    dev = resolve_device(device, k, l)
    kt = _check_gram(k, "k", dtype, dev)
    lt = _check_gram(l, "l", dtype, dev)
    if kt.shape != lt.shape:
        raise InputError(f"k and l must have the same shape, got {tuple(kt.shape)} and {tuple(lt.shape)}.")
    if unbiased:
        if kt.shape[0] < 4:
            raise InputError(f"the unbiased HSIC needs n >= 4 samples, got {kt.shape[0]}; pass more samples.")
        return float(_hsic_unbiased_gram(kt, lt))
    return float(_hsic_biased_gram(kt, lt))


def _ratio(hxy: float, hxx: float, hyy: float, unbiased: bool) -> float:
    """hxy / sqrt(hxx * hyy), with a non-positive self-HSIC raised as an error instead of returning NaN."""
    for value, name in ((hxx, "x"), (hyy, "y")):
        if not value > 0.0:
            if unbiased:
                raise InputError(
                    f"the unbiased HSIC of {name} with itself is {value:.3g} <= 0, so debiased CKA is undefined; "
                    f"this happens with very few samples or a (near-)constant representation: pass more samples "
                    f"or use debiased=False."
                )
            raise InputError(
                f"{name} has zero variance (all samples identical after centring), so CKA is undefined; "
                f"check that the activations differ across samples."
            )
    return hxy / math.sqrt(hxx * hyy)


def _raise_constant(name: str) -> None:
    raise InputError(
        f"{name} has zero variance (all samples identical), so CKA is undefined; check that the "
        f"activations differ across samples."
    )


def _check_varies(x: Tensor, name: str) -> None:
    if not bool((x != x[:1]).any()):
        _raise_constant(name)


def _gram(x: Tensor, kernel: Kernel, bandwidth: float, name: str) -> Tensor:
    if kernel == "linear":
        xc = center(x)  # HSIC is translation invariant; centring first avoids cancellation
        return xc @ xc.T
    if kernel == "rbf":
        return _rbf_from_matrix(x, bandwidth, name)
    raise InputError(f"kernel must be 'linear' or 'rbf', got {kernel!r}.")


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
    """CKA computed from ``[n, n]`` Gram matrices (any kernel; O(n^2) memory).

    ``kernel='rbf'`` uses ``sigma = bandwidth * median pairwise distance`` per representation.
    ``debiased=True`` uses the unbiased HSIC (n >= 4). For large n with the linear kernel prefer
    :func:`linear_cka` (feature space) or :func:`minibatch_cka`.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(50, 8))
    >>> round(cka(x, x), 6), round(cka(x, x, kernel="rbf", bandwidth=0.5), 6)
    (1.0, 1.0)
    """
    unb = bool(debiased)
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=4 if unb else 2)
    _check_varies(tx, "x")
    _check_varies(ty, "y")
    k = _gram(tx, kernel, bandwidth, "x")
    l = _gram(ty, kernel, bandwidth, "y")  # noqa: E741
    return _ratio(*_gram_terms(k, l, unb), unb)


# --------------------------------------------------------------------------------------------------
# Linear CKA in feature space
# --------------------------------------------------------------------------------------------------


class _FeatureSums:
    """Running sums that give the linear HSIC terms from centred row blocks, in O(dx dy) memory.

    With centred X (so X^T 1 = 0) and row norms r_i = |x_i|^2 (s_i for Y), the Song estimator needs
    only ||X^T Y||_F^2 and sums over rows: K~ 1 = -r and 1^T K~ 1 = -sum r, hence
    n(n-3) HSIC_u(K, L) = ||X^T Y||^2 - sum r s + sum r * sum s / ((n-1)(n-2)) - 2 sum r s / (n-2).
    The biased HSIC is ||X^T Y||_F^2 up to a factor that cancels in CKA.
    """

    def __init__(self) -> None:
        self.xty: Tensor | None = None
        self.xtx: Tensor | None = None
        self.yty: Tensor | None = None
        self.rows: dict[str, Tensor] = {}

    def add(self, cx: Tensor, cy: Tensor, unbiased: bool) -> None:
        blocks = {"xty": cx.T @ cy, "xtx": cx.T @ cx, "yty": cy.T @ cy}
        for key, value in blocks.items():
            cur = getattr(self, key)
            setattr(self, key, value if cur is None else cur + value)
        if unbiased:
            r, s = (cx * cx).sum(dim=1), (cy * cy).sum(dim=1)
            for key, value in (("r", r.sum()), ("s", s.sum()), ("rs", r @ s), ("rr", r @ r), ("ss", s @ s)):
                self.rows[key] = self.rows[key] + value if key in self.rows else value

    def terms(self, n: int, unbiased: bool) -> tuple[float, float, float]:
        assert self.xty is not None and self.xtx is not None and self.yty is not None
        fxy = (self.xty * self.xty).sum()
        fxx = (self.xtx * self.xtx).sum()
        fyy = (self.yty * self.yty).sum()
        if not unbiased:
            return float(fxy), float(fxx), float(fyy)
        q = self.rows

        def u(frob: Tensor, sum_a: Tensor, sum_b: Tensor, dot: Tensor) -> float:
            value = frob - dot + sum_a * sum_b / ((n - 1) * (n - 2)) - 2.0 * dot / (n - 2)
            return float(value / (n * (n - 3)))

        return (
            u(fxy, q["r"], q["s"], q["rs"]),
            u(fxx, q["r"], q["r"], q["rr"]),
            u(fyy, q["s"], q["s"], q["ss"]),
        )


def _linear_hsic_terms(x: Tensor, y: Tensor, unbiased: bool) -> tuple[float, float, float]:
    """(HSIC(K, L), HSIC(K, K), HSIC(L, L)) for K = X X^T, L = Y Y^T from converted ``[b, d]`` blocks.

    Both estimators are translation invariant, so X and Y are centred first (also less cancellation).
    """
    acc = _FeatureSums()
    acc.add(center(x), center(y), unbiased)
    return acc.terms(x.shape[0], unbiased)


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
            _raise_constant(name)
    assert sum_x is not None and sum_y is not None
    mean_x, mean_y = sum_x / n, sum_y / n
    acc = _FeatureSums()
    for bx, by in blocks():
        acc.add(bx - mean_x, by - mean_y, unbiased)
    return acc.terms(n, unbiased)


def linear_cka(
    x: Activations,
    y: Activations,
    *,
    debiased: bool = False,
    method: Literal["auto", "feature", "gram"] = "auto",
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """Linear CKA, ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred ``[n, d]`` inputs.

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
    if method not in ("auto", "feature", "gram"):
        raise InputError(f"method must be 'auto', 'feature' or 'gram', got {method!r}.")
    dtype = check_dtype(dtype)
    dev = resolve_device(device, x, y)
    rx, ry = inspect_pair(x, y, min_samples=4 if unb else 2)
    n, dx, dy = rx.shape[0], rx.shape[1], ry.shape[1]
    if method == "feature" or (method == "auto" and _feature_space_is_cheaper(n, dx, dy)):
        return _ratio(*_streamed_linear_terms(rx, ry, unb, dtype, dev), unb)
    tx, ty = finalize(rx, "x", dtype=dtype, device=dev), finalize(ry, "y", dtype=dtype, device=dev)
    _check_varies(tx, "x")
    _check_varies(ty, "y")
    tx, ty = center(tx), center(ty)  # HSIC is translation invariant; centring first avoids cancellation
    return _ratio(*_gram_terms(tx @ tx.T, ty @ ty.T, unb), unb)


# --------------------------------------------------------------------------------------------------
# Minibatch CKA
# --------------------------------------------------------------------------------------------------


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
        method: Literal["auto", "feature", "gram"] = "auto",
        dtype: torch.dtype = torch.float64,
        device: Device = None,
    ) -> None:
        if kernel not in ("linear", "rbf"):
            raise InputError(f"kernel must be 'linear' or 'rbf', got {kernel!r}.")
        if method not in ("auto", "feature", "gram"):
            raise InputError(f"method must be 'auto', 'feature' or 'gram', got {method!r}.")
        self.kernel: Kernel = kernel
        self.method = method
        self.bandwidth = bandwidth
        self.dtype = check_dtype(dtype)
        self.device = device
        self.reset()

    def reset(self) -> None:
        """Forget all batches."""
        self._terms: list[tuple[float, float, float]] = []
        self._widths: tuple[int, int] | None = None
        self.n_samples = 0

    @property
    def n_batches(self) -> int:
        """Number of batches added so far."""
        return len(self._terms)

    def update(self, x: Activations, y: Activations) -> None:
        """Add one batch: ``x`` is ``[b, dx]``, ``y`` is ``[b, dy]`` for the same b samples (b >= 4)."""
        tx, ty = as_pair(x, y, dtype=self.dtype, device=self.device, min_samples=4)
        widths = (tx.shape[1], ty.shape[1])
        if self._widths is not None and widths != self._widths:
            raise InputError(
                f"batch feature widths changed from {self._widths} to {widths}; every batch must come from "
                f"the same two layers (call reset() to start a new comparison)."
            )
        self._widths = widths
        b = tx.shape[0]
        if self.kernel == "rbf":
            k = _rbf_from_matrix(tx, self.bandwidth, "x")
            l = _rbf_from_matrix(ty, self.bandwidth, "y")  # noqa: E741
            terms = _gram_terms(k, l, unbiased=True)
        elif self.method == "feature" or (self.method == "auto" and _feature_space_is_cheaper(b, *widths)):
            terms = _linear_hsic_terms(tx, ty, unbiased=True)
        else:
            cx, cy = center(tx), center(ty)
            terms = _gram_terms(cx @ cx.T, cy @ cy.T, unbiased=True)
        self._terms.append(terms)
        self.n_samples += tx.shape[0]

    def compute(self) -> float:
        """Minibatch CKA over the batches added so far."""
        if not self._terms:
            raise InputError("no batches were added; call update(x_batch, y_batch) at least once.")
        m = len(self._terms)
        hxy, hxx, hyy = (math.fsum(t[i] for t in self._terms) / m for i in range(3))
        return _ratio(hxy, hxx, hyy, unbiased=True)


def minibatch_cka(
    x: Activations | Iterable[tuple[Activations, Activations]],
    y: Activations | None = None,
    *,
    batch_size: int | None = None,
    drop_last: bool = False,
    kernel: Kernel = "linear",
    bandwidth: float = 1.0,
    method: Literal["auto", "feature", "gram"] = "auto",
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
