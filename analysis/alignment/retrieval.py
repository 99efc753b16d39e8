"""Matching and retrieval metrics on a score matrix whose true pairs lie on the diagonal.

``scores[i, j]`` scores query ``i`` against candidate ``j``; the true candidate of query ``i`` is ``j = i``.
Candidates are **shuffled with a seeded permutation before ranking or matching** (as Maniparambil et
al. do), so ties (e.g. identical captions) are broken at random and no diagonal ordering can leak in.

* :func:`retrieval_accuracy` - top-k accuracy (chance ``k / n``), and optionally *label* top-1: the top
  candidate has the same label (here: the caption's attribute key) as the query (chance depends on the
  label frequencies: :func:`label_chance`);
* :func:`hungarian_accuracy` - one-to-one matching by ``scipy.optimize.linear_sum_assignment``
  (maximise); accuracy = fraction of queries assigned their true candidate (chance ``1 / n``);
* :func:`retrieval_metrics` - both directions (text -> 3D and 3D -> text) and matching, one dict.

>>> import numpy as np
>>> s = np.eye(5)
>>> retrieval_accuracy(s, ks=(1,), seed=0)
{'top1': 1.0}
>>> hungarian_accuracy(s[:, [1, 0, 2, 3, 4]][[1, 0, 2, 3, 4]], seed=0)
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float
from scipy.optimize import linear_sum_assignment

from analysis.arrays import as_square
from probes.errors import InputError

__all__ = [
    "caption_oracle_top1",
    "hungarian_accuracy",
    "label_chance",
    "retrieval_accuracy",
    "retrieval_metrics",
    "true_ranks",
]


def _scores(scores: object) -> Float[np.ndarray, "n n"]:
    """Finite float64 square scores (see :func:`analysis.arrays.as_square`)."""
    what = "matrix (query i's true candidate is column i)"
    return as_square(scores, "scores", what, device="cpu", min_samples=1).numpy()


def _shuffled(s: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores with columns permuted, true column of each query row in the permuted matrix, the permutation)."""
    perm = np.random.default_rng([int(seed), 3]).permutation(s.shape[1])
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    return s[:, perm], inv, perm


def true_ranks(scores: Float[np.ndarray, "n n"], *, seed: int = 0) -> np.ndarray:
    """0-based rank of each query's true candidate among shuffled candidates (ties broken at random).

    >>> true_ranks(np.array([[0.0, 1.0], [0.0, 1.0]]), seed=0).tolist()
    [1, 0]
    """
    s = _scores(scores)
    sh, inv, _ = _shuffled(s, seed)
    order = np.argsort(-sh, axis=1, kind="stable")
    return np.argmax(order == inv[:, None], axis=1)


def retrieval_accuracy(
    scores: Float[np.ndarray, "n n"],
    *,
    ks: Sequence[int] = (1, 5),
    seed: int = 0,
    labels: Sequence | None = None,
) -> dict[str, float]:
    """Top-k accuracies (``top1``, ``top5``, ...) and, given ``labels`` (one per index), ``top1_label``."""
    s = _scores(scores)
    n = s.shape[0]
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1]
    if bad:
        raise InputError(f"ks must be positive integers, got {list(ks)}.")
    ranks = true_ranks(s, seed=seed)
    out = {f"top{k}": float(np.mean(ranks < k)) for k in ks}
    if labels is not None:
        lab = np.asarray(labels)
        if len(lab) != n:
            raise InputError(
                f"labels has {len(lab)} entries but scores has {n} rows; give one label per item."
            )
        sh, _, perm = _shuffled(s, seed)
        top = perm[np.argmax(sh, axis=1)]  # first maximum among shuffled candidates
        out["top1_label"] = float(np.mean(lab[top] == lab))
    return out


def label_chance(labels: Sequence) -> float:
    """Expected ``top1_label`` of a random ranking: ``sum_c (n_c / n) * (n_c / n)`` over label classes.

    >>> label_chance(["a", "a", "b", "b"])
    0.5
    """
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    p = counts / counts.sum()
    return float((p * p).sum())


def caption_oracle_top1(labels: Sequence) -> float:
    """Best expected instance-level ``top1`` of any method that sees only caption meanings: ``mean_i 1 / n_c(i)``.

    A query caption shared by ``n_c`` candidates (same captioned attributes) cannot tell them apart, so even
    a perfect reader of captions ranks its own shape first with probability ``1 / n_c``.

    >>> caption_oracle_top1(["a", "a", "b", "c"])
    0.75
    """
    _, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    return float(np.mean(1.0 / counts[inverse]))


def hungarian_accuracy(
    scores: Float[np.ndarray, "n n"], *, seed: int = 0, labels: Sequence | None = None
) -> float:
    """Fraction of queries matched to their true candidate by the max-score one-to-one assignment.

    With ``labels``, counts a match as correct when the assigned candidate has the query's label.
    """
    s = _scores(scores)
    sh, inv, perm = _shuffled(s, seed)
    rows, cols = linear_sum_assignment(sh, maximize=True)
    if labels is None:
        return float(np.mean(cols == inv[rows]))
    lab = np.asarray(labels)
    return float(np.mean(lab[perm[cols]] == lab[rows]))


def retrieval_metrics(
    scores: Float[np.ndarray, "n_shapes n_captions"],
    *,
    seed: int = 0,
    labels: Sequence | None = None,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Text -> 3D (caption queries rank shapes: ``scores.T``), 3D -> text (``scores``) and matching.

    Keys: ``t2s_top1``, ``t2s_top5``, ``s2t_top1``, ``s2t_top5``, ``matching`` and, with labels,
    ``t2s_top1_label``, ``s2t_top1_label``, ``matching_label``.

    >>> m = retrieval_metrics(np.eye(3), seed=0, ks=(1,))
    >>> m["t2s_top1"], m["s2t_top1"], m["matching"]
    (1.0, 1.0, 1.0)
    """
    s = _scores(scores)
    out: dict[str, float] = {}
    for name, mat in (("t2s", s.T), ("s2t", s)):
        for k, v in retrieval_accuracy(mat, ks=ks, seed=seed, labels=labels).items():
            out[f"{name}_{k}"] = v
    out["matching"] = hungarian_accuracy(s, seed=seed)
    if labels is not None:
        out["matching_label"] = hungarian_accuracy(s, seed=seed, labels=labels)
    return out
