"""Aligners fitted on anchor pairs ``(x_a [n_a, p], y_a [n_a, q])`` (3D, text) and their query scores.

Every scorer returns ``S [n_x, n_y]``: the score of shape ``i`` against caption ``j`` (higher = better
match); the true pairs sit on the diagonal when the query sets are in corresponding order.

* **affine** (full space): least squares ``x ~ y R + b`` (text -> 3D, as Hadgi et al. report), optional
  ridge; score = cosine between ``x_i`` and ``T(y_j)``, both centred on the anchor mean of x.
* **local CKA** (Maniparambil et al.): ``S_ij = CKA([X_A; x_i], [Y_A; y_j])``, linear kernels, computed
  in the rank-one form of the reference note (O(k^2) per pair, equal to the naive version).
* **CCA subspace** (Hadgi et al.): ridge CCA on the anchors only, keep ``d`` canonical directions and
  project both sides, then ``cca`` (cosine in the subspace, no second step), ``cca_affine`` or
  ``cca_local_cka``.

All computation in float64. Bad input (mismatched counts, ``d`` above what the anchors support, NaN)
raises :class:`probes.errors.InputError`.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> y = torch.randn(50, 4, generator=g, dtype=torch.float64)
>>> x = y @ torch.randn(4, 3, generator=g, dtype=torch.float64) + 1.0
>>> amap = fit_affine(y, x)
>>> bool(torch.allclose(amap(y), x))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.arrays import as_matrix, as_pair, check_int
from analysis.similarity.linalg import whitening
from probes.errors import InputError

__all__ = [
    "FULL_METHODS",
    "METHODS",
    "SUBSPACE_METHODS",
    "AffineMap",
    "CCAProjection",
    "affine_scores",
    "alignment_scores",
    "cosine_scores",
    "fit_affine",
    "fit_cca",
    "local_cka_naive",
    "local_cka_scores",
]

FULL_METHODS = ("affine", "local_cka")
SUBSPACE_METHODS = ("cca", "cca_affine", "cca_local_cka")
METHODS = FULL_METHODS + SUBSPACE_METHODS

Matrix = Float[Tensor, "n d"] | Float[np.ndarray, "n d"]

_PAIRED = "Anchors must be paired one to one (row i of both is the same shape/caption pair)."


def _anchors_and_queries(
    x_a: Matrix, y_a: Matrix, x_q: Matrix, y_q: Matrix, min_anchors: int = 2
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Paired anchors and queries of the same widths, as float64 tensors."""
    xa, ya = as_pair(x_a, y_a, names=("x_a", "y_a"), min_samples=min_anchors, hint=_PAIRED)
    xq, yq = as_matrix(x_q, "x_q", min_samples=1), as_matrix(y_q, "y_q", min_samples=1)
    if xq.shape[1] != xa.shape[1] or yq.shape[1] != ya.shape[1]:
        raise InputError(
            f"query widths ({xq.shape[1]}, {yq.shape[1]}) differ from the anchors' ({xa.shape[1]}, {ya.shape[1]})."
        )
    return xa, ya, xq, yq


# --------------------------------------------------------------------------------------------- affine
@dataclass
class AffineMap:
    """``T(y) = y @ weight + bias`` (``weight [q, p]``); ``dst_mean`` is the anchor mean of the target."""

    weight: Float[Tensor, "q p"]
    bias: Float[Tensor, " p"]
    dst_mean: Float[Tensor, " p"]

    def __call__(self, y: Matrix) -> Float[Tensor, "n p"]:
        ty = as_matrix(y, "y", min_samples=1)
        if ty.shape[1] != self.weight.shape[0]:
            raise InputError(f"y has {ty.shape[1]} features, the map was fitted on {self.weight.shape[0]}.")
        return ty @ self.weight + self.bias


def fit_affine(src: Matrix, dst: Matrix, *, ridge: float = 0.0) -> AffineMap:
    """Least-squares affine map ``dst ~ src @ R + b`` from paired rows ``src [n, q]``, ``dst [n, p]``.

    ``ridge`` (>= 0) adds ``ridge * trace(S^T S) / q`` to the normal equations of the centred source
    ``S`` (scale-free); 0 is plain (minimum-norm) least squares.
    """
    s, t = as_pair(src, dst, names=("src", "dst"), hint=_PAIRED)
    if not (isinstance(ridge, int | float) and ridge >= 0 and np.isfinite(ridge)):
        raise InputError(f"ridge must be a finite number >= 0, got {ridge!r}.")
    ms, mt = s.mean(0), t.mean(0)
    sc, tc = s - ms, t - mt
    if ridge == 0:
        weight = torch.linalg.lstsq(sc, tc, driver="gelsd").solution
    else:
        gram = sc.T @ sc
        lam = ridge * torch.trace(gram) / gram.shape[0]
        weight = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), sc.T @ tc)
    return AffineMap(weight, mt - ms @ weight, mt)


