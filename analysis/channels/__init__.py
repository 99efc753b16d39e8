"""Low-rank communication channels between attention heads (Merullo et al., "Talking Heads", 2024).

Weight-only maths on per-head weights (:class:`probes.head_weights.HeadWeights`, TransformerLens's
row-vector convention; read off a model with :func:`probes.weights.head_weights`):

- :mod:`.scores`: head- and component-level composition scores (Q/K/V);
- :mod:`.null`: the receiver-specific random-direction null, z-scores, top channels;
- :mod:`.scan`: a whole-model scan (:class:`ScanConfig`, :func:`scan_channels`) and the head×head summary;
- :mod:`.effects`: what one head's OV components read, write and do when removed (needs a model);
- :mod:`.figures`: the plots the dashboard and notebooks draw from a scan.

Weights are folded (or not) by whoever reads them, :func:`probes.weights.head_weights`; a scan scores
the :class:`~probes.head_weights.HeadWeights` it is given.
"""

from analysis.channels.null import ReceiverNull, add_z, random_unit_directions, receiver_null, top_channels
from analysis.channels.scan import ScanConfig, head_pair_summary, scan_channels
from analysis.channels.scores import (
    MODES,
    component_score_tensor,
    component_scores,
    direction_scores,
    head_composition_scores,
    receiver_matrix,
)

__all__ = [
    "MODES",
    "ScanConfig",
    "head_pair_summary",
    "scan_channels",
    "ReceiverNull",
    "add_z",
    "component_score_tensor",
    "component_scores",
    "direction_scores",
    "head_composition_scores",
    "random_unit_directions",
    "receiver_matrix",
    "receiver_null",
    "top_channels",
]
