"""Gram matrices and HSIC estimators: the pieces every CKA variant (:mod:`.cka`, :mod:`.minibatch`,
:func:`~analysis.similarity.knn.cknna`) is built from.

Two HSIC estimators of Gram matrices K, L of the same n samples:

* biased (Gretton et al. 2005): tr(K H L H) / (n - 1)^2 with H = I - 11^T / n. Inflated when the
  feature count is not much smaller than n: on independent Gaussian data linear CKA is about p/(n+p).
* unbiased (Song et al. 2012), with K~, L~ the Grams with zeroed diagonals::

      HSIC_u = [tr(K~ L~) + 1^T K~ 1 * 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) * 1^T K~ L~ 1] / (n(n-3))

  It needs n >= 4 and is about 0 on independent data. :func:`unbiased_from_sums` is its one implementation:
  from Grams, from masked kernels and from feature-space sums alike.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from analysis.arrays import Activations, Device, as_matrix, as_square, resolve_device
from probes.errors import InputError

from .linalg import center, sq_distances

__all__ = ["Kernel", "hsic", "linear_gram", "rbf_gram"]

Kernel = Literal["linear", "rbf"]


# --------------------------------------------------------------------------------------------------
# Gram matrices
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


def _median(v: Tensor) -> Tensor:
    """Median with numpy semantics (mean of the two middle values for even counts)."""
    s, _ = torch.sort(v)
    m = s.numel()
    return s[m // 2] if m % 2 else 0.5 * (s[m // 2 - 1] + s[m // 2])


def rbf_kernel(x: Float[Tensor, "n d"], bandwidth: float, name: str) -> Float[Tensor, "n n"]:
    """RBF Gram of a converted matrix, ``sigma = bandwidth * median pairwise distance``."""
    if not (isinstance(bandwidth, int | float) and bandwidth > 0 and math.isfinite(bandwidth)):
        raise InputError(f"bandwidth must be a positive fraction of the median distance, got {bandwidth!r}.")
    d2 = sq_distances(x)
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
    return rbf_kernel(t, bandwidth, "x")


def gram(x: Float[Tensor, "n d"], kernel: Kernel, bandwidth: float, name: str) -> Float[Tensor, "n n"]:
    """The ``kernel`` Gram of a converted matrix (linear: of the centred matrix, same HSIC, less cancellation)."""
    if kernel == "linear":
        xc = center(x)
        return xc @ xc.T
    if kernel == "rbf":
        return rbf_kernel(x, bandwidth, name)
    raise InputError(f"kernel must be 'linear' or 'rbf', got {kernel!r}.")


# --------------------------------------------------------------------------------------------------
# HSIC estimators
# --------------------------------------------------------------------------------------------------
# Both are written for general square matrices (tr(AB) = sum(A * B^T), 1^T A B 1 = colsums(A) . rowsums(B)),
# so masked, non-symmetric kernels (CKNNA) go through the same code as Grams.


def unbiased_from_sums(trace: Tensor, sum_k: Tensor, sum_l: Tensor, dot: Tensor, n: int) -> Tensor:
    """Song et al.'s estimator from ``tr(K~ L~)``, ``1^T K~ 1``, ``1^T L~ 1`` and ``1^T K~ L~ 1``."""
    return (trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 * dot / (n - 2)) / (n * (n - 3))


def _zero_diagonal(k: Tensor) -> Tensor:
    kt = k.clone()
    kt.fill_diagonal_(0.0)
    return kt


def _double_center(k: Tensor) -> Tensor:
    """``H K H``: rows and columns centred."""
    kc = k - k.mean(dim=0, keepdim=True)
    return kc - kc.mean(dim=1, keepdim=True)


def hsic_biased(k: Float[Tensor, "n n"], l: Float[Tensor, "n n"]) -> Tensor:  # noqa: E741
    """Biased HSIC ``tr(K H L H) / (n - 1)^2`` of square matrices."""
    n = k.shape[0]
    return (_double_center(k) * l.T).sum() / (n - 1) ** 2


def hsic_unbiased(k: Float[Tensor, "n n"], l: Float[Tensor, "n n"]) -> Tensor:  # noqa: E741
    """Unbiased HSIC (Song et al. 2012) of square matrices, n >= 4."""
    kt, lt = _zero_diagonal(k), _zero_diagonal(l)
    k1, l1 = kt.sum(dim=0), lt.sum(dim=1)
    return unbiased_from_sums((kt * lt.T).sum(), k1.sum(), l1.sum(), k1 @ l1, k.shape[0])


