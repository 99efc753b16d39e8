"""Representation-similarity metrics between activation matrices ``[n, d]`` (n samples, d features).

All metrics accept numpy arrays or torch tensors (the two inputs may have different widths), compute in
torch (``dtype=torch.float64`` by default, ``device=`` for CPU/GPU) and return Python floats. Bad input
(mismatched n, NaN/inf, too few samples) raises :class:`probes.errors.InputError`. CKA on fewer than
:data:`MIN_CKA_SAMPLES` samples warns (:class:`SmallSampleWarning`), below :data:`MIN_CKA_SAMPLES_HARD` it is
refused (:func:`check_cka_samples`). Scale-invariant metrics rescale their inputs exactly first, so
``x * 1e200`` gives the same value as ``x`` (see :mod:`analysis.arrays`).

>>> import numpy as np
>>> from analysis.similarity import linear_cka
>>> x = np.random.default_rng(0).normal(size=(64, 16))
>>> round(linear_cka(x, x), 6)
1.0

Modules:

* :mod:`.hsic` - Gram matrices (:func:`linear_gram`, :func:`rbf_gram`) and the HSIC estimators (:func:`hsic`);
* :mod:`.cka` - :func:`cka` from Grams (any kernel) and :func:`linear_cka` in feature space;
* :mod:`.minibatch` - :class:`MinibatchCKA` and :func:`minibatch_cka` (streaming, O(d^2) memory);
* :mod:`.cca` - :func:`canonical_correlations`, :func:`cca_similarity`, :func:`svcca`, :func:`pwcca`;
* :mod:`.shape` - :func:`procrustes_similarity`, :func:`procrustes_distance`, :func:`shape_distance`;
* :mod:`.rsa` - :func:`rdm`, :func:`compare_rdms`, :func:`rsa`;
* :mod:`.knn` - :func:`mutual_knn`, :func:`mutual_knn_chance`, :func:`cknna`;
* :mod:`.grid` - :data:`METRICS` by name, :func:`similarity_grid` and its heatmap;
* :mod:`.linalg` - centring, the SVD on the numerical range and the ridge :func:`~.linalg.whitening`
  shared with :mod:`analysis.alignment`.

Input checks live in :mod:`analysis.arrays` (shared with :mod:`analysis.alignment` and
:mod:`analysis.convergent`).
"""

from .cca import canonical_correlations, cca_similarity, pwcca, svcca
from .cka import MIN_CKA_SAMPLES, MIN_CKA_SAMPLES_HARD, SmallSampleWarning, check_cka_samples, cka, linear_cka
from .grid import METRICS, similarity_grid, similarity_grid_figure
from .hsic import hsic, linear_gram, rbf_gram
from .knn import cknna, mutual_knn, mutual_knn_chance
from .minibatch import MinibatchCKA, minibatch_cka
from .rsa import compare_rdms, rdm, rsa
from .shape import procrustes_distance, procrustes_similarity, shape_distance

__all__ = [
    "METRICS",
    "MIN_CKA_SAMPLES",
    "MIN_CKA_SAMPLES_HARD",
    "MinibatchCKA",
    "SmallSampleWarning",
    "canonical_correlations",
    "cca_similarity",
    "check_cka_samples",
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
