"""Input checks shared by the convergent-learning modules (private).

Activations are ``[n, d]`` matrices: rows are samples (images, or image positions for conv layers),
columns are units. Everything is converted to float64 numpy arrays here.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float

from probes.errors import InputError


def as_units(x: object, name: str, *, min_samples: int = 3) -> Float[np.ndarray, "n d"]:
    """``x`` as a finite float64 ``[n, d]`` array with ``n >= min_samples`` and ``d >= 1``."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} could not be read as a float array ({exc}); pass a numpy array.") from None
    if arr.ndim != 2:
        raise InputError(
            f"{name} must be a 2-D [n_samples, n_units] matrix, got shape {arr.shape}; for conv maps "
            "use layer_activations(..., conv='positions') or reshape to [n, units]."
        )
    n, d = arr.shape
    if d < 1:
        raise InputError(f"{name} has no units (shape {arr.shape}); pass at least one column.")
    if n < min_samples:
        raise InputError(f"{name} has {n} samples; at least {min_samples} are needed. Pass more rows.")
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise InputError(f"{name} contains NaN/inf (first in row {row}); drop or impute those samples.")
    return arr


def as_unit_pair(
    a: object, b: object, names: tuple[str, str] = ("a", "b"), *, min_samples: int = 3
) -> tuple[Float[np.ndarray, "n d_a"], Float[np.ndarray, "n d_b"]]:
    """Both inputs via :func:`as_units`, checking that they have the same number of samples (rows)."""
    x = as_units(a, names[0], min_samples=min_samples)
    y = as_units(b, names[1], min_samples=min_samples)
    if x.shape[0] != y.shape[0]:
        raise InputError(
            f"{names[0]} and {names[1]} must have the same number of samples (rows), got {x.shape[0]} and "
            f"{y.shape[0]}; row i of both must come from the same input (same image and position)."
        )
    return x, y


def live_units(x: Float[np.ndarray, "n d"], rtol: float = 1e-10) -> np.ndarray:
    """Boolean mask of units whose standard deviation is not ~0 (dead ReLU units are masked out)."""
    sd = x.std(axis=0)
    scale = max(float(np.abs(x).max()), 1.0)
    return sd > rtol * scale


def standardize(
    x: Float[np.ndarray, "n d"], mean: np.ndarray | None = None, sd: np.ndarray | None = None
) -> tuple[Float[np.ndarray, "n d"], np.ndarray, np.ndarray]:
    """``(x - mean) / sd`` with column statistics of ``x`` unless given; returns ``(z, mean, sd)``."""
    if mean is None:
        mean = x.mean(axis=0)
    if sd is None:
        sd = x.std(axis=0)
    safe = np.where(sd > 0, sd, 1.0)
    return (x - mean) / safe, mean, sd


def check_pos_int(value: object, name: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < lo:
        raise InputError(f"{name} must be an integer >= {lo}, got {value!r}.")
    return int(value)
