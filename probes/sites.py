"""Named activation sites and where each backend finds them.

A site is ``<kind>.<layer>``; kinds, in the order a forward pass produces them within a layer:

============  ===================================  ======================================
kind          what                                 shape per token
============  ===================================  ======================================
resid_pre     residual stream entering the layer   ``[d_model]``
z             per-head attention output before     ``[n_heads, d_head]``
              the output projection
head_out      per-head write into the residual:    ``[n_heads, d_model]``
              ``z[h] @ W_O[h]`` (no bias)
attn_out      attention module output (output      ``[d_model]``
              projection incl. bias); equals
              ``head_out.sum(heads) + b_O``
mlp_out       MLP output                           ``[d_model]``
resid_post    residual stream leaving the layer    ``[d_model]``
============  ===================================  ======================================

For models with post-sublayer norms (Gemma-3), ``attn_out``/``mlp_out`` are the sublayer outputs
*before* that norm: TransformerLens's ``attn.hook_out``/``mlp.hook_out``. (The bridge's ``hook_attn_out``/
``hook_mlp_out`` come after Gemma's post-norms; for Llama/Qwen/GPT-2 the two are the same.)

>>> parse_sites(["resid_post.*", "z.0"], n_layers=2)
[Site(layer=0, kind='z'), Site(layer=0, kind='resid_post'), Site(layer=1, kind='resid_post')]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError, check_index

KINDS = ("resid_pre", "z", "head_out", "attn_out", "mlp_out", "resid_post")
HOOKABLE = ("resid_pre", "z", "attn_out", "mlp_out", "resid_post")  # head_out is z @ W_O, not a hook point

TL_HOOKS = {
    "resid_pre": "blocks.{L}.hook_resid_pre",
    "z": "blocks.{L}.attn.hook_z",
    "head_out": "blocks.{L}.attn.hook_z",  # head_out is z @ W_O, computed after capture
    "attn_out": "blocks.{L}.attn.hook_out",  # not hook_attn_out: that one is after Gemma's post-norm
    "mlp_out": "blocks.{L}.mlp.hook_out",
    "resid_post": "blocks.{L}.hook_resid_post",
}


@dataclass(frozen=True)
class Site:
    layer: int
    kind: str

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.layer}"

    def sort_key(self) -> tuple[int, int]:
        return self.layer, KINDS.index(self.kind)

    def tl_hook(self) -> str:
        return TL_HOOKS[self.kind].format(L=self.layer)


def parse_sites(spec: str | list[str], n_layers: int) -> list[Site]:
    """Parse ``"kind.layer"`` names (``*`` for all layers, negative layers from the end), in run order."""
    names = [spec] if isinstance(spec, str) else list(spec)
    if not names:
        raise InputError("No sites requested: pass names like 'resid_post.5' or 'resid_post.*'.")
    out: set[Site] = set()
    for name in names:
        kind, _, layer = str(name).rpartition(".")
        if kind not in KINDS:
            raise InputError(
                f"Unknown site {name!r}: kind must be one of {', '.join(KINDS)} (e.g. 'resid_post.3')."
            )
        if layer == "*":
            out.update(Site(i, kind) for i in range(n_layers))
            continue
        try:
            idx = int(layer)
        except ValueError:
            raise InputError(f"Site {name!r}: layer must be an integer or '*'.") from None
        out.add(Site(check_index(idx, n_layers, "layer"), kind))
    return sorted(out, key=Site.sort_key)


def head_out_from_z(
    z: Float[Tensor, "... n_heads d_head"], W_O: Float[Tensor, "n_heads d_head d_model"]
) -> Float[Tensor, "... n_heads d_model"]:
    """Each head's write into the residual stream, ``z[..., h, :] @ W_O[h]``."""
    return torch.einsum("...hd,hdm->...hm", z, W_O.to(z.dtype))
