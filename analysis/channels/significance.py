"""Multiple-testing-corrected z thresholds for a channel scan (every component × receiver is a test).

A scan tests each sender component against each receiver: ``d_head`` components per head pair, over all
pairs, per mode. Keeping pairs whose strongest component has ``z >= 3`` ignores that, so most pairs of a
large model pass. :func:`corrected_threshold` turns a family-wise (Bonferroni) or false-discovery-rate
(Benjamini–Hochberg) level into a z threshold over all the component tests of one mode.

p-values come from a normal approximation of each receiver's null (``p = 1 − Φ(z)``): the null holds
only ``n_null`` draws, so its own p-values stop at ``1 / (n_null + 1)``, far above ``α / n_tests``.
:func:`tail_ratio` says how far the null's 99th percentile sits from the normal one (above 1: a heavier
tail, so these p-values are optimistic), and the dashboard shows it beside the threshold.

>>> t = corrected_threshold(np.array([8.0, 7.0, 0.5, -1.0]), "bonferroni", alpha=0.05)
>>> round(t.z, 3), t.n_tests
(2.241, 4)
>>> corrected_threshold(np.array([8.0, 7.0, 0.5, -1.0]), "bh").z < t.z
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from probes.errors import InputError

__all__ = [
    "CORRECTIONS",
    "Threshold",
    "corrected_threshold",
    "scan_thresholds",
    "tail_ratio",
    "threshold_table",
]

CORRECTIONS = {
    "bonferroni": "Bonferroni (family-wise error)",
    "bh": "Benjamini–Hochberg (false discovery rate)",
}
Z_NORMAL_P99 = 2.3263478740408408  # Φ⁻¹(0.99); scipy is imported only where p-values are computed


@dataclass(frozen=True)
class Threshold:
    """A z threshold: ``method`` at level ``alpha`` over ``n_tests`` component tests."""

    method: str
    alpha: float
    n_tests: int
    z: float

    def describe(self) -> str:
        """One line for a caption, e.g. ``Bonferroni (family-wise error) 5% over 2,254,080 tests: z ≥ 5.53``."""
        return f"{CORRECTIONS[self.method]} {self.alpha:.0%} over {self.n_tests:,} component tests: z ≥ {self.z:.2f}"


def corrected_threshold(z: np.ndarray, method: str, alpha: float = 0.05) -> Threshold:
    """The smallest z that is significant under ``method`` (``bonferroni`` or ``bh``) at level ``alpha``.

    Bonferroni: ``Φ⁻¹(1 − α/m)``. BH: ``Φ⁻¹(1 − kα/m)`` for the largest ``k`` with ``p_(k) ≤ kα/m``, so
    exactly the ``k`` discoveries reach it; when no test passes, the Bonferroni z (nothing reaches it).
    """
    from scipy.stats import norm

    if method not in CORRECTIONS:
        raise InputError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}.")
    if not 0 < alpha < 1:
        raise InputError(f"the significance level must be between 0 and 1, got {alpha!r}; 0.05 is usual.")
    z = np.asarray(z, dtype=np.float64)
    z = z[np.isfinite(z)]
    m = int(z.size)
    if m == 0:
        raise InputError("no finite z-scores to threshold: the scan is empty.")
    bonferroni = float(norm.isf(alpha / m))
    if method == "bonferroni":
        return Threshold(method, alpha, m, bonferroni)
    p = np.sort(norm.sf(z))
    passed = np.nonzero(p <= alpha * np.arange(1, m + 1) / m)[0]
    if passed.size == 0:
        return Threshold(method, alpha, m, bonferroni)
    k = int(passed[-1]) + 1
    return Threshold(method, alpha, m, float(norm.isf(alpha * k / m)))  # exactly the k discoveries pass


def scan_thresholds(scan: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Both corrections per mode of a component-level scan: ``mode, method, alpha, n_tests, z``."""
    rows = []
    for mode, part in scan.groupby("mode", observed=True):
        z = part["z"].to_numpy()
        for method in CORRECTIONS:
            t = corrected_threshold(z, method, alpha)
            rows.append({"mode": str(mode), "method": method, "alpha": alpha, "n_tests": t.n_tests, "z": t.z})
    return pd.DataFrame(rows)


def threshold_table(thresholds: pd.DataFrame) -> pd.DataFrame:
    """:func:`scan_thresholds` as one row per mode: ``composition, <correction> z …, component tests``.

    >>> t = pd.DataFrame({"mode": ["Q", "Q"], "method": ["bonferroni", "bh"], "alpha": [0.05, 0.05],
    ...     "n_tests": [100, 100], "z": [3.29, 2.5]})
    >>> threshold_table(t).to_dict("records")
    [{'composition': 'Q', 'Bonferroni z': 3.29, 'Benjamini–Hochberg z': 2.5, 'component tests': 100}]
    """
    wide = thresholds.pivot(index="mode", columns="method", values="z").round(2)
    wide.columns = [f"{CORRECTIONS[m].split(' (')[0]} z" for m in wide.columns]
    order = [f"{CORRECTIONS[m].split(' (')[0]} z" for m in CORRECTIONS if m in set(thresholds["method"])]
    tests = thresholds.groupby("mode")["n_tests"].max().rename("component tests")
    out = wide[order].join(tests).reindex([m for m in "QKV" if m in wide.index])
    return out.reset_index().rename(columns={"mode": "composition"})


def tail_ratio(null_table: pd.DataFrame, mode: str) -> float:
    """Mean z of the null's 99th percentile over the receivers of ``mode``, divided by the normal 2.33.

    >>> df = pd.DataFrame({"mode": ["Q"], "null_mean": [0.0], "null_std": [1.0], "null_p99": [2.5]})
    >>> round(tail_ratio(df, "Q"), 2)
    1.07
    """
    part = null_table[null_table["mode"].astype(str) == mode]
    z99 = (part["null_p99"] - part["null_mean"]) / part["null_std"]
    return float(z99.mean() / Z_NORMAL_P99)
