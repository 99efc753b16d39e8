"""Per-head attention weights of a loaded model, read from the HF modules, optionally LayerNorm-folded.

:func:`head_weights` returns a :class:`probes.head_weights.HeadWeights` (TransformerLens row-vector
convention: ``W_Q, W_K, W_V: [n_layers, n_heads, d_model, d_head]``, ``W_O: [n_layers, n_heads,
d_head, d_model]``, K/V expanded so that query head ``h`` uses K/V head ``h // (n_heads //
n_kv_heads)`` as HF's ``repeat_kv`` does). Weights are read from the HF modules (unwrapping
TransformerBridge components), never through TransformerLens's compatibility mode, which folds
LayerNorm into the *shared* weights in place. Results are float32 (float64 for float64 models) copies:
editing them never touches the model. :func:`head_ov_svd` decomposes a single head (the whole-model
``HeadWeights.ov_svd`` takes tens of seconds on CPU for SmolLM2's 270 heads).

Supported: Llama, Qwen2, SmolLM, Mistral-style (``q_proj/k_proj/v_proj/o_proj`` + RMSNorm), Gemma /
Gemma-3 (RMSNorm with ``(1 + γ)``, per-head ``q_norm/k_norm``) and GPT-2 (fused ``c_attn`` Conv1D +
LayerNorm). Other layouts raise :class:`~probes.errors.InputError`.

**LayerNorm folding** (``fold_ln=True``): the attention input norm computes ``norm(x) = x̂ ⊙ γ (+ β)``
with ``x̂`` the normalised residual. ``γ`` is multiplied into the rows of ``W_Q, W_K, W_V``, so the folded
weights act on ``x̂`` directly: ``x̂ W_Q^fold = q_proj(norm(x)) − b_Q``.

- RMSNorm (Llama/Qwen/Gemma): ``x̂ = x / √(mean(x²) + ε)``; there is **no centring**, so nothing else is
  folded and reading weights are not centred.
- Gemma's ``Gemma3RMSNorm`` multiplies by ``(1 + weight)`` (the stored weight is an offset from 1), so the
  folded gain is ``1 + weight``; Llama-style RMSNorm multiplies by ``weight``.
- LayerNorm (GPT-2): ``x̂ = (x − mean x) / σ``. As TransformerLens's ``fold_ln`` does, the folded rows are
  also centred over ``d_model`` (``W ← W − mean_rows W``). On ``x̂`` (already mean-zero) this changes
  nothing; it makes ``W_QK``/``W_OV`` blind to the all-ones direction that LayerNorm deletes. ``β`` only
  feeds biases.
- Gemma-3 also normalises queries and keys per head (``q_norm``/``k_norm``, RMSNorm over ``d_head``). With
  ``fold_qk_norm`` (default: same as ``fold_ln``) their gains ``(1 + weight)`` are multiplied into the
  *columns* of ``W_Q``/``W_K``; the per-token, per-head ``1/rms(q)`` factor is nonlinear and stays out,
  like LayerNorm's ``1/σ``. Gemma's post-attention norm (applied to the summed attention output) is not
  folded into ``W_O``: ``W_O`` stays the ``o_proj`` weight, the space the ``head_out``/``attn_out`` sites
  and :mod:`probes.edits` work in.

**Biases are ignored** (Qwen2's ``b_Q, b_K, b_V``, GPT-2's ``c_attn``/``c_proj`` biases and folded ``β``):
the circuits and composition scores use weights only, as in Elhage et al. and TransformerLens. The
attention scale (``1/√d_head``, Gemma's ``query_pre_attn_scalar``) is not folded either.

**Rotary embeddings**: ``rotary_dim`` (``d_head × partial_rotary_factor``) and ``rotary_base`` come from the
config (:func:`probes.architecture.rotary_params`). Gemma-3 mixes local (sliding-window, θ = 10 000) and global (θ = 10⁶)
layers; a ``HeadWeights`` holds one base, so :func:`head_weights` sets the base used by the **most**
layers (ties: the first layer's) and :func:`~probes.architecture.rotary_params` gives the exact base of every layer, e.g.
``qk_rotary_averaged(w.W_Q[l], w.W_K[l], w.rotary_dim, rotary_params(h).bases[l], offsets)``. RoPE
scaling schemes other than ``default`` (linear, llama3, yarn) are not represented in ``QK_at``; their
``rope_type`` is reported in :class:`probes.architecture.RotaryParams` so callers can tell.

>>> from probes.testing import tiny_handle
>>> w = head_weights(tiny_handle())
>>> tuple(w.W_Q.shape), tuple(w.W_O.shape), w.rotary_dim, w.rotary_base
((2, 4, 32, 8), (2, 4, 8, 32), 8, 10000.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from probes.architecture import (
    attention,
    decoder_layers,
    input_norm,
    norm_gain,
    norm_kind,
    rotary_params,
    unwrap,
    w_o,
)
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.head_weights import OVSVD, HeadWeights

__all__ = [
    "RawAttentionWeights",
    "attention_input_gain",
    "head_ov_svd",
    "head_qk_read",
    "head_weights",
    "raw_attention_weights",
]


@dataclass(frozen=True)
class RawAttentionWeights:
    """One layer's unfolded attention weights in TL layout (K/V *not* expanded; biases dropped).

    ``W_Q: [n_heads, d_model, d_head]``, ``W_K/W_V: [n_kv_heads, d_model, d_head]``,
    ``W_O: [n_heads, d_head, d_model]``.
    """

    W_Q: Float[Tensor, "n_heads d_model d_head"]
    W_K: Float[Tensor, "n_kv_heads d_model d_head"]
    W_V: Float[Tensor, "n_kv_heads d_model d_head"]
    W_O: Float[Tensor, "n_heads d_head d_model"]


def attention_input_gain(handle: ModelHandle, layer: int) -> Float[Tensor, " d_model"]:
    """The effective γ of ``layer``'s attention input norm (``1 + weight`` for Gemma), float32.

    >>> from probes.testing import tiny_handle
    >>> attention_input_gain(tiny_handle(), 0).shape
    torch.Size([32])
    """
    layer = handle.check_layer(layer)
    return norm_gain(input_norm(decoder_layers(handle.hf)[layer]), _dtype(handle))


def _dtype(handle: ModelHandle) -> torch.dtype:
    dt = next(handle.hf.parameters()).dtype
    return torch.float64 if dt == torch.float64 else torch.float32


def _linear_heads(proj: torch.nn.Module, n: int, dtype: torch.dtype) -> Tensor:
    """``nn.Linear`` weight ``[n*d_head, d_model]`` → ``[n, d_model, d_head]`` (row convention)."""
    proj = unwrap(proj)
    W = proj.weight.detach().to(dtype, copy=True).T  # [d_model, n*d_head]
    return W.reshape(W.shape[0], n, -1).permute(1, 0, 2).contiguous()


def raw_attention_weights(handle: ModelHandle, layer: int) -> RawAttentionWeights:
    """Unfolded ``W_Q, W_K, W_V, W_O`` of one layer from the HF modules (see :class:`RawAttentionWeights`).

    >>> from probes.testing import tiny_handle
    >>> r = raw_attention_weights(tiny_handle(), 1)
    >>> tuple(r.W_Q.shape), tuple(r.W_K.shape)
    ((4, 32, 8), (2, 32, 8))
    """
    layer = handle.check_layer(layer)
    info, dtype = handle.info, _dtype(handle)
    block = decoder_layers(handle.hf)[layer]
    attn = attention(block)
    if all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj")):
        W_Q = _linear_heads(attn.q_proj, info.n_heads, dtype)
        W_K = _linear_heads(attn.k_proj, info.n_kv_heads, dtype)
        W_V = _linear_heads(attn.v_proj, info.n_kv_heads, dtype)
    elif hasattr(attn, "c_attn"):  # GPT-2 Conv1D: x @ W + b with W [d_model, 3*d_model]
        W = unwrap(attn.c_attn).weight.detach().to(dtype, copy=True)
        W_Q, W_K, W_V = (
            w.reshape(w.shape[0], info.n_heads, -1).permute(1, 0, 2).contiguous() for w in W.chunk(3, dim=-1)
        )
    else:
        raise InputError(
            f"Unsupported attention layout {type(attn).__name__}: expected q_proj/k_proj/v_proj "
            "(Llama, Qwen, Gemma) or a fused c_attn (GPT-2)."
        )
    W_O = w_o(handle.hf, layer, info.n_heads).detach().to(dtype, copy=True)
    return RawAttentionWeights(W_Q, W_K, W_V, W_O)


def head_weights(
    handle: ModelHandle,
    fold_ln: bool = True,
    center_writing: bool = False,
    *,
    fold_qk_norm: bool | None = None,
) -> HeadWeights:
    """All layers' per-head weights as a :class:`~probes.head_weights.HeadWeights` (see module docstring).

    Args:
        fold_ln: multiply the attention input norm's γ (``1 + weight`` for Gemma) into the rows of
            ``W_Q, W_K, W_V`` (LayerNorm models: and centre those rows), so they act on the normalised
            residual ``x̂``.
        center_writing: project every ``W_O`` row onto the mean-zero subspace (what LayerNorm's centring
            removes). Exact for LayerNorm models; for RMSNorm models (no centring) it is an analysis
            choice that changes the write directions, not a model equivalence.
        fold_qk_norm: Gemma-3 only: fold ``q_norm``/``k_norm`` gains into the columns of ``W_Q``/``W_K``
            (default: ``fold_ln``).

    >>> from probes.testing import tiny_handle
    >>> h = tiny_handle()
    >>> raw, folded = head_weights(h, fold_ln=False), head_weights(h)
    >>> g = attention_input_gain(h, 0)
    >>> torch.allclose(folded.W_Q[0], g[:, None] * raw.W_Q[0], atol=1e-6)
    True
    """
    fold_qk_norm = fold_ln if fold_qk_norm is None else fold_qk_norm
    per_layer = [
        _layer_weights(handle, layer, fold_ln, fold_qk_norm) for layer in range(handle.info.n_layers)
    ]
    W_Q, W_K, W_V, W_O = (torch.stack(ts) for ts in zip(*per_layer, strict=True))
    rp = rotary_params(handle)
    return HeadWeights.from_weights(
        W_Q,
        W_K,
        W_V,
        W_O,
        center_writing_weights=center_writing,
        rotary_dim=rp.rotary_dim,
        rotary_base=rp.base if rp.rotary_dim else 10000.0,
    )


def _layer_weights(
    handle: ModelHandle, layer: int, fold_ln: bool, fold_qk_norm: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One layer's (optionally folded) ``W_Q [H, d_model, d_head]``, ``W_K, W_V [H_kv, ...]``, ``W_O``."""
    dtype = _dtype(handle)
    block = decoder_layers(handle.hf)[layer]
    raw = raw_attention_weights(handle, layer)
    W_Q, W_K, W_V = raw.W_Q, raw.W_K, raw.W_V
    if fold_ln:
        norm = input_norm(block)
        gamma = norm_gain(norm, dtype)[:, None]  # rows: [d_model, 1]
        W_Q, W_K, W_V = gamma * W_Q, gamma * W_K, gamma * W_V
        if norm_kind(norm) == "layernorm":
            W_Q, W_K, W_V = (W - W.mean(dim=-2, keepdim=True) for W in (W_Q, W_K, W_V))
    attn = attention(block)
    if fold_qk_norm and hasattr(attn, "q_norm") and hasattr(attn, "k_norm"):
        W_Q = W_Q * norm_gain(attn.q_norm, dtype)  # columns: [d_head]
        W_K = W_K * norm_gain(attn.k_norm, dtype)
    return W_Q, W_K, W_V, raw.W_O


