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

import importlib

# public name -> the module that defines it; imported on first use, so that reading a saved scan's tables
# (figures, significance) does not import torch (the dashboard paints a saved grid before loading a model)
_EXPORTS = {
    **dict.fromkeys(
        ["ReceiverNull", "add_z", "random_unit_directions", "receiver_null", "top_channels"],
        "analysis.channels.null",
    ),
    **dict.fromkeys(["ScanConfig", "head_pair_summary", "scan_channels"], "analysis.channels.scan"),
    **dict.fromkeys(
        [
            "MODES",
            "component_score_tensor",
            "component_scores",
            "direction_scores",
            "head_composition_scores",
            "receiver_matrix",
        ],
        "analysis.channels.scores",
    ),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'analysis.channels' has no attribute {name!r}")
