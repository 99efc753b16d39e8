"""Refusal subspaces: difference-of-means directions checked by ablation/addition, safety heads, figures."""

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

__all__ = [
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
    "probe_accuracy_figure",
    "projection_figure",
    "projection_table",
    "refusal_rate",
]