def head_ov_svd(
    handle: ModelHandle,
    layer: int,
    head: int,
    fold_ln: bool = True,
    center_writing: bool = False,
) -> OVSVD:
    """One head's OV SVD without decomposing every head: ``U, V: [d_model, d_head]``, ``S: [d_head]``.

    Same maths as ``head_weights(handle, fold_ln, center_writing).ov_svd`` at ``[layer, head]`` (the
    Gemma ``q_norm``/``k_norm`` folding does not affect OV).

    >>> from probes.testing import tiny_handle
    >>> h = tiny_handle()
    >>> U, S, V = head_ov_svd(h, 1, 2)
    >>> full = head_weights(h).ov_svd
    >>> V.shape, bool(torch.allclose(S, full.S[1, 2], atol=1e-5))
    (torch.Size([32, 8]), True)
    """
    layer, head = handle.check_layer(layer), handle.check_head(head)
    W_Q, W_K, W_V, W_O = _layer_weights(handle, layer, fold_ln, fold_ln)
    kv = head // handle.info.gqa_groups
    w = HeadWeights(
        W_Q[None, head : head + 1],
        W_K[None, kv : kv + 1],
        W_V[None, kv : kv + 1],
        W_O[None, head : head + 1],
    )
    if center_writing:
        w = w.center_writing_weights()
    U, S, V = w.ov_svd
    return OVSVD(U[0, 0], S[0, 0], V[0, 0])


