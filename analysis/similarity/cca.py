"""Canonical correlation analysis: CCA, SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018).

Closed form, no iterations: each centred view is reduced to an orthonormal basis of its column space by
an SVD (X = U S V^T), optionally ridge-whitened, and the canonical correlations are the singular values
of the whitened cross-covariance. Regularisation follows the canonical-ridge convention (as in cca-zoo's
``RidgeCCA``): the covariance of each view is replaced by ``(1 - reg) C + reg I``, ``reg`` in [0, 1).

Guard rails (reference note §4.5):

* Centred data live in an (n - 1)-dimensional space, so two views with ``dx + dy`` usable features share
  at least ``dx + dy - n + 1`` directions and that many canonical correlations are 1 whatever the data
  (all of them once one view has ``d >= n - 1``). Unregularised CCA therefore **raises**
  :class:`~probes.errors.InputError` when ``n <= dx + dy``; fixes: more samples, ``reg > 0``, or
  :func:`svcca` (which first keeps a few top singular directions). Even above the bound, correlations
  are inflated unless ``n >> dx + dy``.
* Plain CCA (``reg = 0``) is invariant to rescaling either view, so inputs are rescaled by a power of two
  first (exact; ``x * 1e200`` works). Ridge CCA is not (the ridge is absolute): there, values whose
  squares overflow are refused ("values too large (overflow)").
* Zero-variance units (dead neurons) are masked (dropped) before the fit instead of producing NaN;
  a view with no varying unit raises.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.arrays import Activations, Device, as_pair
from probes.errors import InputError

from .linalg import center, svd_range, whitening

__all__ = ["canonical_correlations", "cca_similarity", "pwcca", "svcca"]

_REL_TOL = 1e-10  # a unit whose std is below this fraction of the largest std counts as constant


def _mask_constant(xc: Tensor, name: str) -> Tensor:
    std = xc.std(dim=0)
    top = float(std.max())
    keep = std > _REL_TOL * top if top > 0 else torch.zeros_like(std, dtype=torch.bool)
    if not bool(keep.any()):
        raise InputError(f"every unit of {name} is constant across samples; CCA needs varying activations.")
    return xc[:, keep] if not bool(keep.all()) else xc


def _check_reg(reg: float) -> float:
    if not (isinstance(reg, int | float) and 0.0 <= reg < 1.0):
        raise InputError(f"reg must be in [0, 1) (0 = plain CCA), got {reg!r}.")
    return float(reg)


def _prepare(x: Tensor, y: Tensor, reg: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Centre, mask constant units, check n against d: (xc, yc, whitened X, whitened Y)."""
    xc = _mask_constant(center(x), "x")
    yc = _mask_constant(center(y), "y")
    n = x.shape[0]
    dx, dy = xc.shape[1], yc.shape[1]
    if reg == 0.0 and n <= dx + dy:
        raise InputError(
            f"CCA is degenerate with n = {n} samples and dx + dy = {dx} + {dy} varying features "
            f"(n <= dx + dy): at least {dx + dy - n + 1} canonical correlations would be 1 regardless of the "
            f"data. Use more samples than dx + dy, pass reg > 0, reduce dimensions first with svcca(..., "
            f"keep=k), or use linear_cka instead."
        )
    # each view in a basis of its range with ridge covariance (1 - reg) C + reg I = I
    return xc, yc, whitening(xc, 1.0 - reg, reg).data, whitening(yc, 1.0 - reg, reg).data


