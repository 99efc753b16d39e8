"""One-to-one unit matching between two nets at a layer (Li et al. 2016, "Convergent Learning" §3).

``C[i, j]`` is the Pearson correlation of unit i of net A and unit j of net B over the same samples.
Two matchings on C:

* **Hungarian** (max-weight bipartite, one-to-one): ``scipy.optimize.linear_sum_assignment(C,
  maximize=True)``; with unequal widths it matches ``min(d_a, d_b)`` pairs;
* **semi-matching** (greedy, many-to-one): every unit of A takes its best partner in B, so its mean
  correlation is an upper bound on Hungarian's (when every A unit is matched, ``d_a <= d_b``).

A random one-to-one pairing is the baseline. Dead units (zero variance over the samples) have no
correlation: they are left out of every matching (masked, never NaN) and counted.

>>> import numpy as np
>>> a = np.random.default_rng(0).normal(size=(200, 5))
>>> df = match_units(a, a[:, [2, 0, 4, 1, 3]], method="hungarian")
>>> df.unit_b.tolist(), df.correlation.round(6).tolist()
([1, 3, 0, 4, 2], [1.0, 1.0, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
from jaxtyping import Float
from scipy.optimize import linear_sum_assignment

from analysis.arrays import as_array_pair, check_int
from probes.errors import InputError

MatchMethod = Literal["hungarian", "semi", "random"]
MATCH_METHODS = ("hungarian", "semi", "random")

__all__ = [
    "MATCH_METHODS",
    "correlation_matrix",
    "live_units",
    "match_units",
    "matching_summary",
    "same_assignment",
    "unit_pair",
]

unit_pair = partial(
    as_array_pair,
    names=("a", "b"),
    min_samples=3,
    hint="Row i of both must come from the same input (same image and position).",
)
"""Two nets' activations at a layer as float64 ``[n, d_a]``, ``[n, d_b]`` arrays (rows: samples, columns:
units) with the checks of :func:`analysis.arrays.as_array_pair`; ``names=`` renames them in errors."""


def live_units(x: Float[np.ndarray, "n d"], rtol: float = 1e-10) -> np.ndarray:
    """Boolean mask of units whose standard deviation is not ~0 (dead ReLU units are masked out)."""
    sd = x.std(axis=0)
    scale = max(float(np.abs(x).max()), 1.0)
    return sd > rtol * scale


def correlation_matrix(
    a: Float[np.ndarray, "n d_a"], b: Float[np.ndarray, "n d_b"]
) -> Float[np.ndarray, "d_a d_b"]:
    """Pearson correlations between every unit of ``a`` and every unit of ``b`` (same n samples).

    Entries involving a dead (constant) unit are 0, not NaN.

    >>> import numpy as np
    >>> x = np.arange(12.0).reshape(6, 2) ** 2
    >>> correlation_matrix(x, np.c_[-x[:, 0], np.ones(6)]).round(3).tolist()
    [[-1.0, 0.0], [-0.999, 0.0]]
    """
    x, y = unit_pair(a, b)
    return _corr(x, y)


def _corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(0)
    yc = y - y.mean(0)
    sx = np.sqrt((xc * xc).sum(0))
    sy = np.sqrt((yc * yc).sum(0))
    lx, ly = live_units(x), live_units(y)
    xs = np.where(lx, xc / np.where(lx, sx, 1.0), 0.0)
    ys = np.where(ly, yc / np.where(ly, sy, 1.0), 0.0)
    return np.clip(xs.T @ ys, -1.0, 1.0)


def _assign(
    c: np.ndarray, method: str, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the matched pairs in the (live-unit) correlation matrix ``c``."""
    if method == "hungarian":
        return linear_sum_assignment(c, maximize=True)
    if method == "semi":
        return np.arange(c.shape[0]), c.argmax(axis=1)
    if method == "random":
        rng = rng or np.random.default_rng(0)
        k = min(c.shape)
        rows = np.sort(rng.permutation(c.shape[0])[:k])
        return rows, rng.permutation(c.shape[1])[:k]
    raise InputError(f"unknown matching method {method!r}; choose from {list(MATCH_METHODS)}.")


def _live_corr(a: object, b: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = unit_pair(a, b)
    ia, ib = np.flatnonzero(live_units(x)), np.flatnonzero(live_units(y))
    if len(ia) == 0 or len(ib) == 0:
        raise InputError(
            f"every unit of {'a' if len(ia) == 0 else 'b'} is constant over the samples (dead); "
            "there is nothing to match. Use a layer or inputs where units vary."
        )
    return _corr(x[:, ia], y[:, ib]), ia, ib


def match_units(
    a: Float[np.ndarray, "n d_a"],
    b: Float[np.ndarray, "n d_b"],
    *,
    method: MatchMethod = "hungarian",
    seed: int = 0,
) -> pd.DataFrame:
    """Matched unit pairs: columns ``unit_a, unit_b, correlation`` (original unit indices), by ``unit_a``.

    ``method``: ``"hungarian"`` (one-to-one), ``"semi"`` (each A unit's best B unit) or ``"random"``
    (a random one-to-one pairing drawn with ``seed``). Dead units are left out.
    """
    c, ia, ib = _live_corr(a, b)
    rows, cols = _assign(c, method, np.random.default_rng(seed))
    df = pd.DataFrame({"unit_a": ia[rows], "unit_b": ib[cols], "correlation": c[rows, cols]})
    return df.sort_values("unit_a", ignore_index=True)


def same_assignment(a: Float[np.ndarray, "n d_a"], b: Float[np.ndarray, "n d_b"]) -> float:
    """Fraction of A units whose Hungarian partner is also their semi-matching (best) partner.

    >>> import numpy as np
    >>> a = np.random.default_rng(1).normal(size=(50, 4))
    >>> same_assignment(a, a[:, ::-1])
    1.0
    """
    c, _, _ = _live_corr(a, b)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return float(np.mean(c.argmax(axis=1)[rows] == cols))


def matching_summary(
    a: Float[np.ndarray, "n d_a"], b: Float[np.ndarray, "n d_b"], *, n_random: int = 100, seed: int = 0
) -> pd.DataFrame:
    """Mean/median matched correlation per method, the random baseline averaged over ``n_random`` draws.

    Columns: ``method`` (hungarian, semi, random), ``mean_corr``, ``median_corr``, ``sd_corr`` (for
    random: the sd of the mean over draws), ``n_matched``, ``n_dead_a``, ``n_dead_b``.
    """
    check_int(n_random, "n_random", 1)
    x, y = unit_pair(a, b)
    c, ia, ib = _live_corr(x, y)
    dead = (x.shape[1] - len(ia), y.shape[1] - len(ib))
    rows = []
    for method in ("hungarian", "semi"):
        r, k = _assign(c, method)
        v = c[r, k]
        rows.append((method, v.mean(), np.median(v), v.std(), len(v)))
    rng = np.random.default_rng(seed)
    means, medians = [], []
    for _ in range(n_random):
        r, k = _assign(c, "random", rng)
        means.append(c[r, k].mean())
        medians.append(np.median(c[r, k]))
    rows.append(("random", np.mean(means), np.mean(medians), np.std(means), min(c.shape)))
    df = pd.DataFrame(rows, columns=["method", "mean_corr", "median_corr", "sd_corr", "n_matched"])
    return df.assign(n_dead_a=dead[0], n_dead_b=dead[1])
