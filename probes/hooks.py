"""Forward passes with activation hooks at named sites (TransformerLens bridge), for interventions.

Hook functions take the activation and return its replacement (same shape); they run in the order
given, also when several share a site. Sites (:mod:`probes.sites` names) and the bridge hook each one
uses (the table is :data:`probes.sites.TL_HOOKS`):

==============  ================================  =======================================================
site            bridge hook                       activation passed to the function
==============  ================================  =======================================================
``resid_pre.L``   ``blocks.L.hook_resid_pre``       ``[batch, pos, d_model]``
``z.L``           ``blocks.L.attn.hook_z``          ``[batch, pos, n_heads, d_head]`` (before ``W_O``)
``attn_out.L``    ``blocks.L.attn.hook_out``        ``[batch, pos, d_model]``: ``o_proj`` output incl. bias
``mlp_out.L``     ``blocks.L.mlp.hook_out``         ``[batch, pos, d_model]``
``resid_post.L``  ``blocks.L.hook_resid_post``      ``[batch, pos, d_model]``
==============  ================================  =======================================================

``attn_out``/``mlp_out`` are the sublayer outputs *before* any post-sublayer norm (Gemma-3). The bridge's
``blocks.L.hook_attn_out`` is *after* Gemma-3's ``post_attention_layernorm`` (it aliases
``ln1_post.hook_out``), so it is not used here. ``head_out`` is not a hook point: change a head's write
through ``z`` or by adding the change to ``attn_out`` (``attn_out = Σ_h head_out_h + b_O``).

>>> from probes.testing import tiny_handle
>>> h = tiny_handle()
>>> ids, _ = h.tokenize(["the cat sat"], chat=False)
>>> zero_head_0 = lambda z: torch.cat([torch.zeros_like(z[..., :1, :]), z[..., 1:, :]], dim=-2)
>>> run_with_hooks(h, ids, [("z.1", zero_head_0)]).shape
torch.Size([1, 3, 44])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from probes.errors import InputError
from probes.handle import ModelHandle
from probes.sites import HOOKABLE, Site, parse_sites

__all__ = ["HOOKABLE", "HookFn", "bridge_hooks", "parse_hook_site", "run_with_hooks"]

HookFn = Callable[[Tensor], Tensor]


def parse_hook_site(site: str, handle: ModelHandle) -> Site:
    """Parse one ``kind.layer`` name that can be hooked (not ``*``, not ``head_out``).

    >>> from probes.testing import tiny_handle
    >>> parse_hook_site("attn_out.-1", tiny_handle())
    Site(layer=1, kind='attn_out')
    """
    if not isinstance(site, str) or site.endswith(".*"):
        raise InputError(f"Hook site must be one name like 'attn_out.3', got {site!r}.")
    (parsed,) = parse_sites([site], handle.info.n_layers)
    if parsed.kind not in HOOKABLE:
        raise InputError(
            f"Cannot hook site {site!r}: hookable kinds are {', '.join(HOOKABLE)}. A head's write "
            "(head_out) changes through 'z.L' or by adding the change to 'attn_out.L'."
        )
    return parsed


def bridge_hooks(handle: ModelHandle, hooks: Sequence[tuple[str, HookFn]]) -> list[tuple[str, Callable]]:
    """``(site, fn)`` pairs as TransformerBridge forward hooks: ``z`` is handed over per head
    (``[batch, pos, n_heads, d_head]``) and each result is checked to keep the activation's shape.

    >>> from probes.testing import tiny_handle
    >>> [name for name, _ in bridge_hooks(tiny_handle(), [("z.1", lambda z: z)])]
    ['blocks.1.attn.hook_z']
    """
    n_heads = handle.info.n_heads
    out = []
    for site_name, fn in hooks:
        site = parse_hook_site(site_name, handle)
        if not callable(fn):
            raise InputError(f"Hook for site {site_name!r} must be callable, got {type(fn).__name__}.")

        def tl_fn(x: Tensor, hook=None, _fn=fn, _site=site) -> Tensor:
            shape = x.shape
            if _site.kind == "z" and x.ndim == 3:  # some bridges give [batch, pos, n_heads*d_head]
                x = x.reshape(*shape[:2], n_heads, -1)
            out = _fn(x)
            if not isinstance(out, Tensor) or out.shape != x.shape:
                raise InputError(
                    f"Hook at {_site.name} must return a tensor shaped {tuple(x.shape)}, got "
                    f"{getattr(out, 'shape', type(out).__name__)}."
                )
            return out.reshape(shape).to(x.dtype)

        out.append((site.tl_hook(), tl_fn))
    return out


def run_with_hooks(
    handle: ModelHandle,
    ids: Int[Tensor, "batch pos"],
    hooks: Sequence[tuple[str, HookFn]],
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits of one forward pass (no grad) with ``hooks`` (``(site, fn)`` pairs) applied in order.

    ``fn`` gets the activation at the site (see the module table for shapes) and returns its
    replacement of the same shape. ``ids`` are token ids as from ``handle.tokenize`` (right-padded).
    """
    if not isinstance(ids, Tensor) or ids.ndim != 2 or ids.dtype not in (torch.long, torch.int):
        raise InputError(
            "ids must be an integer tensor [batch, pos] (e.g. from handle.tokenize(prompts)), got "
            f"{getattr(ids, 'shape', type(ids).__name__)}."
        )
    fwd = bridge_hooks(handle, hooks)
    with torch.no_grad():
        logits = handle.tl.run_with_hooks(ids.to(handle.device), fwd_hooks=fwd)
    return logits.detach()
