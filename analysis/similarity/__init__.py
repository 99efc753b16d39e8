"""Representation-similarity metrics between activation matrices ``[n, d]`` (n samples, d features).

All metrics accept numpy arrays or torch tensors (the two inputs may have different widths), compute in
torch (``dtype=torch.float64`` by default, ``device=`` for CPU/GPU) and return Python floats. Bad input
(mismatched n, NaN/inf, too few samples) raises :class:`probes.errors.InputError`.

>>> import numpy as np
>>> from analysis.similarity import linear_cka
>>> x = np.random.default_rng(0).normal(size=(64, 16))
>>> round(linear_cka(x, x), 6)
1.0
"""

from .cca import canonical_correlations, cca_similarity, pwcca, svcca
from .cka import MinibatchCKA, cka, hsic, linear_cka, linear_gram, minibatch_cka, rbf_gram
from .grid import METRICS, similarity_grid, similarity_grid_figure
from .knn import cknna, mutual_knn, mutual_knn_chance
from .rsa import compare_rdms, rdm, rsa
from .shape import procrustes_distance, procrustes_similarity, shape_distance

__all__ = [
    "METRICS",
    "MinibatchCKA",
    "canonical_correlations",
    "cca_similarity",
    "cka",
    "cknna",
    "compare_rdms",
    "hsic",
    "linear_cka",
    "linear_gram",
    "minibatch_cka",
    "mutual_knn",
    "mutual_knn_chance",
    "procrustes_distance",
    "procrustes_similarity",
    "pwcca",
    "rbf_gram",
    "rdm",
    "rsa",
    "shape_distance",
    "similarity_grid",
    "similarity_grid_figure",
    "svcca",
]
