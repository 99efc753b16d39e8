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


# -- HF module layout (nnsight backend and W_O) ------------------------------------------------------


def decoder_layers(hf_model) -> torch.nn.ModuleList:
    """The list of decoder blocks of a HF causal LM (Llama/Qwen/Gemma ``model.layers``, GPT-2 ``transformer.h``)."""
    for path in ("model.layers", "model.language_model.layers", "transformer.h", "gpt_neox.layers"):
        mod = hf_model
        try:
            for part in path.split("."):
                mod = getattr(mod, part)
        except AttributeError:
            continue
        return mod
    raise InputError(f"Unsupported architecture {type(hf_model).__name__}: cannot find its decoder layers.")


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The HF module behind a TransformerLens bridge component (building ``handle.tl`` wraps HF
    submodules in place; numerics are unchanged), or ``module`` itself."""
    return getattr(module, "original_component", None) or module


def out_proj(layer_module) -> torch.nn.Module:
    """The attention output projection of one decoder block (possibly bridge-wrapped)."""
    attn = getattr(layer_module, "self_attn", None) or getattr(layer_module, "attn", None)
    for name in ("o_proj", "c_proj", "out_proj", "dense"):
        if hasattr(attn, name):
            return getattr(attn, name)
    raise InputError(f"Cannot find the attention output projection in {type(layer_module).__name__}.")


def w_o(hf_model, layer: int, n_heads: int) -> Float[Tensor, "n_heads d_head d_model"]:
    """Per-head output weights of ``layer`` in TransformerLens layout (row vectors: ``z[h] @ W_O[h]``)."""
    proj = unwrap(out_proj(decoder_layers(hf_model)[layer]))
    weight = proj.weight
    # nn.Linear stores [d_model, n_heads*d_head]; GPT-2's Conv1D stores [n_heads*d_head, d_model].
    w = weight.T if isinstance(proj, torch.nn.Linear) else weight
    return w.reshape(n_heads, -1, w.shape[-1])


def head_out_from_z(
    z: Float[Tensor, "... n_heads d_head"], W_O: Float[Tensor, "n_heads d_head d_model"]
) -> Float[Tensor, "... n_heads d_model"]:
    """Each head's write into the residual stream, ``z[..., h, :] @ W_O[h]``."""
    return torch.einsum("...hd,hdm->...hm", z, W_O.to(z.dtype))
