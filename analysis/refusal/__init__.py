"""Refusal subspaces: where a chat model separates harmful from harmless prompts, and what that direction does.

- :mod:`.probing`: last-token residual streams of chat prompts, per-layer probes and
  difference-of-means refusal directions (harmful = 1; glue over :mod:`probes.linear`);
- :mod:`.checks`: the refusal-phrase matcher, directional ablation / addition on generations,
  projections onto a direction, and direct attribution of attention heads onto it;
- :mod:`.pipeline`: the end-to-end fit (:class:`RefusalConfig`, :func:`fit_refusal` -> :class:`RefusalFit`,
  which saves its tables, tensors and figures into a run directory);
- :mod:`.figures`: the plotly figures of a fit (probe accuracy, projections, heads).
"""

from analysis.refusal.checks import (
    REFUSAL_PHRASES,
    ablation_check,
    addition_check,
    baseline_check,
    head_attribution,
    is_refusal,
    projection_table,
    refusal_rate,
)
from analysis.refusal.figures import head_figure, probe_accuracy_figure, projection_figure
from analysis.refusal.pipeline import RefusalConfig, RefusalFit, choose_layer, fit_refusal
from analysis.refusal.probing import REFUSAL_CLASSES, last_token_resid, refusal_directions, refusal_probes

__all__ = [
    "REFUSAL_CLASSES",
    "REFUSAL_PHRASES",
    "RefusalConfig",
    "RefusalFit",
    "ablation_check",
    "addition_check",
    "baseline_check",
    "choose_layer",
    "fit_refusal",
    "head_attribution",
    "head_figure",
    "is_refusal",
    "last_token_resid",
    "probe_accuracy_figure",
    "projection_figure",
    "projection_table",
    "refusal_directions",
    "refusal_probes",
    "refusal_rate",
]
