"""One recorded forward pass over an IOI batch (:func:`run_clean`): everything the circuit analyses read.

Site activations are hooked by their :mod:`probes.sites` names through :func:`probes.hooks.bridge_hooks`
(which hands ``z`` over per head); the bridge hook points without a site are in :data:`BRIDGE_ONLY`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from analysis.circuits.batch import IOIBatch
from probes.handle import ModelHandle
from probes.hooks import bridge_hooks
from probes.sites import head_out_from_z
from probes.weights import raw_attention_weights

__all__ = ["BRIDGE_ONLY", "CleanRun", "run_clean"]

BRIDGE_ONLY = {  # TransformerLens bridge hook points that are no probes.sites site
    "pattern": "blocks.{L}.attn.hook_pattern",  # [batch, head, query, key] attention weights
    "rot_k": "blocks.{L}.attn.hook_rot_k",  # [batch, pos, n_kv, d_head] keys after RoPE
    "cos": "blocks.{L}.attn.hook_cos",  # [1 or batch, pos, rot_dim] RoPE tables
    "sin": "blocks.{L}.attn.hook_sin",
}


@dataclass
class CleanRun:
    """What one forward pass leaves for the analyses (values at END unless said otherwise; CPU, fp32)."""

    logit_diff: Float[Tensor, " batch"]  # logit(IO) − logit(S) at END
    pattern_end: dict[int, Float[Tensor, "batch n_heads pos"]]  # attention row of END per layer
    resid_pre: dict[int, Float[Tensor, "batch d_model"]]
    head_out: dict[int, Float[Tensor, "batch n_heads d_model"]]
    attn_out: dict[int, Float[Tensor, "batch d_model"]]  # incl. b_O
    mlp_out: dict[int, Float[Tensor, "batch d_model"]]
    resid_final: Float[Tensor, "batch d_model"]  # last layer's resid_post
    head_out_mean: dict[int, Float[Tensor, "n_heads d_model"]]  # mean over all real tokens
    z_mean: dict[int, Float[Tensor, "n_heads d_head"]]  # mean over all real tokens
    rot_k: dict[int, Float[Tensor, "batch pos n_kv d_head"]] = field(default_factory=dict)  # all positions
    cos: dict[int, Float[Tensor, "batch rot_dim"]] = field(default_factory=dict)  # RoPE tables at END
    sin: dict[int, Float[Tensor, "batch rot_dim"]] = field(default_factory=dict)


def run_clean(
    handle: ModelHandle,
    batch: IOIBatch,
    key_layers: Sequence[int] = (),
    extra_hooks: Sequence[tuple[str, Callable]] = (),
) -> CleanRun:
    """One forward pass recording what every analysis here needs.

    ``key_layers``: layers whose rotated keys and RoPE tables are kept (receivers for
    :func:`~analysis.circuits.path_patching.query_path_patch`). ``extra_hooks``: site-named hooks (e.g.
    from an intervention's ``hooks``) applied before recording, so the record is *after* the intervention.
    """
    n_layers = handle.info.n_layers
    ids, lengths = batch.ids, batch.lengths
    bidx = torch.arange(ids.shape[0])
    end = batch.end_pos
    real = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).float()  # [batch, pos]
    rec: dict[str, dict[int, Tensor]] = defaultdict(dict)

    def at_end(x: Tensor) -> Tensor:
        return x.detach().float().cpu()[bidx, end]

    def keep(what: str, L: int, fn: Callable[[Tensor], Tensor] = at_end) -> Callable:
        def hook(x: Tensor, hook=None) -> Tensor:
            rec[what][L] = fn(x)
            return x

        return hook

    def z_hook(L: int) -> Callable:
        def hook(z: Tensor) -> Tensor:  # [batch, pos, n_heads, d_head]
            zf = z.detach().float().cpu()
            rec["z_mean"][L] = (zf * real[:, :, None, None]).sum(dim=(0, 1)) / real.sum()
            rec["z"][L] = zf[bidx, end]
            return z

        return hook

    site_hooks = []
    for L in range(n_layers):
        site_hooks += [
            (f"resid_pre.{L}", keep("resid_pre", L)),
            (f"z.{L}", z_hook(L)),
            (f"attn_out.{L}", keep("attn_out", L)),
            (f"mlp_out.{L}", keep("mlp_out", L)),
        ]
    site_hooks.append((f"resid_post.{n_layers - 1}", keep("resid_post", n_layers - 1)))
    fwd = bridge_hooks(handle, [*extra_hooks, *site_hooks])
    fwd += [
        (BRIDGE_ONLY["pattern"].format(L=L), keep("pattern", L, _query_row(bidx, end)))
        for L in range(n_layers)
    ]
    for L in key_layers:
        fwd += [
            (BRIDGE_ONLY["rot_k"].format(L=L), keep("rot_k", L, lambda x: x.detach().float().cpu())),
            (BRIDGE_ONLY["cos"].format(L=L), keep("cos", L, _table_rows(bidx, end))),
            (BRIDGE_ONLY["sin"].format(L=L), keep("sin", L, _table_rows(bidx, end))),
        ]
    with torch.no_grad():
        logits = handle.tl.run_with_hooks(ids.to(handle.device), fwd_hooks=fwd)
    last = logits.detach().float().cpu()[bidx, end]
    W_O = {L: raw_attention_weights(handle, L).W_O.float().cpu() for L in range(n_layers)}
    layers = range(n_layers)
    return CleanRun(
        logit_diff=last[bidx, batch.answer_ids] - last[bidx, batch.distractor_ids],
        pattern_end={L: rec["pattern"][L] for L in layers},
        resid_pre={L: rec["resid_pre"][L] for L in layers},
        head_out={L: head_out_from_z(rec["z"][L], W_O[L]) for L in layers},
        attn_out={L: rec["attn_out"][L] for L in layers},
        mlp_out={L: rec["mlp_out"][L] for L in layers},
        resid_final=rec["resid_post"][n_layers - 1],
        head_out_mean={L: head_out_from_z(rec["z_mean"][L], W_O[L]) for L in layers},
        z_mean={L: rec["z_mean"][L] for L in layers},
        rot_k={L: rec["rot_k"][L] for L in key_layers},
        cos={L: rec["cos"][L] for L in key_layers},
        sin={L: rec["sin"][L] for L in key_layers},
    )


def _query_row(bidx: Int[Tensor, " batch"], end: Int[Tensor, " batch"]) -> Callable[[Tensor], Tensor]:
    """``[batch, head, query, key]`` pattern → the END query's row ``[batch, head, key]``."""
    return lambda x: x.detach().float().cpu()[bidx, :, end]


def _table_rows(bidx: Int[Tensor, " batch"], end: Int[Tensor, " batch"]) -> Callable[[Tensor], Tensor]:
    """``[1 or batch, pos, rot_dim]`` RoPE table → its rows at END ``[batch, rot_dim]``."""

    def rows(x: Tensor) -> Tensor:
        x = x.detach().float().cpu()
        if x.shape[0] == 1 and bidx.numel() > 1:
            x = x.expand(bidx.numel(), *x.shape[1:])
        return x[bidx, end]

    return rows
