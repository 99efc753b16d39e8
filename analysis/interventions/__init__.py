"""Activation interventions for channel validation: component rescaling/removal as a hook, mean ablation
(of a head or of one OV component), and steering inside a subspace.

All interventions act through forward hooks (:func:`probes.hooks.run_with_hooks`); nothing here touches
a model's modules or weights. Row-vector convention throughout: a head's per-position write into the
residual stream is ``y_h = z_h W_O^h`` (``head_out``), and ``attn_out = Σ_h y_h + b_O`` (before any
post-attention norm). An intervention is an object with ``hooks(handle, ctx) -> [(site, fn)]``.

==============  ==========================================================================================
module          what
==============  ==========================================================================================
``subspace``    pure maths: :func:`orthonormalize`, :func:`check_orthonormal`, :func:`coordinates`,
                :func:`add_in_subspace`, :func:`replace_in_subspace`, :func:`rescale_along`
``context``     :class:`PromptContext` (prompt lengths → position masks), ``positions`` conventions
``heads``       :class:`ComponentRescale` (hook twin of :mod:`probes.edits`), :class:`HeadMeanAblation`,
                :class:`ComponentMeanAblation`
``steering``    :class:`SubspaceAdd`, :class:`SubspaceSet` at ``resid_pre/attn_out/mlp_out/resid_post``,
                ``z`` or ``head_out`` sites
``run``         :func:`run_with_interventions` → :class:`InterventionRun` (logits + recorded activations)
==============  ==========================================================================================

>>> import torch
>>> from probes.testing import tiny_handle
>>> h = tiny_handle()
>>> B = orthonormalize(torch.randn(32, 2))
>>> run = run_with_interventions(
...     h, ["the cat sat"], [SubspaceSet("resid_pre.1", B, torch.tensor([1.0, -2.0]))], record=["resid_pre.1"]
... )
>>> [round(c, 4) for c in coordinates(run.acts["resid_pre.1"], B)[0, -1].tolist()]
[1.0, -2.0]
"""

from __future__ import annotations

from analysis.interventions.context import PromptContext
from analysis.interventions.heads import ComponentMeanAblation, ComponentRescale, HeadMeanAblation
from analysis.interventions.run import InterventionRun, run_with_interventions
from analysis.interventions.steering import SubspaceAdd, SubspaceSet
from analysis.interventions.subspace import (
    add_in_subspace,
    check_orthonormal,
    coordinates,
    orthonormalize,
    replace_in_subspace,
    rescale_along,
)

__all__ = [
    "ComponentMeanAblation",
    "ComponentRescale",
    "HeadMeanAblation",
    "InterventionRun",
    "PromptContext",
    "SubspaceAdd",
    "SubspaceSet",
    "add_in_subspace",
    "check_orthonormal",
    "coordinates",
    "orthonormalize",
    "replace_in_subspace",
    "rescale_along",
    "run_with_interventions",
]
