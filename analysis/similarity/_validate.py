"""Input checks and conversions shared by the similarity metrics (private).

Every public metric takes activations as ``[n, d]`` matrices (n samples in rows, d features in
columns), as numpy arrays or torch tensors, and turns them into tensors of one dtype on one device
here. Bad input raises :class:`probes.errors.InputError` with a message that names the fix.
"""

from __future__ import annotations

import warnings
from typing import TypeAlias

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError

Activations: TypeAlias = Float[Tensor, "n d"] | Float[np.ndarray, "n d"]
"""An ``[n, d]`` activation matrix: rows are samples (stimuli), columns are features (units)."""

Device: TypeAlias = str | torch.device | None


def resolve_device(device: Device, *inputs: object) -> torch.device:
    """The device to compute on: ``device`` if given, else that of the first tensor input, else CPU."""
    if device is not None:
        return torch.device(device)
    for x in inputs:
        if isinstance(x, Tensor):
            return x.device
    return torch.device("cpu")


def check_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accept only real floating dtypes (float64 is the default everywhere)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InputError(f"dtype must be a floating torch dtype such as torch.float64, got {dtype!r}.")
    return dtype


def as_matrix(
    x: object,
    name: str = "x",
    *,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
    min_samples: int = 2,
) -> Tensor:
    """Convert ``x`` to a finite ``[n, d]`` tensor of ``dtype`` on ``device`` with ``n >= min_samples``."""
    dtype = check_dtype(dtype)
    dev = resolve_device(device, x)
    return finalize(inspect_matrix(x, name, min_samples=min_samples), name, dtype=dtype, device=dev)


def inspect_matrix(x: object, name: str = "x", *, min_samples: int = 2) -> Tensor:
    """Check shape and number type of ``x`` without converting it: a tensor sharing memory with ``x``
    where possible (numpy arrays are wrapped, not copied), on ``x``'s device, in ``x``'s dtype."""
    if isinstance(x, Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise InputError(
                f"{name} could not be read as an array ({exc}); pass a numpy array or a tensor."
            ) from exc
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise InputError(
                f"{name} has dtype {arr.dtype}, which is not a real number type; pass float activations."
            )
        with warnings.catch_warnings():  # read-only arrays are fine: they are never written to
            warnings.filterwarnings("ignore", message=".*not writable.*")
            t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise InputError(
            f"{name} is complex; similarity metrics need real activations (take .real or .abs())."
        )
    if t.ndim != 2:
        hint = (
            "reshape it with x.reshape(-1, 1) (one feature per sample)"
            if t.ndim == 1
            else "flatten the trailing dimensions with x.reshape(x.shape[0], -1), or move positions into samples"
        )
        raise InputError(
            f"{name} must be a 2-D [n_samples, n_features] matrix, got shape {tuple(t.shape)}; {hint}."
        )
    n, d = t.shape
    if d == 0:
        raise InputError(f"{name} has no features (shape {tuple(t.shape)}); pass at least one column.")
    if n < min_samples:
        raise InputError(
            f"{name} has {n} samples but this metric needs at least {min_samples}; pass more rows (samples)."
        )
    return t


def finalize(
    t: Tensor, name: str, *, dtype: torch.dtype, device: torch.device, row_offset: int = 0
) -> Tensor:
    """Move an inspected matrix (or a block of its rows starting at ``row_offset``) to ``dtype`` and
    ``device``, raising if it holds NaN or inf."""
    t = t.to(device=device, dtype=dtype)
    if bool(torch.isfinite(t.sum())):  # one cheap pass: NaN/inf anywhere would make the sum non-finite
        return t
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        row, col = (int(v) for v in bad[0])
        raise InputError(
            f"{name} contains NaN/inf values (first at row {row + row_offset}, column {col}); drop those "
            f"samples (e.g. x[np.isfinite(x).all(1)] for both inputs) or impute them first."
        )
    return t  # finite values whose sum overflowed


def as_pair(
    x: object,
    y: object,
    *,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
    min_samples: int = 2,
) -> tuple[Tensor, Tensor]:
    """Convert both inputs with :func:`as_matrix` onto one device, checking they share ``n``."""
    dtype = check_dtype(dtype)
    dev = resolve_device(device, x, y)
    rx, ry = inspect_pair(x, y, min_samples=min_samples)
    return finalize(rx, "x", dtype=dtype, device=dev), finalize(ry, "y", dtype=dtype, device=dev)


def inspect_pair(x: object, y: object, *, min_samples: int = 2) -> tuple[Tensor, Tensor]:
    """:func:`inspect_matrix` for both inputs, checking they share ``n`` (nothing is converted)."""
    nx, ny = _rows(x), _rows(y)
    if nx is None or ny is None or nx == ny:
        rx = inspect_matrix(x, "x", min_samples=min_samples)
        ry = inspect_matrix(y, "y", min_samples=min_samples)
        nx, ny = rx.shape[0], ry.shape[0]
    if nx != ny:
        raise InputError(
            f"x and y must have the same number of samples (rows): got {nx} and {ny}. Row i of both must be "
            f"the same stimulus; if your layout is [features, samples], pass the transposes."
        )
    return rx, ry


def _rows(x: object) -> int | None:
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) == 2:
        return int(shape[0])
    return None


def center(x: Tensor) -> Tensor:
    """Subtract each column's mean."""
    return x - x.mean(dim=0, keepdim=True)


def check_int(value: object, name: str, lo: int, hi: int | None = None) -> int:
    """Return ``value`` if it is an integer in ``[lo, hi]``, else raise InputError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{name} must be an integer, got {value!r}.")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise InputError(f"{name} must be in {rng}, got {v}.")
    return v
