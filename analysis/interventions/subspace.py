"""Pure maths on orthonormal bases: coordinates, adding or replacing inside a subspace, rescaling along
one direction (no model, no hooks)."""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError

__all__ = [
    "add_in_subspace",
    "check_orthonormal",
    "coordinates",
    "orthonormalize",
    "replace_in_subspace",
    "rescale_along",
]


def orthonormalize(vectors: Float[Tensor, "d k"]) -> Float[Tensor, "d k"]:
    """An orthonormal basis (columns) of the span of ``vectors``' columns (QR; full column rank needed).

    >>> Q = orthonormalize(torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]))
    >>> torch.allclose(Q.T @ Q, torch.eye(2), atol=1e-6)
    True
    """
    if not isinstance(vectors, Tensor) or vectors.ndim not in (1, 2) or not vectors.is_floating_point():
        raise InputError(
            f"vectors must be a float tensor [d, k] (columns span the subspace), got {getattr(vectors, 'shape', vectors)}."
        )
    V = vectors[:, None] if vectors.ndim == 1 else vectors
    Q, R = torch.linalg.qr(V.double())
    diag = R.diagonal().abs()
    if diag.numel() == 0 or bool((diag <= 1e-8 * diag.max().clamp_min(1e-30)).any()):
        raise InputError(
            f"vectors [d={V.shape[0]}, k={V.shape[1]}] are linearly dependent; drop redundant columns."
        )
    return (Q * R.diagonal().sign()).to(vectors.dtype)


def check_orthonormal(basis: Float[Tensor, "d k"], d: int, what: str = "basis") -> Float[Tensor, "d k"]:
    """Return ``basis`` (a 1-D vector becomes ``[d, 1]``) if it has ``d`` rows and orthonormal columns."""
    if not isinstance(basis, Tensor) or basis.ndim not in (1, 2) or not basis.is_floating_point():
        raise InputError(
            f"{what} must be a float tensor [d, k] with orthonormal columns, got {type(basis).__name__}."
        )
    B = basis[:, None] if basis.ndim == 1 else basis
    if B.shape[0] != d or B.shape[1] < 1 or B.shape[1] > d:
        raise InputError(
            f"{what} has shape {tuple(B.shape)}; expected [d={d}, k] with 1 <= k <= {d} (columns = directions)."
        )
    gram = B.double().T @ B.double()
    err = float((gram - torch.eye(B.shape[1], dtype=torch.float64, device=B.device)).abs().max())
    if not math.isfinite(err) or err > 1e-4:
        raise InputError(
            f"{what} columns are not orthonormal (max |BᵀB − I| = {err:.2g} > 1e-4); pass orthonormalize(B)."
        )
    return B


def coordinates(x: Float[Tensor, "... d"], basis: Float[Tensor, "d k"]) -> Float[Tensor, "... k"]:
    """Coordinates of ``x`` in the orthonormal basis: ``x B``."""
    return x @ basis.to(x.device, x.dtype)


def add_in_subspace(
    x: Float[Tensor, "... d"], basis: Float[Tensor, "d k"], coords: Float[Tensor, "... k"]
) -> Float[Tensor, "... d"]:
    """``x + c Bᵀ``: add the vector with coordinates ``c`` inside the subspace.

    >>> B = torch.eye(3)[:, :1]
    >>> add_in_subspace(torch.ones(3), B, torch.tensor([2.0])).tolist()
    [3.0, 1.0, 1.0]
    """
    B = basis.to(x.device, x.dtype)
    return x + coords.to(x.device, x.dtype) @ B.T


def replace_in_subspace(
    x: Float[Tensor, "... d"], basis: Float[Tensor, "d k"], target: Float[Tensor, "... k"]
) -> Float[Tensor, "... d"]:
    """``x − (x B) Bᵀ + t Bᵀ``: coordinates become ``t``, the orthogonal complement is unchanged.

    >>> B = torch.eye(3)[:, :2]
    >>> replace_in_subspace(torch.tensor([5.0, 6.0, 7.0]), B, torch.tensor([0.0, 1.0])).tolist()
    [0.0, 1.0, 7.0]
    """
    B = basis.to(x.device, x.dtype)
    return x + (target.to(x.device, x.dtype) - x @ B) @ B.T


def rescale_along(x: Float[Tensor, "... d"], v: Float[Tensor, " d"], alpha: float) -> Float[Tensor, "... d"]:
    """``x + (α − 1)(x·v) v`` for a unit ``v``: the component along ``v`` times ``α`` (0: projected off).

    >>> rescale_along(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0]), 0.0).tolist()
    [0.0, 4.0]
    """
    v = v.to(x.device, x.dtype)
    return x + (alpha - 1.0) * (x @ v)[..., None] * v
