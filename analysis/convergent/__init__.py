"""Convergent learning (Li et al. 2016) on small digits CNNs: do nets trained from different seeds learn
the same units, the same subspaces, the same layers?

* :mod:`.nets` - :class:`DigitsCNN`, :func:`train_digits_net`, :func:`layer_activations`;
* :mod:`.matching` - unit correlations, Hungarian and semi-matching, random baseline; the two nets'
  activations as checked arrays (:func:`~.matching.unit_pair`, via :mod:`analysis.arrays`) and
  dead-unit masks (:func:`~.matching.live_units`) used by the other modules;
* :mod:`.sparse` - dense / lasso / one-to-one prediction of one net's units from another's;
* :mod:`.clustering` - spectral clustering of both nets' units (many-to-many);
* :mod:`.layers` - layer x layer CKA and layer identification;
* :mod:`.experiment` - :class:`ConvergentConfig` and :func:`run_convergent`; :mod:`.figures` - plots.

>>> import numpy as np
>>> from analysis.convergent import matching_summary
>>> a = np.random.default_rng(0).normal(size=(100, 4))
>>> matching_summary(a, a[:, [3, 1, 0, 2]]).set_index("method").mean_corr.round(6).to_dict()["hungarian"]
1.0
"""

from .clustering import JointClusters, joint_clusters, joint_correlation
from .experiment import ConvergentConfig, ConvergentResults, run_convergent
from .figures import cka_figure, matching_figure, sparse_figure
from .layers import cka_grid, layer_identification
from .matching import MATCH_METHODS, correlation_matrix, match_units, matching_summary, same_assignment
from .nets import (
    CONV_LAYERS,
    LAYERS,
    DigitsCNN,
    DigitsData,
    TrainedNet,
    layer_activations,
    limit_threads,
    load_digits_split,
    train_digits_net,
)
from .sparse import DEFAULT_ALPHAS, lasso_map, normalized_error, sparse_prediction

__all__ = [
    "CONV_LAYERS",
    "DEFAULT_ALPHAS",
    "LAYERS",
    "MATCH_METHODS",
    "ConvergentConfig",
    "ConvergentResults",
    "DigitsCNN",
    "DigitsData",
    "JointClusters",
    "TrainedNet",
    "cka_figure",
    "cka_grid",
    "correlation_matrix",
    "joint_clusters",
    "joint_correlation",
    "layer_activations",
    "layer_identification",
    "lasso_map",
    "limit_threads",
    "load_digits_split",
    "match_units",
    "matching_figure",
    "matching_summary",
    "normalized_error",
    "run_convergent",
    "same_assignment",
    "sparse_figure",
    "sparse_prediction",
    "train_digits_net",
]
