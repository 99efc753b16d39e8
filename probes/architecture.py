"""Where a HF causal LM keeps its parts: the one module that knows blocks, attention, norms, rotary, and
how to run a forward pass that stops early.

Everything else in subspace-lens asks these functions instead of reading module attributes itself.
Supported layouts: Llama / Qwen2 / SmolLM / Mistral (``model.layers[i].self_attn.{q,k,v,o}_proj``,
``input_layernorm``, RMSNorm), Gemma / Gemma-3 (the same, RMSNorm with ``(1 + γ)``, per-head
``q_norm``/``k_norm``, ``model.language_model`` for multimodal configs) and GPT-2 (``transformer.h[i]
.attn.{c_attn,c_proj}``, ``ln_1``, LayerNorm). Other layouts raise :class:`~probes.errors.InputError`
naming what was looked for.

Building ``handle.tl`` (the TransformerLens bridge) wraps HF submodules in place; :func:`unwrap` returns
the HF module behind a bridge component, and every lookup here unwraps, so callers see plain HF modules.

>>> from probes.testing import tiny_handle
>>> h = tiny_handle()
>>> block = decoder_layers(h.hf)[0]
>>> type(attention(block)).__name__, type(out_proj(block)).__name__, norm_kind(input_norm(block))
('LlamaAttention', 'Linear', 'rms')
>>> fw = run_forward(h, h.hf.get_input_embeddings()(torch.tensor([[1, 2, 3]])), resid_layers=[0])
>>> sorted(fw.resid), fw.logits is None  # stopped after block 0: no logits
([0], True)
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError

__all__ = [
    "Forward",
    "PrefixKV",
    "RotaryParams",
    "apply_rotary",
    "attention",
    "decoder_layers",
    "eager_attention",
    "final_norm",
    "input_norm",
    "mlp",
    "norm_eps",
    "norm_gain",
    "norm_kind",
    "out_proj",
    "prefix_kv",
    "query_proj",
    "quiet_cache_notice",
    "rotary_params",
    "run_forward",
    "text_config",
    "unwrap",
    "unwrapped_modules",
    "w_o",
]


# -- modules -------------------------------------------------------------------------------------------
def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The HF module behind a TransformerLens bridge component (numerics unchanged), or ``module``."""
    return getattr(module, "original_component", None) or module


def _first_path(root, paths: tuple[str, ...]):
    for path in paths:
        mod = root
        try:
            for part in path.split("."):
                mod = getattr(mod, part)
        except AttributeError:
            continue
        return mod
    return None


def decoder_layers(hf_model) -> torch.nn.ModuleList:
    """The decoder blocks (Llama/Qwen/Gemma ``model.layers``, GPT-2 ``transformer.h``)."""
    layers = _first_path(
        hf_model, ("model.layers", "model.language_model.layers", "transformer.h", "gpt_neox.layers")
    )
    if layers is None:
        raise InputError(
            f"Unsupported architecture {type(hf_model).__name__}: cannot find its decoder layers."
        )
    return layers


def attention(block: torch.nn.Module) -> torch.nn.Module:
    """The attention module of one decoder block (``self_attn``, GPT-2 ``attn``), unwrapped."""
    attn = getattr(block, "self_attn", None) or getattr(block, "attn", None)
    if attn is None:
        raise InputError(
            f"Cannot find the attention module of {type(block).__name__} (looked for self_attn, attn); "
            "supported: Llama/Qwen/Gemma (self_attn.q_proj...) and GPT-2 (attn.c_attn)."
        )
    return unwrap(attn)


def out_proj(block: torch.nn.Module) -> torch.nn.Module:
    """The attention output projection of one decoder block (``o_proj``, GPT-2 ``c_proj``), unwrapped."""
    attn = attention(block)
    for name in ("o_proj", "c_proj", "out_proj", "dense"):
        if hasattr(attn, name):
            return unwrap(getattr(attn, name))
    raise InputError(f"Cannot find the attention output projection in {type(block).__name__}.")


def query_proj(block: torch.nn.Module) -> torch.nn.Module:
    """The module computing the queries of one decoder block (``q_proj``; GPT-2: the fused ``c_attn``,
    whose first ``d_model`` output columns are the queries), unwrapped."""
    attn = attention(block)
    for name in ("q_proj", "c_attn"):
        if hasattr(attn, name):
            return unwrap(getattr(attn, name))
    raise InputError(f"Cannot find the attention query projection in {type(block).__name__}.")


