"""One batched forward pass with interventions applied (and activations recorded after them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from analysis.interventions.context import Hook, PromptContext
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.hooks import HOOKABLE, parse_hook_site, run_with_hooks
from probes.sites import head_out_from_z, parse_sites
from probes.weights import raw_attention_weights

__all__ = ["InterventionRun", "run_with_interventions"]


@dataclass
class InterventionRun:
    """Logits (and optionally recorded activations) of one forward pass with interventions."""

    logits: Float[Tensor, "batch pos d_vocab"]
    lengths: Int[Tensor, " batch"]
    ids: Int[Tensor, "batch pos"]
    acts: dict[str, Tensor] = field(default_factory=dict)  # site -> post-intervention [batch, pos, ...]

    def last_logits(self) -> Float[Tensor, "batch d_vocab"]:
        """Logits at each prompt's last real token."""
        return self.logits[torch.arange(self.logits.shape[0]), self.lengths - 1]


def run_with_interventions(
    handle: ModelHandle,
    prompts: list[str],
    interventions: Sequence = (),
    *,
    chat: bool = False,
    record: Sequence[str] = (),
) -> InterventionRun:
    """One batched forward pass over ``prompts`` (right-padded) with ``interventions`` applied in order.

    ``record``: sites (hookable kinds, or ``head_out.L``) whose activations are returned *after* the
    interventions, ``[batch, pos, ...]`` with the same padding as ``ids`` (``head_out``:
    ``[batch, pos, n_heads, d_model]``, computed from the recorded ``z`` and the current ``W_O``).
    """
    ids, lengths = handle.tokenize(prompts, chat=chat)
    ctx = PromptContext(lengths, ids.shape[1])
    hooks: list[Hook] = []
    for iv in interventions:
        if not hasattr(iv, "hooks"):
            raise InputError(
                f"{type(iv).__name__} is not an intervention (ComponentRescale, HeadMeanAblation, "
                "ComponentMeanAblation, SubspaceAdd, SubspaceSet)."
            )
        hooks.extend(iv.hooks(handle, ctx))
    acts: dict[str, Tensor] = {}
    post: dict[str, Callable[[Tensor], Tensor]] = {}
    for name in record:
        kind = name.rpartition(".")[0] if isinstance(name, str) else None
        if kind == "head_out":
            (site,) = parse_sites([name], handle.info.n_layers)
            W_O = raw_attention_weights(handle, site.layer).W_O  # [n_heads, d_head, d_model]
            key = f"z.{site.layer}"
            post[name] = lambda z, W_O=W_O: head_out_from_z(z, W_O)
        else:
            if kind not in HOOKABLE:
                raise InputError(
                    f"Cannot record {name!r}: use one of {', '.join(HOOKABLE)} or head_out (e.g. 'z.3')."
                )
            key = parse_hook_site(name, handle).name

        def rec(x: Tensor, _name=name) -> Tensor:
            acts[_name] = x.detach().clone()
            return x

        hooks.append((key, rec))
    logits = run_with_hooks(handle, ids, hooks)
    for name, fn in post.items():
        acts[name] = fn(acts[name])
    return InterventionRun(logits, lengths, ids, {k: v.cpu() for k, v in acts.items()})
