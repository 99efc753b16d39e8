"""Input checks shared by the analysis packages: activations and embeddings as checked ``[n, d]`` matrices.

Every public function of :mod:`analysis.similarity`, :mod:`analysis.alignment` and
:mod:`analysis.convergent` that takes activations (n samples in rows, d features in columns, numpy
arrays or torch tensors) converts them here. Bad input raises :class:`probes.errors.InputError` with a
message that names the fix.

* :func:`as_matrix` / :func:`as_pair` - tensors of one dtype on one device (pairs share ``n``);
* :func:`as_array` / :func:`as_array_pair` - the same checks, float64 numpy arrays out;
* :func:`as_square` - a square ``[n, n]`` matrix (Gram, RDM, score matrix);
* :func:`inspect_pair` / :func:`finalize` - check now, convert later block by block (streaming);
* :func:`scale_exponent` - the power of two that brings a matrix's largest value into [0.5, 1).

**Scale.** Metrics that are invariant to rescaling each input (CKA, CCA, Procrustes, RSA, kNN) pass
``scale_free=True``: each matrix is then multiplied by a power of two so its largest absolute value lies
in [0.5, 1) before anything is squared. A power of two is exact in floating point, so ordinary inputs
give the same bits, and inputs like ``x * 1e200`` or ``x * 1e-200`` give the same value instead of an
overflow or a false "zero variance". Functions whose result is in the units of the input (affine maps,
RDMs) keep the values and refuse ones whose squares would overflow ("values too large (overflow)").
* :func:`check_int`, :func:`check_dtype`, :func:`resolve_device` - scalar arguments.

>>> as_pair([[1, 2], [3, 4]], [[0.5], [1.5]])[1].tolist()
[[0.5], [1.5]]
>>> as_pair([[1, 2], [3, 4], [5, 6]], [[0.5], [1.5]])
Traceback (most recent call last):
probes.errors.InputError: x and y must have the same number of samples (rows): got 3 and 2. Row i of both must be the same stimulus; if your layout is [features, samples], pass the transposes.
"""

from __future__ import annotations

import math
import warnings
from typing import TypeAlias

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError

__all__ = [
    "Activations",
    "Device",
    "as_array",
    "as_array_pair",
    "as_matrix",
    "as_pair",
    "as_square",
    "check_dtype",
    "check_int",
    "finalize",
    "inspect_matrix",
    "inspect_pair",
    "resolve_device",
    "scale_exponent",
]

Activations: TypeAlias = Float[Tensor, "n d"] | Float[np.ndarray, "n d"]
"""An ``[n, d]`` activation matrix: rows are samples (stimuli), columns are features (units)."""

Device: TypeAlias = str | torch.device | None

SAME_STIMULUS = (
    "Row i of both must be the same stimulus; if your layout is [features, samples], pass the transposes."
)


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


def check_int(value: object, name: str, lo: int, hi: int | None = None) -> int:
    """``value`` as an int if it is an integer in ``[lo, hi]`` (no upper bound if ``hi`` is None).

    >>> check_int(0, "k", 1)
    Traceback (most recent call last):
    probes.errors.InputError: k must be a positive integer, got 0.
    """
    if hi is not None:
        want = f"an integer in {lo}..{hi}"
    else:
        want = "a positive integer" if lo == 1 else f"an integer >= {lo}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{name} must be {want}, got {value!r}.")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        raise InputError(f"{name} must be {want}, got {v}.")
    return v


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
        raise InputError(f"{name} is complex; these methods need real activations (take .real or .abs()).")
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
            f"{name} has {n} samples (rows) but at least {min_samples} are needed; pass more rows (samples)."
        )
    return t


def scale_exponent(t: Tensor) -> int:
    """The ``e`` for which ``max|t| * 2**e`` lies in [0.5, 1); 0 for an empty, all-zero or non-finite ``t``.

    >>> scale_exponent(torch.tensor([[3.0, -5.0]])), scale_exponent(torch.tensor([[0.75]]))
    (-3, 0)
    """
    if t.numel() == 0:
        return 0
    m = max(abs(float(t.max())), abs(float(t.min())))  # no |t| copy: streamed inputs stay unconverted
    if m == 0.0 or not math.isfinite(m):
        return 0
    return -math.frexp(m)[1]


