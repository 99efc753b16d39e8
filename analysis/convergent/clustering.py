"""Many-to-many correspondences: spectral clustering of both nets' units together (Li et al. 2016 §5).

The units of net A and net B at a layer form one set of ``d_a + d_b`` nodes; the affinity between two
units is the absolute Pearson correlation ``|corr|`` of their activations over the same samples (the
joint ``(d_a + d_b) x (d_a + d_b)`` correlation matrix; the paper's exact affinity is not verified, see
the reference notes). scikit-learn's ``SpectralClustering(affinity="precomputed")`` groups them;
clusters holding units of both nets are subspaces the two nets share even where no single unit
matches. Dead units are left out.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = rng.normal(size=(300, 2))
>>> a = np.c_[z[:, [0]] + 0.1 * rng.normal(size=(300, 2)), z[:, [1]] + 0.1 * rng.normal(size=(300, 2))]
>>> b = a[:, ::-1] + 0.1 * rng.normal(size=(300, 4))
>>> res = joint_clusters(a, b, n_clusters=2)
>>> res.composition[["n_a", "n_b", "mixed"]].values.tolist()
[[2, 2, True], [2, 2, True]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from jaxtyping import Float

from analysis.arrays import check_int
from probes.errors import InputError

from .matching import _corr, live_units, unit_pair

__all__ = ["JointClusters", "joint_clusters", "joint_correlation"]


def joint_correlation(
    a: Float[np.ndarray, "n d_a"], b: Float[np.ndarray, "n d_b"]
) -> Float[np.ndarray, "d_a+d_b d_a+d_b"]:
    """Correlation matrix of the units of ``a`` followed by those of ``b`` (dead units: 0 off-diagonal).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 2))
    >>> joint_correlation(x, x).round(6).shape
    (4, 4)
    """
    x, y = unit_pair(a, b)
    both = np.concatenate([x, y], axis=1)
    c = _corr(both, both)
    np.fill_diagonal(c, 1.0)
    return c


@dataclass
class JointClusters:
    """Cluster labels of both nets' units and what each cluster holds.

    ``units``: one row per live unit: ``net`` ("a"/"b"), ``unit`` (index in its net), ``cluster``.
    ``composition``: one row per cluster: ``cluster, n_a, n_b, mixed`` (holds units of both nets) and
    ``between_abs_corr``, the mean ``|corr|`` between its A units and its B units (NaN if not mixed).
    ``between_abs_corr_random``: the same mean over mixed clusters, pair-weighted, when the labels are
    shuffled (cluster sizes kept), averaged over draws; compare with :meth:`summary`'s observed value.
    """

    units: pd.DataFrame
    composition: pd.DataFrame
    between_abs_corr_random: float

    def summary(self) -> dict[str, float]:
        """Fraction of mixed clusters, pair-weighted mean between-net ``|corr|`` inside clusters, baseline."""
        comp = self.composition
        pairs = comp.n_a * comp.n_b
        mixed = comp[comp.mixed]
        observed = float((mixed.between_abs_corr * pairs[comp.mixed]).sum() / pairs[comp.mixed].sum())
        return {
            "n_clusters": int(len(comp)),
            "frac_mixed": float(comp.mixed.mean()),
            "between_abs_corr": observed if len(mixed) else float("nan"),
            "between_abs_corr_random": self.between_abs_corr_random,
        }


def _between(labels: np.ndarray, is_a: np.ndarray, cab: np.ndarray) -> tuple[list[float], float]:
    """Per-cluster mean |corr| between A and B members, and the pair-weighted mean over clusters."""
    means, total, count = [], 0.0, 0
    for k in range(labels.max() + 1):
        ia = labels[is_a] == k
        ib = labels[~is_a] == k
        block = cab[np.ix_(ia, ib)]
        means.append(float(block.mean()) if block.size else float("nan"))
        total += float(block.sum())
        count += block.size
    return means, total / count if count else float("nan")


def joint_clusters(
    a: Float[np.ndarray, "n d_a"],
    b: Float[np.ndarray, "n d_b"],
    *,
    n_clusters: int,
    seed: int = 0,
    n_random: int = 200,
) -> JointClusters:
    """Spectral clustering of the joint ``|corr|`` affinity of both nets' live units."""
    from sklearn.cluster import SpectralClustering

    check_int(n_clusters, "n_clusters", 2)
    check_int(n_random, "n_random", 1)
    x, y = unit_pair(a, b)
    la, lb = np.flatnonzero(live_units(x)), np.flatnonzero(live_units(y))
    n_nodes = len(la) + len(lb)
    if n_clusters > n_nodes:
        raise InputError(
            f"n_clusters={n_clusters} exceeds the number of live units ({len(la)} in a + {len(lb)} in b); "
            f"use n_clusters <= {n_nodes}."
        )
    aff = np.abs(joint_correlation(x[:, la], y[:, lb]))
    model = SpectralClustering(
        n_clusters=n_clusters, affinity="precomputed", random_state=seed, assign_labels="cluster_qr"
    )
    raw = model.fit_predict(aff)
    # relabel clusters by first appearance so labels are stable and 0..k-1
    order = {lab: i for i, lab in enumerate(dict.fromkeys(raw.tolist()))}
    labels = np.array([order[v] for v in raw.tolist()])
    is_a = np.r_[np.ones(len(la), bool), np.zeros(len(lb), bool)]
    cab = aff[: len(la), len(la) :]
    means, _ = _between(labels, is_a, cab)
    units = pd.DataFrame({"net": np.where(is_a, "a", "b"), "unit": np.r_[la, lb], "cluster": labels})
    k = labels.max() + 1
    n_a = np.bincount(labels[is_a], minlength=k)
    n_b = np.bincount(labels[~is_a], minlength=k)
    comp = pd.DataFrame(
        {
            "cluster": np.arange(k),
            "n_a": n_a,
            "n_b": n_b,
            "mixed": (n_a > 0) & (n_b > 0),
            "between_abs_corr": means,
        }
    )
    rng = np.random.default_rng(seed)
    rand = [_between(rng.permutation(labels), is_a, cab)[1] for _ in range(n_random)]
    return JointClusters(units=units, composition=comp, between_abs_corr_random=float(np.nanmean(rand)))