def mlp(block: torch.nn.Module) -> torch.nn.Module:
    """The MLP of one decoder block, unwrapped."""
    if not hasattr(block, "mlp"):
        raise InputError(f"Cannot find the MLP of {type(block).__name__} (looked for mlp).")
    return unwrap(block.mlp)


def input_norm(block: torch.nn.Module) -> torch.nn.Module:
    """The norm in front of a block's attention (``input_layernorm``, GPT-2 ``ln_1``), unwrapped."""
    for name in ("input_layernorm", "ln_1"):
        if hasattr(block, name):
            return unwrap(getattr(block, name))
    raise InputError(
        f"Cannot find the attention input norm of {type(block).__name__} (looked for input_layernorm, ln_1)."
    )


def final_norm(hf_model) -> torch.nn.Module:
    """The norm applied before the unembedding (``model.norm`` / ``transformer.ln_f``), unwrapped."""
    norm = _first_path(
        hf_model, ("model.norm", "model.language_model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm")
    )
    if norm is None:
        raise InputError(f"Cannot find the final norm of {type(hf_model).__name__}.")
    return unwrap(norm)


def w_o(hf_model, layer: int, n_heads: int) -> Float[Tensor, "n_heads d_head d_model"]:
    """Per-head output weights of ``layer`` in TransformerLens layout (row vectors: ``z[h] @ W_O[h]``).

    A view of the live parameter (not a copy): ``nn.Linear`` stores ``[d_model, n_heads*d_head]``,
    GPT-2's ``Conv1D`` ``[n_heads*d_head, d_model]``.
    """
    proj = out_proj(decoder_layers(hf_model)[layer])
    w = proj.weight.T if isinstance(proj, torch.nn.Linear) else proj.weight
    return w.reshape(n_heads, -1, w.shape[-1])


# -- norms ---------------------------------------------------------------------------------------------
def norm_kind(norm: torch.nn.Module) -> str:
    """``"layernorm"`` (centres, then scales by γ), ``"rms_offset"`` (Gemma: ``1 + γ``) or ``"rms"``."""
    norm = unwrap(norm)
    name = type(norm).__name__
    if isinstance(norm, torch.nn.LayerNorm):
        return "layernorm"
    if "Gemma" in name:
        return "rms_offset"
    if "RMSNorm" in name:
        return "rms"
    raise InputError(f"Unsupported norm {name}: expected LayerNorm or an RMSNorm (Llama/Qwen/Gemma).")


def norm_gain(norm: torch.nn.Module, dtype: torch.dtype = torch.float32) -> Float[Tensor, " d"]:
    """The effective γ of a norm (``1 + weight`` for Gemma; ones without an affine weight), a copy."""
    norm = unwrap(norm)
    weight = getattr(norm, "weight", None)
    if weight is None:  # LayerNorm(elementwise_affine=False)
        device = next(iter(norm.parameters()), torch.empty(0)).device
        return torch.ones(norm.normalized_shape[-1], dtype=dtype, device=device)
    weight = weight.detach().to(dtype, copy=True)
    return 1.0 + weight if norm_kind(norm) == "rms_offset" else weight


def norm_eps(norm: torch.nn.Module) -> float:
    """The ε a norm adds under its square root."""
    norm = unwrap(norm)
    return float(getattr(norm, "eps", getattr(norm, "variance_epsilon", 1e-6)))


# -- rotary --------------------------------------------------------------------------------------------
def text_config(hf_model):
    """The text part of a HF config (multimodal configs nest it as ``text_config``)."""
    cfg = hf_model.config
    return getattr(cfg, "text_config", None) or cfg


@dataclass(frozen=True)
class RotaryParams:
    """Rotary settings read from the config (``rotary_dim`` None: no rotary embeddings, e.g. GPT-2)."""

    rotary_dim: int | None  # rotated dimensions per head (d_head × partial_rotary_factor)
    bases: tuple[float, ...]  # θ base of every layer (Gemma-3: local/global differ)
    rope_types: tuple[str, ...]  # HF rope_type of every layer ("default", "linear", ...)
    layer_types: tuple[str, ...]  # "full_attention" / "sliding_attention" per layer

    @property
    def base(self) -> float:
        """The base used by the most layers (ties: the first layer's)."""
        counts = Counter(self.bases)
        top = max(counts.values())
        return next(b for b in self.bases if counts[b] == top)