def head_qk_read(handle: ModelHandle, layer: int, head: int) -> tuple[Tensor, Tensor]:
    """Query-side read directions ``A [d_model, d_head]`` (orthonormal columns) and singular values
    ``S [d_head]`` of one head's raw static ``W_QK = W_Q W_Kᵀ`` (GQA: its KV group), from the factors.

    >>> from probes.testing import tiny_handle
    >>> h = tiny_handle()
    >>> A, S = head_qk_read(h, 1, 3)
    >>> r = raw_attention_weights(h, 1)
    >>> qk = r.W_Q[3].double() @ r.W_K[3 // h.info.gqa_groups].double().T
    >>> bool(torch.allclose(torch.linalg.svdvals(qk)[:8], S.double(), atol=1e-4)), A.shape
    (True, torch.Size([32, 8]))
    """
    layer, head = handle.check_layer(layer), handle.check_head(head)
    raw = raw_attention_weights(handle, layer)
    Qq, Rq = torch.linalg.qr(raw.W_Q[head].double())
    _, Rk = torch.linalg.qr(raw.W_K[head // handle.info.gqa_groups].double())
    Uc, S, _ = torch.linalg.svd(Rq @ Rk.T)
    return (Qq @ Uc).to(raw.W_Q.dtype), S.to(raw.W_Q.dtype)
