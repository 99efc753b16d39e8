"""Nearest-neighbour alignment: mutual k-NN and CKNNA (Huh et al. 2024, "The Platonic Representation
Hypothesis").

* :func:`mutual_knn`: for each sample, the k nearest other samples in ``x`` and in ``y``; the score is
  the mean fraction of shared neighbours, in [0, 1]. Chance level is ``k / (n - 1)``
  (:func:`mutual_knn_chance`): report it next to every score. Huh et al. L2-normalise rows and use
  cosine similarity (``metric='cosine'``, the default).
* :func:`cknna`: CKA restricted to mutual-neighbour pairs (Huh et al. 2024, eq. in §A; reference code
  ``minyoungg/platonic-rep``, ``metrics.py``, ``AlignmentMetrics.cknna``). With linear kernels
  ``K = X X^T``, ``L = Y Y^T``, ``M_K[i, j] = 1`` if j is among the k largest entries of row i of K
  (j != i), likewise ``M_L``, and ``M = M_K * M_L``::

      CKNNA = HSIC(M*K, M*L) / sqrt(HSIC(M_K*K, M_K*K) HSIC(M_L*L, M_L*L))

  with the unbiased HSIC by default. By default the masked kernels are used as they are, as in the
  published definition and the reference code; since the kNN relation is not symmetric they are not
  symmetric matrices, and CKNNA(x, y) may differ slightly from CKNNA(y, x). ``symmetric=True``
  symmetrises each masked kernel ``A`` to ``(A + A^T) / 2`` first (a pair that is a neighbour one way
  only gets weight 1/2 both ways), which makes the score symmetric in ``x`` and ``y``; on random data the
  two differ by about 0.004-0.016 (n = 200-1024, k = 10). Two details differ from the reference code on
  purpose: it adds 1e-6 to the denominator (we raise on a non-positive self-HSIC instead), and with
  ``unbiased=False`` it lets a sample be its own neighbour (here self is excluded in both estimators,
  as in the paper's definition). With ``k = n - 1`` every off-diagonal pair is kept and CKNNA equals
  debiased linear CKA (``unbiased=True``) of the (normalised) features, in both variants.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from analysis.arrays import Activations, Device, as_pair, check_int
from probes.errors import InputError

from .hsic import cka_ratio, hsic_biased, hsic_unbiased
from .linalg import sq_distances

__all__ = ["cknna", "mutual_knn", "mutual_knn_chance"]


def _normalize(x: Tensor, name: str) -> Tensor:
    norms = x.norm(dim=1, keepdim=True)
    zero = (norms.flatten() == 0).nonzero().flatten()
    if zero.numel():
        raise InputError(
            f"{name} has all-zero rows {zero[:5].tolist()}, which cannot be L2-normalised; drop them or pass "
            f"normalize=False / metric='euclidean'."
        )
    return x / norms


def _knn_mask(sim: Tensor, k: int) -> Tensor:
    """Boolean [n, n] mask of each row's k most similar other samples."""
    s = sim.clone()
    s.fill_diagonal_(-math.inf)
    idx = torch.topk(s, k, dim=1).indices
    mask = torch.zeros_like(s, dtype=torch.bool)
    mask.scatter_(1, idx, True)
    return mask


def _similarity(x: Tensor, metric: str, name: str) -> Tensor:
    if metric == "cosine":
        xn = _normalize(x, name)
        return xn @ xn.T
    if metric == "euclidean":
        return -sq_distances(x)
    raise InputError(f"metric must be 'cosine' or 'euclidean', got {metric!r}.")


def mutual_knn_chance(n: int, k: int) -> float:
    """Expected :func:`mutual_knn` score for unrelated representations, ``k / (n - 1)``.

    >>> round(mutual_knn_chance(1024, 10), 4)
    0.0098
    """
    n = check_int(n, "n", 2)
    k = check_int(k, "k", 1, n - 1)
    return k / (n - 1)


def mutual_knn(
    x: Activations,
    y: Activations,
    *,
    k: int = 10,
    metric: Literal["cosine", "euclidean"] = "cosine",
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """Mean fraction of shared k nearest neighbours (self excluded) of ``x [n, dx]`` and ``y [n, dy]``.

    Memory is O(n^2). Chance level is ``k / (n - 1)``; ties in similarity are broken arbitrarily.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 8))
    >>> mutual_knn(x, 3 * x, k=5)
    1.0
    """
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=2, scale_free=True)
    kk = _check_k(k, tx.shape[0])
    mx = _knn_mask(_similarity(tx, metric, "x"), kk)
    my = _knn_mask(_similarity(ty, metric, "y"), kk)
    return float((mx & my).sum(dim=1).to(tx.dtype).mean() / kk)


def _check_k(k: object, n: int) -> int:
    """``k`` as an int in ``1..n-1`` (each sample has ``n - 1`` others)."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise InputError(f"k (neighbours per sample) must be a positive integer, got {k!r}.")
    if k < 1 or k > n - 1:
        raise InputError(
            f"k = {k} neighbours is out of range for {n} samples: each sample has {n - 1} others, so use "
            f"1 <= k <= {n - 1} (or pass more samples)."
        )
    return k


def cknna(
    x: Activations,
    y: Activations,
    *,
    k: int = 10,
    normalize: bool = True,
    unbiased: bool = True,
    symmetric: bool = False,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> float:
    """Centered kernel nearest-neighbour alignment of ``x [n, dx]`` and ``y [n, dy]`` (linear kernels).

    ``normalize`` L2-normalises rows first (as Huh et al.); ``unbiased`` picks the HSIC estimator
    (n >= 4); ``symmetric`` symmetrises the masked kernels (module docstring; the default follows the
    published definition). ``k = n - 1`` with ``normalize=False`` reproduces
    ``linear_cka(x, y, debiased=True)``.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(60, 8))
    >>> round(cknna(x, x, k=10), 6)
    1.0
    """
    tx, ty = as_pair(x, y, dtype=dtype, device=device, min_samples=4 if unbiased else 2, scale_free=True)
    kk = _check_k(k, tx.shape[0])
    if normalize:
        tx, ty = _normalize(tx, "x"), _normalize(ty, "y")
    gk, gl = tx @ tx.T, ty @ ty.T
    mk, ml = _knn_mask(gk, kk).to(tx.dtype), _knn_mask(gl, kk).to(tx.dtype)
    m = mk * ml
    h = hsic_unbiased if unbiased else hsic_biased

    def masked(a: Tensor) -> Tensor:
        return 0.5 * (a + a.T) if symmetric else a

    kx, ky = masked(m * gk), masked(m * gl)
    kxx, kyy = masked(mk * gk), masked(ml * gl)
    return cka_ratio(float(h(kx, ky)), float(h(kxx, kxx)), float(h(kyy, kyy)), unbiased)