def _scaled(t: Tensor, exponent: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``t * 2**exponent`` in ``dtype`` on ``device``, scaled in the wider dtype (exact, no overflow)."""
    if exponent == 0:
        return t.to(device=device, dtype=dtype)
    wide = torch.float64 if torch.float64 in (t.dtype, dtype) or not t.is_floating_point() else dtype
    half = exponent // 2  # two factors, each a representable power of two
    return (t.to(device=device, dtype=wide) * 2.0**half * 2.0 ** (exponent - half)).to(dtype)


def _check_magnitude(t: Tensor, name: str, dtype: torch.dtype, max_power: int) -> None:
    """Refuse values whose ``max_power``-th powers, summed over rows and columns, overflow ``dtype``."""
    m = max(abs(float(t.max())), abs(float(t.min()))) if t.numel() else 0.0
    if m == 0.0 or not math.isfinite(m):
        return
    info = torch.finfo(dtype)
    high = math.log2(info.max) - math.log2(max(t.shape)) * (max_power / 2)
    if max_power * math.log2(m) > high:
        raise InputError(
            f"{name} has values up to {m:.3g}: values too large (overflow): their products overflow {dtype} "
            f"here. Rescale {name} first (e.g. divide it by its largest absolute value)."
        )
    if max_power * math.log2(m) < math.log2(info.tiny) - math.log2(info.eps):
        raise InputError(
            f"{name} has values no larger than {m:.3g}: values too small (underflow): their products lose "
            f"all precision in {dtype}. Rescale {name} first (e.g. divide it by its largest absolute value)."
        )


def finalize(
    t: Tensor,
    name: str,
    *,
    dtype: torch.dtype,
    device: torch.device,
    row_offset: int = 0,
    exponent: int | None = None,
    max_power: int = 2,
) -> Tensor:
    """Move an inspected matrix (or a block of its rows starting at ``row_offset``) to ``dtype`` and
    ``device``, raising if it holds NaN or inf.

    ``exponent``: multiply by ``2**exponent`` first (scale-free callers, see :func:`scale_exponent`);
    None keeps the values and refuses ones whose ``max_power``-th powers would overflow ``dtype``.
    """
    if exponent is None:
        _check_magnitude(t, name, dtype, max_power)
    t = _scaled(t, exponent or 0, dtype, device)
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


def as_matrix(
    x: object,
    name: str = "x",
    *,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
    min_samples: int = 2,
    scale_free: bool = False,
) -> Float[Tensor, "n d"]:
    """``x`` as a finite ``[n, d]`` tensor of ``dtype`` on ``device`` with ``n >= min_samples``, ``d >= 1``.

    ``scale_free``: rescale by a power of two (module docstring); else refuse overflowing values.
    """
    dtype = check_dtype(dtype)
    dev = resolve_device(device, x)
    t = inspect_matrix(x, name, min_samples=min_samples)
    exp = scale_exponent(t) if scale_free else None
    return finalize(t, name, dtype=dtype, device=dev, exponent=exp)


def as_square(
    x: object,
    name: str,
    what: str = "matrix",
    *,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
    min_samples: int = 2,
) -> Float[Tensor, "n n"]:
    """:func:`as_matrix` for a square ``[n, n]`` matrix; ``what`` names it in the error (e.g. "RDM")."""
    t = as_matrix(x, name, dtype=dtype, device=device, min_samples=min_samples)
    if t.shape[0] != t.shape[1]:
        raise InputError(f"{name} must be a square [n, n] {what}, got shape {tuple(t.shape)}.")
    return t


def inspect_pair(
    x: object,
    y: object,
    *,
    names: tuple[str, str] = ("x", "y"),
    min_samples: int = 2,
    hint: str = SAME_STIMULUS,
) -> tuple[Tensor, Tensor]:
    """:func:`inspect_matrix` for both inputs, checking they share ``n`` (nothing is converted).

    ``hint`` ends the mismatched-``n`` message: what row i of both inputs must be.
    """
    nx, ny = _rows(x), _rows(y)
    if nx is None or ny is None or nx == ny:
        rx = inspect_matrix(x, names[0], min_samples=min_samples)
        ry = inspect_matrix(y, names[1], min_samples=min_samples)
        nx, ny = rx.shape[0], ry.shape[0]
    if nx != ny:
        raise InputError(
            f"{names[0]} and {names[1]} must have the same number of samples (rows): got {nx} and {ny}. {hint}"
        )
    return rx, ry


def _rows(x: object) -> int | None:
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) == 2:
        return int(shape[0])
    return None


def as_pair(
    x: object,
    y: object,
    *,
    names: tuple[str, str] = ("x", "y"),
    dtype: torch.dtype = torch.float64,
    device: Device = None,
    min_samples: int = 2,
    hint: str = SAME_STIMULUS,
    scale_free: bool = False,
    max_power: int = 2,
) -> tuple[Float[Tensor, "n dx"], Float[Tensor, "n dy"]]:
    """Both inputs as with :func:`as_matrix`, on one device, checking they share ``n`` (see :func:`inspect_pair`).

    ``scale_free``: rescale each input by its own power of two; else refuse values whose
    ``max_power``-th powers overflow ``dtype``.
    """
    dtype = check_dtype(dtype)
    dev = resolve_device(device, x, y)
    rx, ry = inspect_pair(x, y, names=names, min_samples=min_samples, hint=hint)
    ex, ey = (scale_exponent(rx), scale_exponent(ry)) if scale_free else (None, None)
    return (
        finalize(rx, names[0], dtype=dtype, device=dev, exponent=ex, max_power=max_power),
        finalize(ry, names[1], dtype=dtype, device=dev, exponent=ey, max_power=max_power),
    )


def as_array(x: object, name: str = "x", *, min_samples: int = 2) -> Float[np.ndarray, "n d"]:
    """``x`` as a finite float64 ``[n, d]`` numpy array (the checks of :func:`as_matrix`)."""
    return as_matrix(x, name, device="cpu", min_samples=min_samples).numpy()


def as_array_pair(
    x: object,
    y: object,
    *,
    names: tuple[str, str] = ("x", "y"),
    min_samples: int = 2,
    hint: str = SAME_STIMULUS,
) -> tuple[Float[np.ndarray, "n dx"], Float[np.ndarray, "n dy"]]:
    """Both inputs as finite float64 numpy arrays with the same ``n`` (the checks of :func:`as_pair`)."""
    tx, ty = as_pair(x, y, names=names, device="cpu", min_samples=min_samples, hint=hint)
    return tx.numpy(), ty.numpy()
