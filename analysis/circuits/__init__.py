"""Locate the IOI circuit's name-mover and S-inhibition heads from data, and check the weight channels.

Conventions (row vectors, as in :mod:`analysis.interventions`): a head's write at a position is
``y_h = z_h W_O^h`` (``head_out``); prompts are raw text (``chat=False``), right-padded; ``END`` is each
prompt's last real token, ``IO``/``S1``/``S2`` the positions of the indirect object and the two subject
mentions (found from the token ids of :func:`analysis.tasks.ioi.ioi_prompts`).

=================  =======================================================================================
module             what
=================  =======================================================================================
``batch``          :class:`IOIBatch`, :func:`ioi_batch` (positions of END/IO/S1/S2), :func:`abc_prompts`
                   (corrupted copies: S2 → a third name)
``clean_run``      :class:`CleanRun`, :func:`run_clean`: one recorded forward pass (residuals, head
                   writes, END attention rows, token means; rotated keys and RoPE tables of receivers)
``attribution``    :func:`dla_matrix` / :func:`direct_logit_attribution` (every component's write along
                   ``W_U[IO] − W_U[S]`` through the final norm frozen at the clean run, summing to the
                   logit difference), :func:`head_attention` / :func:`attention_to_positions`,
                   :func:`mover_heads`
``ablation``       :func:`head_ablation_effects`: one head's ``z`` mean-ablated or patched from ABC prompts
``path_patching``  :func:`query_path_patch` (sender δ into the receiver's query only, analytic, checked
                   at δ = 0), :func:`inhibition_scores`, :func:`component_vs_head` (one OV component of a
                   sender vs the whole head, query path and full forward)
``senders``        :func:`sender_ranks`: rank senders of a receiver by their best component's z in a
                   :func:`analysis.channels.scan_channels` table
=================  =======================================================================================
"""

from __future__ import annotations

from analysis.circuits.ablation import head_ablation_effects
from analysis.circuits.attribution import (
    attention_to_positions,
    direct_logit_attribution,
    dla_matrix,
    head_attention,
    mover_heads,
)
from analysis.circuits.batch import IOIBatch, abc_prompts, ioi_batch
from analysis.circuits.clean_run import CleanRun, run_clean
from analysis.circuits.path_patching import component_vs_head, inhibition_scores, query_path_patch
from analysis.circuits.senders import sender_ranks

__all__ = [
    "CleanRun",
    "IOIBatch",
    "abc_prompts",
    "attention_to_positions",
    "component_vs_head",
    "direct_logit_attribution",
    "dla_matrix",
    "head_ablation_effects",
    "head_attention",
    "inhibition_scores",
    "ioi_batch",
    "mover_heads",
    "query_path_patch",
    "run_clean",
    "sender_ranks",
]
