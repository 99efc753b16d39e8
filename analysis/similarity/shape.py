"""Orthogonal Procrustes and generalized shape metrics (Williams et al. 2021; Ding et al. 2021).

Both inputs are centred (column means removed). Widths may differ: the orthogonal alignment acts on the
wider space, which is the same as zero-padding the narrower view.

* :func:`procrustes_similarity` = ``||X~^T Y~||_*`` with ``X~ = X / ||X||_F`` (nuclear norm), in [0, 1];
  it equals the normalized Bures similarity of the two linear Grams.
* :func:`procrustes_distance` = ``min_Q ||X~ - Y~ Q||_F = sqrt(2 - 2 * similarity)``, in [0, sqrt 2].
* :func:`shape_distance` = angular shape metric ``arccos(||phi(X)^T phi(Y)||_* / (||phi(X)|| ||phi(Y)||))``
  with partial whitening ``phi_alpha(X) = X (alpha I + (1 - alpha) C^{-1/2})``. ``alpha = 1`` is the
  angular Procrustes distance, ``alpha = 0`` whitens fully (CCA-like: 0 for any invertible linear map
  when n > d). Before whitening X is rescaled so its covariance C has mean non-zero eigenvalue 1, which
  makes the metric invariant to isotropic scaling for every alpha. It is a metric (triangle inequality)
  for each fixed alpha.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from analysis.arrays import Activations, Device, as_pair
from probes.errors import InputError

from .linalg import center, svd_range

__all__ = ["procrustes_distance", "procrustes_similarity", "shape_distance"]


def _unit(xc: Tensor, name: str) -> Tensor:
    norm = xc.norm()
    if not float(norm) > 0.0:
        raise InputError(
            f"{name} is constant across samples (zero after centring); shape metrics are undefined."
        )
    return xc / norm


def procrustes_similarity(
    x: Activations, y: Activations, *, dtype: torch.dtype = torch.float64, device: Device = None
) -> float:
    """Nuclear norm of ``X~^T Y~`` for centred, unit-Frobenius-norm ``x [n, dx]``, ``y [n, dy]``; 1 = same shape.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(30, 4))
    >>> q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))
    >>> round(procrustes_similarity(x, 2 * x @ q + 5), 6)
    1.0
    """
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=2, scale_free=True)
    xu, yu = _unit(center(tx), "x"), _unit(center(ty), "y")
    if xu.shape[1] * yu.shape[1] <= xu.shape[0] ** 2:
        m = xu.T @ yu
    else:  # wide inputs: X^T Y and (U_x S_x)^T (U_y S_y) have the same singular values, and this is smaller
        ux, sx, _ = svd_range(xu)
        uy, sy, _ = svd_range(yu)
        m = (ux * sx).T @ (uy * sy)
    return min(1.0, float(torch.linalg.svdvals(m).sum()))


def procrustes_distance(
    x: Activations, y: Activations, *, dtype: torch.dtype = torch.float64, device: Device = None
) -> float:
    """``min over orthogonal Q of ||X~ - Y~ Q||_F`` for centred unit-norm inputs, in [0, sqrt(2)].

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(30, 4))
    >>> round(procrustes_distance(x, x[:, ::-1]), 6)
    0.0
    """
    s = procrustes_similarity(x, y, dtype=dtype, device=device)
    return math.sqrt(max(0.0, 2.0 - 2.0 * s))


def _phi(xc: Tensor, alpha: float, name: str) -> Tensor:
    """Partially whitened representation in its own orthonormal basis: U diag(alpha sqrt(lam) + 1 - alpha)."""
    if not float(xc.norm()) > 0.0:
        raise InputError(
            f"{name} is constant across samples (zero after centring); shape metrics are undefined."
        )
    u, s, _ = svd_range(xc)
    lam = s * s
    lam = lam / lam.mean()  # covariance rescaled to mean eigenvalue 1 (the 1/n factor cancels here)
    return u * (alpha * torch.sqrt(lam) + (1.0 - alpha))


def shape_distance(
    x: Activations,
    y: Activations,
    *,
    alpha: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """Angular generalized shape metric in radians, in [0, pi/2]; ``alpha`` in [0, 1] (1 = Procrustes).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 4))
    >>> w = rng.normal(size=(4, 4))  # invertible, not orthogonal
    >>> round(shape_distance(x, x @ w, alpha=0.0), 6), shape_distance(x, x @ w, alpha=1.0) > 0.01
    (0.0, True)
    """
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be in [0, 1] (1 = Procrustes, 0 = full whitening), got {alpha!r}.")
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=2, scale_free=True)
    px, py = _phi(center(tx), float(alpha), "x"), _phi(center(ty), float(alpha), "y")
    cos = float(torch.linalg.svdvals(px.T @ py).sum() / (px.norm() * py.norm()))
    return math.acos(max(-1.0, min(1.0, cos)))
