"""3D <-> text alignment (Hadgi et al. 2025): procedural shapes, encoders, aligners, retrieval.

Paired data and encoders:

* :mod:`.shapes` - shape families, attribute specs and templated captions (:data:`FAMILIES`,
  :func:`random_spec`, :func:`caption_for`), datasets (:func:`make_shapes`) and anchor/query splits;
* :mod:`.geometry` - surface samplers, poses and point clouds (:func:`sample_points`, :func:`augment`);
* :mod:`.pointnet` - the in-house PointNet (:class:`TrainConfig`, :func:`train_pointnet`, committed
  weights) and the ModelNet40 PointNet; :mod:`.train_pointnet` is its training script;
* :mod:`.encoders` - named 3D and text encoders (:func:`encode_clouds`, :func:`encode_captions`).

Alignment and evaluation:

* :mod:`.align` - aligners fitted on anchor pairs (:func:`fit_affine`, :func:`fit_cca`, local CKA) and
  their query scores (:func:`alignment_scores`); CCA whitening comes from :mod:`analysis.similarity`;
* :mod:`.retrieval` - top-k retrieval and Hungarian matching (:func:`retrieval_metrics`);
* :mod:`.semantics` - do a space's distances follow caption attributes or geometry?
* :mod:`.experiment` - :class:`AlignmentConfig` (TOML: :func:`load_config`), :func:`run_experiment`,
  :func:`summary_table`; :mod:`.run_folder` - :func:`write_run` (the ``sublens align run`` folder);
* :mod:`.search` - a live gallery: :func:`build_gallery`, :func:`search_shapes`, :func:`search_captions`;
* :mod:`.figures` - plotly figures of runs and point clouds.

>>> from analysis.alignment import FAMILIES, make_shapes
>>> bool(make_shapes(2, n_points=32).attributes.family.isin(list(FAMILIES)).all())
True
"""

from .align import (
    FULL_METHODS,
    METHODS,
    SUBSPACE_METHODS,
    AffineMap,
    CCAProjection,
    alignment_scores,
    cosine_scores,
    fit_affine,
    fit_cca,
    local_cka_scores,
)
from .encoders import ENCODERS_3D, ENCODERS_TEXT, encode_captions, encode_clouds
from .experiment import (
    AlignmentConfig,
    AlignmentResults,
    SkippedDimsWarning,
    load_config,
    run_alignment,
    run_experiment,
    summary_table,
)
from .figures import point_cloud_figure, retrieval_vs_anchors_figure, retrieval_vs_d_figure
from .geometry import augment, sample_points
from .pointnet import PointNetEncoder, TrainConfig, encode_points, load_pointnet, train_pointnet
from .retrieval import hungarian_accuracy, retrieval_accuracy, retrieval_metrics
from .run_folder import write_run
from .search import GALLERY_METHODS, ShapeGallery, build_gallery, describe, search_captions, search_shapes
from .semantics import semantics_vs_geometry
from .shapes import (
    FAMILIES,
    ShapeDataset,
    ShapeSpec,
    anchor_query_split,
    caption_for,
    make_shapes,
    random_spec,
)

__all__ = [
    "ENCODERS_3D",
    "ENCODERS_TEXT",
    "FAMILIES",
    "FULL_METHODS",
    "GALLERY_METHODS",
    "METHODS",
    "SUBSPACE_METHODS",
    "AffineMap",
    "AlignmentConfig",
    "AlignmentResults",
    "CCAProjection",
    "PointNetEncoder",
    "ShapeDataset",
    "ShapeGallery",
    "ShapeSpec",
    "SkippedDimsWarning",
    "TrainConfig",
    "alignment_scores",
    "anchor_query_split",
    "augment",
    "build_gallery",
    "caption_for",
    "cosine_scores",
    "describe",
    "encode_captions",
    "encode_clouds",
    "encode_points",
    "fit_affine",
    "fit_cca",
    "hungarian_accuracy",
    "load_config",
    "load_pointnet",
    "local_cka_scores",
    "make_shapes",
    "point_cloud_figure",
    "random_spec",
    "retrieval_accuracy",
    "retrieval_metrics",
    "retrieval_vs_anchors_figure",
    "retrieval_vs_d_figure",
    "run_alignment",
    "run_experiment",
    "sample_points",
    "search_captions",
    "search_shapes",
    "semantics_vs_geometry",
    "summary_table",
    "train_pointnet",
    "write_run",
]