def cosine_scores(a: Matrix, b: Matrix) -> Float[Tensor, "n m"]:
    """Cosine similarity of every row of ``a [n, k]`` with every row of ``b [m, k]``.

    >>> cosine_scores([[1.0, 0.0]], [[2.0, 0.0], [0.0, 1.0]]).tolist()
    [[1.0, 0.0]]
    """
    ta, tb = as_matrix(a, "a", min_samples=1), as_matrix(b, "b", min_samples=1)
    if ta.shape[1] != tb.shape[1]:
        raise InputError(f"a and b need the same width, got {ta.shape[1]} and {tb.shape[1]}.")
    ta = ta / ta.norm(dim=1, keepdim=True).clamp_min(1e-300)
    tb = tb / tb.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return ta @ tb.T


def affine_scores(x_q: Matrix, y_q: Matrix, amap: AffineMap) -> Float[Tensor, "nx ny"]:
    """``S_ij = cos(x_i - m, T(y_j) - m)`` with ``m`` the anchor mean of x."""
    tx = as_matrix(x_q, "x_q", min_samples=1)
    return cosine_scores(tx - amap.dst_mean, amap(y_q) - amap.dst_mean)


# ------------------------------------------------------------------------------------------ local CKA
def local_cka_scores(x_a: Matrix, y_a: Matrix, x_q: Matrix, y_q: Matrix) -> Float[Tensor, "nx ny"]:
    """``S_ij = linear CKA([x_a; x_q[i]], [y_a; y_q[j]])`` for all pairs, in closed form.

    With ``n = n_a + 1``, anchor column sums ``a, b`` and ``C0 = X_a^T Y_a - a b^T / n``, the centred
    cross-covariance of the augmented sets is ``C0 + (1 - 1/n) x y^T - (a y^T + x b^T) / n``; its squared
    Frobenius norm and the two self-norms expand into inner products computed for all pairs at once.
    """
    xa, ya, xq, yq = _anchors_and_queries(x_a, y_a, x_q, y_q)
    mx, my = xa.mean(0), ya.mean(0)  # CKA is translation invariant: centre for conditioning
    xa, xq, ya, yq = xa - mx, xq - mx, ya - my, yq - my
    n = xa.shape[0] + 1
    alpha = 1.0 - 1.0 / n
    a, b = xa.sum(0), ya.sum(0)
    c0 = xa.T @ ya - torch.outer(a, b) / n
    # cross term, all pairs
    x_c0 = xq @ c0  # [nx, q]
    cross = (
        (c0 * c0).sum()
        + 2 * (alpha * x_c0 @ yq.T - (a @ c0 @ yq.T)[None, :] / n - (x_c0 @ b)[:, None] / n)
        + _rank_two_sq(xq, yq, a, b, n, alpha)
    )
    return cross / torch.sqrt(_self_sq(xa, xq, n, alpha)[:, None] * _self_sq(ya, yq, n, alpha)[None, :])


def _rank_two_sq(x: Tensor, y: Tensor, a: Tensor, b: Tensor, n: int, alpha: float) -> Tensor:
    """``||u y^T - x b^T / n||^2`` with ``u = alpha x - a / n``, for all pairs."""
    u = alpha * x - a / n
    return (
        ((u * u).sum(1))[:, None] * ((y * y).sum(1))[None, :]
        - (2.0 / n) * ((u * x).sum(1))[:, None] * (y @ b)[None, :]
        + ((x * x).sum(1))[:, None] * float(b @ b) / n**2
    )


def _self_sq(anchors: Tensor, q: Tensor, n: int, alpha: float) -> Tensor:
    """``||centred([anchors; q_i])^T centred([anchors; q_i])||_F^2`` for every query row."""
    a = anchors.sum(0)
    g = anchors.T @ anchors - torch.outer(a, a) / n
    qg = q @ g
    xx = (q * q).sum(1)
    ax = q @ a
    p_sq = alpha**2 * xx**2 - (4 * alpha / n) * ax * xx + (2 * float(a @ a) * xx + 2 * ax**2) / n**2
    return (g * g).sum() + 2 * (alpha * (qg * q).sum(1) - 2 * (qg @ a) / n) + p_sq


def local_cka_naive(x_a: Matrix, y_a: Matrix, x: Matrix, y: Matrix) -> float:
    """Reference: linear CKA of the anchors with one appended pair (``x [1, p]``, ``y [1, q]``)."""
    from analysis.similarity import linear_cka

    xa, ya = as_pair(x_a, y_a, names=("x_a", "y_a"), hint=_PAIRED)
    return linear_cka(
        torch.cat([xa, as_matrix(x, "x", min_samples=1)]), torch.cat([ya, as_matrix(y, "y", min_samples=1)])
    )


