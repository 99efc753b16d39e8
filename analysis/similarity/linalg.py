"""Linear algebra shared by the metrics and the aligners: centring, the SVD on the numerical range, and
ridge whitening (CCA here, :func:`analysis.alignment.fit_cca` there).

>>> import torch
>>> xc = center(torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
>>> w = whitening(xc).w  # plain whitening: W^T C W = I
>>> bool(torch.allclose(w.T @ (xc.T @ xc / 49) @ w, torch.eye(4, dtype=torch.float64)))
True
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["Whitened", "center", "sq_distances", "svd_range", "whitening"]


def center(x: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
    """Subtract each column's mean."""
    return x - x.mean(dim=0, keepdim=True)


def sq_distances(x: Float[Tensor, "n d"]) -> Float[Tensor, "n n"]:
    """Squared Euclidean distances between the rows of ``x`` (>= 0, zero diagonal).

    Computed from the centred rows (distances are translation invariant; centring avoids cancellation).
    """
    x = center(x)
    sq = (x * x).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    return d2


def svd_range(
    xc: Float[Tensor, "n p"],
) -> tuple[Float[Tensor, "n r"], Float[Tensor, " r"], Float[Tensor, "p r"]]:
    """Thin SVD ``xc = U diag(s) V^T`` truncated to the numerical rank r: ``(U [n, r], s [r], V [p, r])``.

    Singular values at or below ``s_max * max(n, p) * eps`` (the rounding level of the SVD) are dropped.
    """
    u, s, vh = torch.linalg.svd(xc, full_matrices=False)
    tol = float(s[0]) * max(xc.shape) * torch.finfo(xc.dtype).eps
    r = int((s > tol).sum())
    return u[:, :r], s[:r], vh[:r].T


class Whitened(NamedTuple):
    """A whitening of centred data ``xc [n, p]`` on its numerical range (rank r)."""

    w: Float[Tensor, "p r"]  # the map: W^T (shrink C + ridge I) W = I on range(C)
    data: Float[Tensor, "n r"]  # xc @ W, computed from the left singular vectors (accurate for small s)


def whitening(
    xc: Float[Tensor, "n p"], shrink: float = 1.0, ridge: float = 0.0, *, relative: bool = False
) -> Whitened:
    """``W [p, r]`` with ``W^T (shrink C + ridge I) W = I`` on the numerical range of ``C = xc^T xc / (n-1)``,
    from the SVD of the centred data ``xc`` (see :func:`svd_range`), and the whitened data ``xc @ W``.

    ``relative=True`` measures ``ridge`` in units of the mean non-zero eigenvalue of C (scale-free).
    Canonical-ridge CCA uses ``shrink = 1 - reg, ridge = reg``; the aligners ``shrink = 1``,
    ``ridge = reg`` relative.
    """
    u, s, v = svd_range(xc)
    lam = s * s / (xc.shape[0] - 1)  # eigenvalues of C on its range
    if relative:
        ridge = ridge * float(lam.mean()) if len(lam) else 0.0
    scale = torch.rsqrt(shrink * lam + ridge)
    return Whitened(v * scale, u * (s * scale))