def _fit(xw: Tensor, yw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Canonical variates (hx, hy, each [n, k], unit norm) and their correlations [k], in solution order."""
    n = xw.shape[0]
    a, sv, bt = torch.linalg.svd(xw.T @ yw / (n - 1), full_matrices=False)
    k = sv.shape[0]
    hx = xw @ a[:, :k]
    hy = yw @ bt[:k].T
    hx = hx / hx.norm(dim=0, keepdim=True).clamp_min(torch.finfo(hx.dtype).tiny)
    hy = hy / hy.norm(dim=0, keepdim=True).clamp_min(torch.finfo(hy.dtype).tiny)
    rho = (hx * hy).sum(dim=0).clamp(-1.0, 1.0)  # variates are centred, so this is their correlation
    return hx, hy, rho


def canonical_correlations(
    x: Activations,
    y: Activations,
    *,
    reg: float = 0.0,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> Float[np.ndarray, " k"]:
    """Canonical correlations of ``x [n, dx]`` and ``y [n, dy]``, descending, ``k = min(rank_x, rank_y)``.

    With ``reg > 0`` the directions are those of ridge CCA, in the order of its objective, and the values
    are the actual correlations of the resulting canonical variates (then not always sorted). Raises if ``n <= dx + dy`` and ``reg == 0`` (see module docstring).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 3))
    >>> canonical_correlations(x, x @ [[1.0, 2, 0], [0, 1, 0], [1, 0, 1]]).round(6).tolist()
    [1.0, 1.0, 1.0]
    """
    r = _check_reg(reg)
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=3, scale_free=reg == 0)
    _, _, xw, yw = _prepare(tx, ty, r)
    _, _, rho = _fit(xw, yw)
    return rho.cpu().numpy()


def cca_similarity(
    x: Activations,
    y: Activations,
    *,
    reg: float = 0.0,
    summary: str = "mean",
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """Mean canonical correlation (``summary='mean'``, rho-bar) or mean squared one (``'r2'``, R^2_CCA).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 4))
    >>> round(cca_similarity(x, x + 0.5 * rng.normal(size=(200, 4))), 2)
    0.91
    """
    rho = canonical_correlations(x, y, reg=reg, dtype=dtype, device=device)
    if summary == "mean":
        return float(rho.mean())
    if summary == "r2":
        return float((rho**2).mean())
    raise InputError(f"summary must be 'mean' or 'r2', got {summary!r}.")


def _svd_reduce(xc: Tensor, keep: int | float, name: str) -> Tensor:
    u, s, _ = svd_range(xc)
    if isinstance(keep, bool) or not isinstance(keep, int | float):
        raise InputError(f"keep must be an int (dimensions) or a float in (0, 1] (variance), got {keep!r}.")
    if isinstance(keep, int):
        if keep < 1:
            raise InputError(f"keep must be >= 1 dimension, got {keep}.")
        if keep > s.shape[0]:
            warnings.warn(
                f"{name} has rank {s.shape[0]} < keep={keep}; keeping all {s.shape[0]} directions.",
                stacklevel=3,
            )
        k = min(keep, s.shape[0])
    else:
        if not 0.0 < keep <= 1.0:
            raise InputError(f"a float keep is the fraction of variance to keep, in (0, 1]; got {keep}.")
        frac = torch.cumsum(s * s, 0) / (s * s).sum()
        k = min(int((frac < keep - 1e-12).sum()) + 1, s.shape[0])
    return u[:, :k] * s[:k]


def svcca(
    x: Activations,
    y: Activations,
    *,
    keep: int | float = 0.99,
    reg: float = 0.0,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """SVCCA: keep the top singular directions of each centred view, then mean canonical correlation.

    ``keep`` is a number of directions (int) or a fraction of variance (float; the paper uses 0.99).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 20)) @ np.diag(np.r_[np.ones(5) * 10, np.ones(15) * 0.01])
    >>> round(svcca(x, x @ rng.normal(size=(20, 20)), keep=5), 4)
    1.0
    """
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=3, scale_free=reg == 0)
    xr = _svd_reduce(_mask_constant(center(tx), "x"), keep, "x")
    yr = _svd_reduce(_mask_constant(center(ty), "y"), keep, "y")
    r = _check_reg(reg)
    _, _, xw, yw = _prepare(xr, yr, r)
    _, _, rho = _fit(xw, yw)
    return float(rho.mean())


def pwcca(
    x: Activations,
    y: Activations,
    *,
    reg: float = 0.0,
    symmetric: bool = False,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """Projection-weighted CCA (Morcos et al. 2018): ``sum_i a_i rho_i / sum_i a_i``.

    ``a_i = sum_j |<h_i, x_j>|`` weights canonical correlation i by how much of ``x``'s (centred) units
    the unit-norm canonical variate ``h_i`` accounts for. It is **asymmetric** (weights come from ``x``);
    ``symmetric=True`` returns the mean of ``pwcca(x, y)`` and ``pwcca(y, x)`` (as Kornblith et al. 2019).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 5))
    >>> round(pwcca(x, x[:, ::-1] * 2.0), 6)
    1.0
    """
    r = _check_reg(reg)
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=3, scale_free=reg == 0)
    xc, yc, xw, yw = _prepare(tx, ty, r)
    hx, hy, rho = _fit(xw, yw)

    def weighted(h: Tensor, units: Tensor) -> float:
        a = (h.T @ units).abs().sum(dim=1)
        return float((a * rho).sum() / a.sum())

    forward = weighted(hx, xc)
    return 0.5 * (forward + weighted(hy, yc)) if symmetric else forward
