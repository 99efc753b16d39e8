"""Low-rank communication channels between attention heads (Merullo et al., "Talking Heads", 2024).

Weight-only maths on per-head ``W_Q, W_K, W_V, W_O`` in TransformerLens's row-vector convention:
``decompose`` (per-head weights, OV SVD, RoPE-averaged QK), ``scores`` (head- and component-level
composition scores) and ``null`` (receiver-specific random-direction null, z-scores, top channels).
"""

from analysis.channels.decompose import (
    OVSVD,
    HeadWeights,
    expand_kv,
    qk_rotary_averaged,
    rotary_offset_matrix,
)
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
    "OVSVD",
    "ScanConfig",
    "head_pair_summary",
    "scan_channels",
    "HeadWeights",
    "ReceiverNull",
    "add_z",
    "component_score_tensor",
    "component_scores",
    "direction_scores",
    "expand_kv",
    "head_composition_scores",
    "qk_rotary_averaged",
    "random_unit_directions",
    "receiver_matrix",
    "receiver_null",
    "rotary_offset_matrix",
    "top_channels",
]