def gram_terms(
    k: Float[Tensor, "n n"],
    l: Float[Tensor, "n n"],  # noqa: E741
    unbiased: bool,
) -> tuple[float, float, float]:
    """(HSIC(K, L), HSIC(K, K), HSIC(L, L)) for symmetric Grams, sharing the centred/zeroed copies."""
    n = k.shape[0]
    if not unbiased:  # tr(KHLH) = <HKH, HLH>; the 1/(n-1)^2 factor cancels in CKA
        kc, lc = _double_center(k), _double_center(l)
        return float((kc * lc).sum()), float((kc * kc).sum()), float((lc * lc).sum())
    kt, lt = _zero_diagonal(k), _zero_diagonal(l)
    k1, l1 = kt.sum(dim=1), lt.sum(dim=1)
    sk, sl = k1.sum(), l1.sum()
    return (
        float(unbiased_from_sums((kt * lt).sum(), sk, sl, k1 @ l1, n)),
        float(unbiased_from_sums((kt * kt).sum(), sk, sk, k1 @ k1, n)),
        float(unbiased_from_sums((lt * lt).sum(), sl, sl, l1 @ l1, n)),
    )


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
    kt = as_square(k, "k", "Gram matrix", dtype=dtype, device=dev)
    lt = as_square(l, "l", "Gram matrix", dtype=dtype, device=dev)
    if kt.shape != lt.shape:
        raise InputError(f"k and l must have the same shape, got {tuple(kt.shape)} and {tuple(lt.shape)}.")
    if unbiased:
        if kt.shape[0] < 4:
            raise InputError(f"the unbiased HSIC needs n >= 4 samples, got {kt.shape[0]}; pass more samples.")
        return float(hsic_unbiased(kt, lt))
    return float(hsic_biased(kt, lt))


# --------------------------------------------------------------------------------------------------
# Linear HSIC in feature space
# --------------------------------------------------------------------------------------------------


class FeatureSums:
    """Running sums that give the linear HSIC terms from centred row blocks, in O(dx dy) memory.

    With centred X (so X^T 1 = 0) and row norms r_i = |x_i|^2 (s_i for Y): tr(K~ L~) = ||X^T Y||_F^2 -
    sum r s, K~ 1 = -r and 1^T K~ 1 = -sum r, so :func:`unbiased_from_sums` needs only ||X^T Y||_F^2 and
    sums over rows. The biased HSIC is ||X^T Y||_F^2 up to a factor that cancels in CKA.
    """

    def __init__(self) -> None:
        self.xty: Tensor | None = None
        self.xtx: Tensor | None = None
        self.yty: Tensor | None = None
        self.rows: dict[str, Tensor] = {}

    def add(self, cx: Float[Tensor, "b dx"], cy: Float[Tensor, "b dy"], unbiased: bool) -> None:
        """Add a block of centred rows."""
        blocks = {"xty": cx.T @ cy, "xtx": cx.T @ cx, "yty": cy.T @ cy}
        for key, value in blocks.items():
            cur = getattr(self, key)
            setattr(self, key, value if cur is None else cur + value)
        if unbiased:
            r, s = (cx * cx).sum(dim=1), (cy * cy).sum(dim=1)
            for key, value in (("r", r.sum()), ("s", s.sum()), ("rs", r @ s), ("rr", r @ r), ("ss", s @ s)):
                self.rows[key] = self.rows[key] + value if key in self.rows else value

    def terms(self, n: int, unbiased: bool) -> tuple[float, float, float]:
        """(HSIC(K, L), HSIC(K, K), HSIC(L, L)) over the ``n`` rows added."""
        assert self.xty is not None and self.xtx is not None and self.yty is not None
        fxy = (self.xty * self.xty).sum()
        fxx = (self.xtx * self.xtx).sum()
        fyy = (self.yty * self.yty).sum()
        if not unbiased:
            return float(fxy), float(fxx), float(fyy)
        q = self.rows  # (-sum r)(-sum s) = sum r sum s

        return (
            float(unbiased_from_sums(fxy - q["rs"], q["r"], q["s"], q["rs"], n)),
            float(unbiased_from_sums(fxx - q["rr"], q["r"], q["r"], q["rr"], n)),
            float(unbiased_from_sums(fyy - q["ss"], q["s"], q["s"], q["ss"], n)),
        )


def linear_hsic_terms(
    x: Float[Tensor, "b dx"], y: Float[Tensor, "b dy"], unbiased: bool
) -> tuple[float, float, float]:
    """(HSIC(K, L), HSIC(K, K), HSIC(L, L)) for K = X X^T, L = Y Y^T from converted ``[b, d]`` blocks.

    Both estimators are translation invariant, so X and Y are centred first (also less cancellation).
    """
    acc = FeatureSums()
    acc.add(center(x), center(y), unbiased)
    return acc.terms(x.shape[0], unbiased)


def feature_space_is_cheaper(n: int, dx: int, dy: int) -> bool:
    """d x d products cost n (dx^2 + dy^2 + dx dy); n x n Grams cost n^2 (dx + dy)."""
    return dx * dx + dy * dy + dx * dy <= n * (dx + dy)


# --------------------------------------------------------------------------------------------------
# From HSIC terms to CKA
# --------------------------------------------------------------------------------------------------


def cka_ratio(hxy: float, hxx: float, hyy: float, unbiased: bool) -> float:
    """hxy / sqrt(hxx * hyy), with a non-positive self-HSIC raised as an error instead of returning NaN."""
    if not all(math.isfinite(v) for v in (hxy, hxx, hyy)):
        raise InputError(
            "the HSIC terms overflowed (values too large (overflow)); rescale the inputs first (e.g. divide "
            "each by its largest absolute value) or compute in float64 (dtype=torch.float64)."
        )
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


def raise_constant(name: str) -> None:
    """Raise the error for a representation whose samples are all identical."""
    raise InputError(
        f"{name} has zero variance (all samples identical), so CKA is undefined; check that the "
        f"activations differ across samples."
    )


def check_varies(x: Float[Tensor, "n d"], name: str) -> None:
    """Raise if every row of ``x`` equals the first."""
    if not bool((x != x[:1]).any()):
        raise_constant(name)