# ------------------------------------------------------------------------------------------------ CCA
@dataclass
class CCAProjection:
    """Canonical directions fitted on anchors: ``transform_x(x) = (x - mean_x) @ w_x`` (``[n, d]``)."""

    mean_x: Float[Tensor, " p"]
    mean_y: Float[Tensor, " q"]
    w_x: Float[Tensor, "p d"]
    w_y: Float[Tensor, "q d"]
    rho: Float[Tensor, " d"]  # (regularised) canonical correlations on the anchors

    @property
    def d(self) -> int:
        return int(self.w_x.shape[1])

    def transform_x(self, x: Matrix) -> Float[Tensor, "n d"]:
        return (as_matrix(x, "x", min_samples=1) - self.mean_x) @ self.w_x

    def transform_y(self, y: Matrix) -> Float[Tensor, "n d"]:
        return (as_matrix(y, "y", min_samples=1) - self.mean_y) @ self.w_y


def fit_cca(x_a: Matrix, y_a: Matrix, d: int, *, reg: float = 1e-2, clip: bool = False) -> CCAProjection:
    """Ridge CCA of the anchors, keeping the top ``d`` canonical directions.

    ``reg`` (>= 0) adds ``reg * mean eigenvalue`` to each view's covariance (scale-free ridge); with few
    anchors relative to ``p + q`` use ``reg > 0`` (reference note §4.5). ``d`` must not exceed the rank
    either view has on the anchors (at most ``min(p, q, n_a - 1)``); with ``clip=True`` a ``d`` above the
    numerical rank keeps only the directions that exist (``proj.d`` tells how many).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(200, 2))
    >>> proj = fit_cca(np.hstack([z, rng.normal(size=(200, 3))]), z @ [[1.0, 2.0], [0.0, 1.0]], 2, reg=0)
    >>> proj.rho.round(decimals=6).tolist()
    [1.0, 1.0]
    """
    xa, ya = as_pair(x_a, y_a, names=("x_a", "y_a"), min_samples=3, hint=_PAIRED)
    if not (isinstance(reg, int | float) and reg >= 0 and np.isfinite(reg)):
        raise InputError(f"reg must be a finite number >= 0, got {reg!r}.")
    d = check_int(d, "d (subspace dimension)", 1)
    n, p, q = xa.shape[0], xa.shape[1], ya.shape[1]
    upper = min(p, q, n - 1)
    if d > upper:
        raise InputError(
            f"d = {d} is larger than the subspace the anchors support: at most min(p, q, n_anchors - 1) = "
            f"min({p}, {q}, {n - 1}) = {upper}. Use d <= {upper} or more anchors."
        )
    mx, my = xa.mean(0), ya.mean(0)
    xc, yc = xa - mx, ya - my
    wx, wy = whitening(xc, 1.0, reg, relative=True), whitening(yc, 1.0, reg, relative=True)
    rx, ry = wx.w.shape[1], wy.w.shape[1]  # numerical ranks
    if clip:
        d = min(d, rx, ry)
    elif d > min(rx, ry):
        raise InputError(
            f"d = {d} exceeds the numerical rank of the anchors (x: {rx}, y: {ry}); "
            "use a smaller d or more varied anchors."
        )
    u, s, vt = torch.linalg.svd(wx.data.T @ wy.data / (n - 1), full_matrices=False)  # W_x^T C_xy W_y
    return CCAProjection(mx, my, wx.w @ u[:, :d], wy.w @ vt[:d].T, s[:d])


# --------------------------------------------------------------------------------------------- driver
def alignment_scores(
    method: str,
    x_a: Matrix,
    y_a: Matrix,
    x_q: Matrix,
    y_q: Matrix,
    *,
    d: int | None = None,
    cca_reg: float = 1e-2,
    ridge: float = 1e-3,
    projection: CCAProjection | None = None,
) -> Float[Tensor, "nx ny"]:
    """Scores ``[n_x, n_y]`` of query shapes ``x_q`` against query captions ``y_q`` by ``method``.

    ``method`` is one of :data:`METHODS`; the subspace methods need ``d`` (or a fitted ``projection``).
    """
    if method not in METHODS:
        raise InputError(f"unknown alignment method {method!r}; choose from {', '.join(METHODS)}.")
    xa, ya, xq, yq = _anchors_and_queries(x_a, y_a, x_q, y_q, min_anchors=3)
    if method in SUBSPACE_METHODS:
        if projection is None:
            if d is None:
                raise InputError(f"method {method!r} needs the subspace dimension d.")
            projection = fit_cca(xa, ya, d, reg=cca_reg)
        xa, ya = projection.transform_x(xa), projection.transform_y(ya)
        xq, yq = projection.transform_x(xq), projection.transform_y(yq)
    if method == "cca":
        return cosine_scores(xq, yq)
    if method in ("affine", "cca_affine"):
        return affine_scores(xq, yq, fit_affine(ya, xa, ridge=ridge))
    return local_cka_scores(xa, ya, xq, yq)