def rotary_params(handle) -> RotaryParams:
    """Rotary dimension and per-layer base from the HF config (``rotary_dim`` None without RoPE).

    >>> from probes.testing import tiny_handle
    >>> rp = rotary_params(tiny_handle())
    >>> rp.rotary_dim, rp.bases, rp.base
    (8, (10000.0, 10000.0), 10000.0)
    """
    cfg = text_config(handle.hf)
    n_layers = handle.info.n_layers
    layer_types = tuple(getattr(cfg, "layer_types", None) or ["full_attention"] * n_layers)
    if not handle.info.positional.startswith("rotary"):
        return RotaryParams(None, (), (), layer_types)
    rope = getattr(cfg, "rope_parameters", None) or {}
    nested = isinstance(rope, dict) and rope and all(isinstance(v, dict) for v in rope.values())
    theta = getattr(cfg, "rope_theta", 10000.0)

    def params_for(layer_type: str) -> dict:
        if nested:
            return rope.get(layer_type) or next(iter(rope.values()))
        if isinstance(rope, dict) and rope:
            return rope
        return {"rope_theta": theta, "rope_type": "default"}

    per_layer = [params_for(t) for t in layer_types]
    bases = tuple(float(p.get("rope_theta", theta)) for p in per_layer)
    types = tuple(str(p.get("rope_type", "default")) for p in per_layer)
    factor = per_layer[0].get("partial_rotary_factor", getattr(cfg, "partial_rotary_factor", None)) or 1.0
    rotary_dim = int(handle.info.d_head * float(factor))
    rotary_dim -= rotary_dim % 2
    return RotaryParams(rotary_dim, bases, types, layer_types)


def apply_rotary(x: Float[Tensor, "... d_head"], cos: Tensor, sin: Tensor) -> Float[Tensor, "... d_head"]:
    """Llama/NeoX rotary (``rotate_half``) on the first ``cos.shape[-1]`` dimensions of ``x``.

    ``cos``/``sin`` are HF's tables at the positions of ``x`` (``[..., rotary_dim]``).

    >>> x = torch.tensor([[1.0, 0.0, 5.0]])  # rotary_dim 2, one pass-through dimension
    >>> apply_rotary(x, torch.zeros(1, 2), torch.ones(1, 2)).tolist()  # a quarter turn
    [[0.0, 1.0, 5.0]]
    """
    r = cos.shape[-1]
    xr, xp = x[..., :r], x[..., r:]
    x1, x2 = xr[..., : r // 2], xr[..., r // 2 :]
    return torch.cat([xr * cos + torch.cat([-x2, x1], dim=-1) * sin, xp], dim=-1)


# -- forward passes ------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised by a forward hook once the last needed block has run (the rest of the pass is skipped)."""


@dataclass
class Forward:
    """What one batched forward produced (see :func:`run_forward`)."""

    resid: dict[int, Float[Tensor, "batch pos d_model"]] = field(default_factory=dict)  # resid_post
    attn: dict[int, Float[Tensor, "batch head q k"]] = field(default_factory=dict)  # attention patterns
    logits: Float[Tensor, "batch pos vocab"] | None = None
    logits_start: int = 0  # sequence position of ``logits[:, 0]`` (only the last positions are kept)
    start: int = 0  # sequence position of ``resid[k][:, 0]`` and of attn's query 0 (a cached prefix's length)


@contextmanager
def eager_attention(hf) -> Iterator[None]:
    """Switch the model to eager attention (which returns patterns) for the duration of the block."""
    prev = getattr(hf.config, "_attn_implementation", None)
    if prev in (None, "eager"):
        yield
        return
    hf.set_attn_implementation("eager")
    try:
        yield
    finally:
        hf.set_attn_implementation(prev)


@contextmanager
def unwrapped_modules(root: torch.nn.Module) -> Iterator[None]:
    """Put the HF modules back in place of TransformerLens bridge components (``original_component``)
    under ``root`` for the duration of the block, and restore the bridge afterwards. Numerics are
    unchanged (the bridge runs the same modules), but the bridge's attention ignores a key/value cache
    (``past_key_values``) and the HF one does not. A model that was never bridged is left as it is."""
    swaps = []

    def walk(module: torch.nn.Module) -> None:
        for name, child in list(module._modules.items()):
            orig = getattr(child, "original_component", None) if child is not None else None
            if orig is not None:
                swaps.append((module, name, child))
                module._modules[name] = orig
            if child is not None:
                walk(orig if orig is not None else child)

    walk(root)
    try:
        yield
    finally:
        for module, name, child in reversed(swaps):
            module._modules[name] = child


@contextmanager
def quiet_cache_notice() -> Iterator[None]:
    """Silence transformers' notice that ``past_key_values`` will be renamed ``cache`` (5.40; the
    project supports transformers >= 5.0, where only the old name is certain)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
        yield


@dataclass
class PrefixKV:
    """Keys and values of a fixed prompt prefix (batch 1), computed once by :func:`prefix_kv` and reused
    by every :func:`run_forward` that continues the prefix (only the new positions are computed)."""

    layers: list[tuple[Tensor, Tensor]]  # per decoder layer: keys, values [1, kv_heads, length, d_head]
    length: int  # prefix positions

    def cache(self, hf, batch: int):
        """A fresh HF ``DynamicCache`` holding the prefix for ``batch`` rows (a forward appends to it)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=hf.config)
        for i, (k, v) in enumerate(self.layers):
            cache.update(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1), i)
        return cache


