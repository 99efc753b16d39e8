"""Representational similarity analysis: dissimilarity matrices (RDMs) and their comparison.

An RDM is an ``[n, n]`` matrix of dissimilarities between the n samples (stimuli) of one
representation. RSA compares two RDMs by correlating their upper triangles (``i < j``), so the two
representations may have different widths.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import scipy.stats
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.arrays import Activations, Device, as_matrix, as_pair, as_square, resolve_device
from probes.errors import InputError

from .linalg import sq_distances

__all__ = ["compare_rdms", "rdm", "rsa"]

RdmMetric = Literal["correlation", "euclidean", "sqeuclidean"]
Comparison = Literal["spearman", "pearson", "kendall"]


def _rdm(x: Tensor, metric: str) -> Tensor:
    if metric == "correlation":
        xc = x - x.mean(dim=1, keepdim=True)
        norms = xc.norm(dim=1)
        tol = 16.0 * torch.finfo(x.dtype).eps * math.sqrt(x.shape[1]) * x.abs().amax(dim=1)
        flat = (norms <= tol).nonzero()
        if flat.numel():
            raise InputError(
                f"correlation distance is undefined for samples whose pattern is constant across features "
                f"(rows {flat.flatten()[:5].tolist()}); drop them or use metric='euclidean'."
            )
        xn = xc / norms[:, None]
        d = (1.0 - xn @ xn.T).clamp_(0.0, 2.0)
    elif metric in ("euclidean", "sqeuclidean"):
        d = sq_distances(x)
        if metric == "euclidean":
            d = d.sqrt_()
    else:
        raise InputError(f"metric must be 'correlation', 'euclidean' or 'sqeuclidean', got {metric!r}.")
    d = 0.5 * (d + d.T)
    d.fill_diagonal_(0.0)
    return d


def rdm(
    x: Activations,
    metric: RdmMetric = "correlation",
    *,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> Float[Tensor, "n n"]:
    """Representational dissimilarity matrix ``[n, n]`` of ``x [n, d]`` (zero diagonal, symmetric).

    ``'correlation'``: 1 - Pearson correlation between two samples' patterns across features;
    ``'euclidean'``: Euclidean distance; ``'sqeuclidean'``: its square.

    >>> rdm([[0.0, 0.0], [3.0, 4.0]], "euclidean").tolist()
    [[0.0, 5.0], [5.0, 0.0]]
    """
    t = as_matrix(x, "x", dtype=dtype, device=device, min_samples=2)
    return _rdm(t, metric)


def _rank(v: Tensor) -> Tensor:
    """Ranks 1..m with ties given their average rank."""
    order = torch.argsort(v)
    _, inverse, counts = torch.unique_consecutive(v[order], return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(v.dtype)
    avg = ends - (counts.to(v.dtype) - 1.0) / 2.0
    ranks = torch.empty_like(v)
    ranks[order] = avg[inverse]
    return ranks


def _pearson(a: Tensor, b: Tensor) -> float:
    a = a - a.mean()
    b = b - b.mean()
    na, nb = a.norm(), b.norm()
    if not (float(na) > 0 and float(nb) > 0):
        raise InputError(
            "an RDM's upper triangle is constant (all dissimilarities equal), so its correlation with "
            "another RDM is undefined; check for collapsed representations or use more varied samples."
        )
    return float(max(-1.0, min(1.0, float((a @ b) / (na * nb)))))


def _upper(d: Tensor) -> Tensor:
    iu = torch.triu_indices(d.shape[0], d.shape[0], offset=1, device=d.device)
    return d[iu[0], iu[1]]


def compare_rdms(
    rdm_a: Float[Tensor, "n n"] | Float[np.ndarray, "n n"],
    rdm_b: Float[Tensor, "n n"] | Float[np.ndarray, "n n"],
    method: Comparison = "spearman",
    *,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """Correlation of the upper triangles (``i < j``) of two ``[n, n]`` RDMs (n >= 3).

    ``method``: ``'spearman'`` (ties get average ranks), ``'pearson'``, or ``'kendall'`` (tau-b).

    >>> round(compare_rdms([[0, 1, 2], [1, 0, 3], [2, 3, 0]], [[0, 10, 20], [10, 0, 90], [20, 90, 0]]), 6)
    1.0
    """
    dev = resolve_device(device, rdm_a, rdm_b)
    a = as_square(rdm_a, "rdm_a", "RDM", dtype=dtype, device=dev, min_samples=3)
    b = as_square(rdm_b, "rdm_b", "RDM", dtype=dtype, device=dev, min_samples=3)
    if a.shape != b.shape:
        raise InputError(
            f"the RDMs must describe the same n samples: got shapes {tuple(a.shape)} and {tuple(b.shape)}."
        )
    va, vb = _upper(a), _upper(b)
    if method == "pearson":
        return _pearson(va, vb)
    if method == "spearman":
        return _pearson(_rank(va), _rank(vb))
    if method == "kendall":
        if float(va.max() - va.min()) == 0.0 or float(vb.max() - vb.min()) == 0.0:
            _pearson(va, vb)  # raises the constant-RDM error
        tau = scipy.stats.kendalltau(va.cpu().numpy(), vb.cpu().numpy(), variant="b").statistic
        return float(tau)
    raise InputError(f"method must be 'spearman', 'pearson' or 'kendall', got {method!r}.")


def rsa(
    x: Activations,
    y: Activations,
    *,
    rdm_metric: RdmMetric = "correlation",
    method: Comparison = "spearman",
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """RSA score: ``compare_rdms(rdm(x), rdm(y), method)`` for ``x [n, dx]``, ``y [n, dy]`` (n >= 3).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 6))
    >>> rsa(x, x), round(rsa(x, 2 * x, rdm_metric="euclidean", method="pearson"), 6)
    (1.0, 1.0)
    """
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=3, scale_free=True)
    return compare_rdms(_rdm(tx, rdm_metric), _rdm(ty, rdm_metric), method, dtype=dtype, device=tx.device)
