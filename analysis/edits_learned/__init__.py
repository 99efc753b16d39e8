"""Learned sparse weight edits: per-component OV (and movers' QK) scales fitted by gradient descent (issue 15, part 4).

:mod:`.scales` (the differentiable form of an :class:`probes.edits.EditSpec`), :mod:`.data` (prompt
batches, held-out text, before/after measurements), :mod:`.learn` (one point, the penalty sweep, the
Pareto front, the resumable run directory).
"""

from analysis.edits_learned.learn import (
    EditLearnConfig,
    learn_scales,
    pareto_flags,
    point_key,
    run_edit_learn,
)
from analysis.edits_learned.scales import ComponentScales, wy_factor

__all__ = [
    "ComponentScales",
    "EditLearnConfig",
    "learn_scales",
    "pareto_flags",
    "point_key",
    "run_edit_learn",
    "wy_factor",
]