@torch.no_grad()
def prefix_kv(handle, embeds: Float[Tensor, "1 pos d_model"]) -> PrefixKV | None:
    """Run ``handle.hf`` once on a prefix's input embeddings and keep its keys and values; None where a
    layer's cache could not keep the whole prefix (a sliding window shorter than it: run it uncached).

    >>> from probes.testing import tiny_handle
    >>> h = tiny_handle()
    >>> emb = h.hf.get_input_embeddings()(torch.tensor([[1, 2, 3, 4, 5]]))
    >>> kv = prefix_kv(h, emb[:, :3])
    >>> full, rest = run_forward(h, emb, [1]), run_forward(h, emb[:, 3:], [1], prefix=kv)
    >>> rest.start, torch.allclose(full.resid[1][:, 3:], rest.resid[1], atol=1e-5)
    (3, True)
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=handle.hf.config)
    with unwrapped_modules(handle.hf), quiet_cache_notice():
        handle.hf(inputs_embeds=embeds, past_key_values=cache, use_cache=True, logits_to_keep=1)
    n = int(embeds.shape[1])
    if any(layer.keys.shape[-2] != n for layer in cache.layers):
        return None
    return PrefixKV([(layer.keys, layer.values) for layer in cache.layers], n)


def run_forward(
    handle,
    embeds: Float[Tensor, "batch pos d_model"],
    resid_layers: list[int] = (),
    attn_layers: list[int] = (),
    logits: bool = False,
    logits_last: int | None = None,
    prefix: PrefixKV | None = None,
) -> Forward:
    """Run ``handle.hf`` on input embeddings, keeping ``resid_post`` of ``resid_layers`` and the attention
    patterns of ``attn_layers``; without ``logits`` the pass stops right after the last of those blocks
    (a hook raises once it has run, which is exact). Gradients flow (no ``no_grad`` here).

    ``logits_last`` keeps logits for the last that many positions only (``Forward.logits_start`` says
    where they begin): the unembedding at every position is most of a small model's forward otherwise.
    ``prefix`` (:func:`prefix_kv`): ``embeds`` continue that prefix, whose keys and values are reused;
    ``resid`` and attention queries then cover the new positions only (from ``Forward.start``), attention
    keys and ``logits_start`` count the prefix.
    """
    out = Forward(start=prefix.length if prefix is not None else 0)
    stop_at = None if logits else max([*resid_layers, *attn_layers], default=None)
    kw = {"logits_to_keep": int(logits_last)} if logits and logits_last else {}
    kw["use_cache"] = prefix is not None
    if prefix is not None:
        kw["past_key_values"] = prefix.cache(handle.hf, embeds.shape[0])

    def resid_hook(layer):
        def fn(_m, _i, o):
            out.resid[layer] = o[0] if isinstance(o, tuple) else o
            if layer == stop_at:
                raise _Stop

        return fn

    def attn_hook(layer):
        def fn(_m, _i, o):
            out.attn[layer] = o[1]

        return fn

    hooks = []
    with (
        unwrapped_modules(handle.hf) if prefix is not None else nullcontext(),  # the bridge drops caches
        eager_attention(handle.hf) if attn_layers else nullcontext(),
        quiet_cache_notice(),
    ):
        blocks = decoder_layers(handle.hf)  # looked up inside: the hooks go on the modules that run
        try:
            for layer in sorted(set(attn_layers)):
                hooks.append(attention(blocks[layer]).register_forward_hook(attn_hook(layer)))
            for layer in sorted(set(resid_layers) | ({stop_at} if stop_at is not None else set())):
                hooks.append(blocks[layer].register_forward_hook(resid_hook(layer)))
            res = handle.hf(inputs_embeds=embeds, **kw)
            out.logits = res.logits
            out.logits_start = out.start + embeds.shape[1] - res.logits.shape[1]
        except _Stop:
            pass
        finally:
            for h in hooks:
                h.remove()
    return out
