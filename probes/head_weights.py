"""Per-head attention weights, their OV/QK circuits and the OV SVD (model-independent).

Conventions (TransformerLens row-vector convention): the residual ``x`` is a row vector and, per
head, ``W_Q, W_K, W_V: [d_model, d_head]``, ``W_O: [d_head, d_model]``. The QK circuit is
``W_QK = W_Q W_Kᵀ`` (attention score ``x_q W_QK x_kᵀ / √d_head``) and the OV circuit is
``W_OV = W_V W_O`` (the head writes ``Σ_k A_qk x_k W_OV``). Stacked over a model, weights have a
leading ``[n_layers, n_heads]``. Grouped-query models store fewer K/V heads; :func:`expand_kv`
maps query head ``h`` to K/V head ``h // (n_heads // n_kv_heads)`` (HF's ``repeat_kv``).

OV SVD: ``W_OV = Σ_i s_i u_i v_iᵀ`` (at most ``d_head`` non-zero terms). ``u_i`` is the direction
the head *reads* (from the attended token's residual) and ``v_i`` the direction it *writes*.
It is computed from the factors (``FactoredMatrix.svd``: thin SVDs of ``W_V`` and ``W_O`` and of a
``d_head × d_head`` middle matrix), never from a dense ``d_model × d_model`` matrix.

RoPE: for rotary models the attention score depends on the relative offset ``δ = query position −
key position``: ``x_q W_Q M(δ) W_Kᵀ x_kᵀ`` with a block-rotation ``M(δ)`` acting on the first
``rotary_dim`` dimensions of each head. :attr:`HeadWeights.QK` is the *static* QK circuit
``W_Q W_Kᵀ`` without any rotation, i.e. exactly the bilinear form at offset 0. Use
:func:`qk_rotary_averaged` (or :meth:`HeadWeights.QK_at`) for the form averaged over a list of
offsets, which is exact for that list and still factored with inner dimension ``d_head``.

Biases are ignored throughout, as in Elhage et al. and TransformerLens. LayerNorm folding must be
done before the weights get here (fold γ into the rows of ``W_Q, W_K, W_V``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError, check_index

if TYPE_CHECKING:
    from transformer_lens import FactoredMatrix

__all__ = [
    "OVSVD",
    "HeadWeights",
    "expand_kv",
    "qk_rotary_averaged",
    "rotary_offset_matrix",
]


def expand_kv(
    W: Float[Tensor, "... n_kv_heads d_model d_head"], n_heads: int
) -> Float[Tensor, "... n_heads d_model d_head"]:
    """Expand grouped K/V weights (head axis ``-3``) so that query head ``h`` gets K/V head ``h // g``.

    ``g = n_heads // n_kv_heads`` query heads share each K/V head, as in HF's ``repeat_kv``
    (``repeat_interleave``, *not* ``repeat``, which would give K/V head ``h % n_kv_heads``).

    >>> W_K = torch.arange(2.0).reshape(2, 1, 1)  # n_kv_heads=2, d_model=1, d_head=1
    >>> expand_kv(W_K, 4).flatten().tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    if not isinstance(W, Tensor) or W.ndim < 3:
        shape = tuple(W.shape) if isinstance(W, Tensor) else type(W).__name__
        raise InputError(
            f"expand_kv needs a tensor shaped [..., n_kv_heads, d_model, d_head], got {shape}; "
            "pass W_K or W_V with the head axis third from the end."
        )
    n_kv = W.shape[-3]
    if not isinstance(n_heads, int) or n_heads < 1 or n_heads % n_kv != 0:
        raise InputError(
            f"cannot expand {n_kv} key/value heads to n_heads={n_heads!r}: n_heads must be a positive "
            f"multiple of n_kv_heads ({n_kv}); check the model's num_attention_heads / num_key_value_heads."
        )
    if n_heads == n_kv:
        return W
    return W.repeat_interleave(n_heads // n_kv, dim=-3)


def rotary_offset_matrix(
    d_head: int,
    rotary_dim: int,
    offsets: int | Sequence[int],
    base: float = 10000.0,
    interleaved: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Float[Tensor, "d_head d_head"]:
    """``M̄ = mean_δ M(δ)``: the QK bilinear form's middle matrix at relative offsets ``δ``.

    With rotary embeddings, ``q(p_q) · k(p_k) = (x_q W_Q) M(p_q − p_k) (x_k W_K)ᵀ``. ``M(δ)`` rotates
    each pair of the first ``rotary_dim`` head dimensions by ``δ·θ_j`` with
    ``θ_j = base^(−2j/rotary_dim)``; the other dimensions pass through (identity). Pairs are
    ``(j, j + rotary_dim/2)`` (GPT-NeoX / Llama / Pythia "rotate_half") or ``(2j, 2j+1)`` with
    ``interleaved=True`` (GPT-J). ``M(0)`` is the identity.

    >>> M = rotary_offset_matrix(4, 4, [0])
    >>> bool(torch.equal(M, torch.eye(4)))
    True
    >>> rotary_offset_matrix(4, 2, [1, 3]).shape
    torch.Size([4, 4])
    """
    offsets = [offsets] if isinstance(offsets, numbers.Integral) else list(offsets)
    if not offsets or not all(isinstance(o, numbers.Integral) and not isinstance(o, bool) for o in offsets):
        raise InputError(
            f"offsets must be a non-empty list of integer relative positions (query − key), got {offsets!r}."
        )
    offsets = [int(o) for o in offsets]
    if not (isinstance(rotary_dim, int) and 0 < rotary_dim <= d_head and rotary_dim % 2 == 0):
        raise InputError(
            f"rotary_dim must be an even integer in 2..d_head={d_head}, got {rotary_dim!r}; "
            "use the model's rotary dimension per head (e.g. Pythia: rotary_pct * d_head)."
        )
    if not (base > 0 and math.isfinite(base)):
        raise InputError(f"rotary base must be a positive number (e.g. 10000), got {base!r}.")
    half = rotary_dim // 2
    theta = base ** (-torch.arange(half, dtype=torch.float64) * 2.0 / rotary_dim)  # [half]
    angles = torch.tensor(offsets, dtype=torch.float64)[:, None] * theta  # [n_offsets, half]
    cos, sin = angles.cos().mean(0), angles.sin().mean(0)
    if interleaved:
        first, second = torch.arange(0, rotary_dim, 2), torch.arange(1, rotary_dim, 2)
    else:
        first, second = torch.arange(half), torch.arange(half, rotary_dim)
    M = torch.eye(d_head, dtype=torch.float64)
    M[first, first] = cos
    M[second, second] = cos
    M[first, second] = sin
    M[second, first] = -sin
    return M.to(dtype)


def qk_rotary_averaged(
    W_Q: Float[Tensor, "... d_model d_head"],
    W_K: Float[Tensor, "... d_model d_head"],
    rotary_dim: int,
    base: float = 10000.0,
    offsets: int | Sequence[int] = (0,),
    interleaved: bool = False,
) -> FactoredMatrix:
    """The QK bilinear form averaged over relative offsets: ``W_Q M̄ W_Kᵀ`` as a ``FactoredMatrix``.

    Exact for the given offset list (the form is linear in ``M(δ)``); offset 0 gives the static
    ``W_Q W_Kᵀ``. Shape ``[..., d_model, d_model]`` with inner dimension ``d_head``.

    >>> W_Q, W_K = torch.randn(2, 8, 4), torch.randn(2, 8, 4)
    >>> qk = qk_rotary_averaged(W_Q, W_K, rotary_dim=4, offsets=[0])
    >>> torch.allclose(qk.AB, W_Q @ W_K.transpose(-1, -2), atol=1e-5)
    True
    >>> qk_rotary_averaged(W_Q, W_K, rotary_dim=2, offsets=range(1, 21)).shape
    torch.Size([2, 8, 8])
    """
    if not (isinstance(W_Q, Tensor) and isinstance(W_K, Tensor)) or W_Q.shape != W_K.shape or W_Q.ndim < 2:
        raise InputError(
            "W_Q and W_K must be tensors of the same shape [..., d_model, d_head] (expand grouped K "
            f"heads with expand_kv first); got {getattr(W_Q, 'shape', W_Q)} and {getattr(W_K, 'shape', W_K)}."
        )
    M = rotary_offset_matrix(
        W_Q.shape[-1],
        rotary_dim,
        offsets,
        base,
        interleaved,
        dtype=W_Q.dtype,
    )
    return _factored()(W_Q @ M.to(W_Q.device), W_K.transpose(-2, -1))


class OVSVD(NamedTuple):
    """Thin SVD of every head's OV circuit: ``W_OV = U diag(S) Vᵀ``.

    ``U``: read directions ``[n_layers, n_heads, d_model, d_head]``; ``S``: singular values,
    descending, ``[n_layers, n_heads, d_head]``; ``V``: write directions, same shape as ``U``.
    """

    U: Float[Tensor, "n_layers n_heads d_model d_head"]
    S: Float[Tensor, "n_layers n_heads d_head"]
    V: Float[Tensor, "n_layers n_heads d_model d_head"]


_NAMES = ("W_Q", "W_K", "W_V", "W_O")


@dataclass(frozen=True, eq=False)
class HeadWeights:
    """Stacked per-head attention weights of one model (row-vector convention, biases dropped).

    ``W_Q, W_K, W_V``: ``[n_layers, n_heads, d_model, d_head]`` (K/V already expanded for GQA; use
    :meth:`from_weights` to expand); ``W_O``: ``[n_layers, n_heads, d_head, d_model]``. 16-bit inputs
    are upcast to float32 (SVDs need it). ``writing_centered`` records that ``W_O`` rows have zero
    mean over ``d_model`` (see :meth:`center_writing_weights`).

    Rotary models: set ``rotary_dim`` (and ``rotary_base``, ``rotary_interleaved``). :attr:`QK` is
    still the static, unrotated ``W_Q W_Kᵀ``, equivalent to relative offset 0; use :meth:`QK_at`
    for the QK form averaged over a list of offsets.

    >>> w = HeadWeights.random(n_layers=2, n_heads=3, d_model=16, d_head=4)
    >>> w.OV.shape, w.QK.shape
    (torch.Size([2, 3, 16, 16]), torch.Size([2, 3, 16, 16]))
    >>> U, S, V = w.ov_svd
    >>> V.shape, S.shape
    (torch.Size([2, 3, 16, 4]), torch.Size([2, 3, 4]))
    >>> torch.allclose((U * S[..., None, :]) @ V.transpose(-1, -2), w.OV.AB, atol=1e-5)
    True
    """

    W_Q: Float[Tensor, "n_layers n_heads d_model d_head"]
    W_K: Float[Tensor, "n_layers n_heads d_model d_head"]
    W_V: Float[Tensor, "n_layers n_heads d_model d_head"]
    W_O: Float[Tensor, "n_layers n_heads d_head d_model"]
    writing_centered: bool = False
    rotary_dim: int | None = None
    rotary_base: float = 10000.0
    rotary_interleaved: bool = False

    def __post_init__(self) -> None:
        for name in _NAMES:
            t = getattr(self, name)
            if not isinstance(t, Tensor):
                raise InputError(f"{name} must be a torch.Tensor, got {type(t).__name__}.")
            if t.ndim != 4:
                raise InputError(
                    f"{name} must be 4-D [n_layers, n_heads, ...], got shape {tuple(t.shape)}; stack the "
                    "per-layer weights with torch.stack (a single layer: add a leading axis with t[None])."
                )
            if not t.is_floating_point():
                raise InputError(f"{name} must be a floating-point tensor, got dtype {t.dtype}.")
            t = t.detach()
            if t.dtype in (torch.float16, torch.bfloat16):
                t = t.float()
            if not torch.isfinite(t).all():
                raise InputError(
                    f"{name} contains NaN or inf values; check the checkpoint or the weight extraction."
                )
            object.__setattr__(self, name, t)
        L, H, d_model, d_head = self.W_Q.shape
        expected = {
            "W_K": (L, H, d_model, d_head),
            "W_V": (L, H, d_model, d_head),
            "W_O": (L, H, d_head, d_model),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                hint = (
                    " For grouped-query attention build with HeadWeights.from_weights(...) or expand_kv(W, n_heads)."
                    if name in ("W_K", "W_V") and got[0] == L and got[1] != H
                    else ""
                )
                raise InputError(
                    f"{name} has shape {got}, expected {shape} to match W_Q {tuple(self.W_Q.shape)} "
                    f"([n_layers, n_heads, d_model, d_head]; W_O is [n_layers, n_heads, d_head, d_model]).{hint}"
                )
        dtypes = {getattr(self, n).dtype for n in _NAMES}
        if len(dtypes) > 1:
            dt = torch.float64 if torch.float64 in dtypes else torch.float32
            for name in _NAMES:
                object.__setattr__(self, name, getattr(self, name).to(dt))
        if self.rotary_dim is not None:
            rotary_offset_matrix(d_head, self.rotary_dim, [0], self.rotary_base)  # validates

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_weights(
        cls,
        W_Q: Tensor,
        W_K: Tensor,
        W_V: Tensor,
        W_O: Tensor,
        *,
        center_writing_weights: bool = False,
        rotary_dim: int | None = None,
        rotary_base: float = 10000.0,
        rotary_interleaved: bool = False,
    ) -> HeadWeights:
        """Build from stacked weights, expanding grouped K/V heads (``W_K, W_V`` may have ``n_kv_heads``).

        >>> W_Q, W_O = torch.randn(1, 4, 8, 2), torch.randn(1, 4, 2, 8)
        >>> W_K, W_V = torch.randn(1, 2, 8, 2), torch.randn(1, 2, 8, 2)  # 2 K/V heads
        >>> w = HeadWeights.from_weights(W_Q, W_K, W_V, W_O)
        >>> bool(torch.equal(w.W_K[0, 1], W_K[0, 0])), bool(torch.equal(w.W_K[0, 2], W_K[0, 1]))
        (True, True)
        """
        if isinstance(W_Q, Tensor) and W_Q.ndim == 4:
            W_K, W_V = expand_kv(W_K, W_Q.shape[1]), expand_kv(W_V, W_Q.shape[1])
        w = cls(
            W_Q,
            W_K,
            W_V,
            W_O,
            rotary_dim=rotary_dim,
            rotary_base=rotary_base,
            rotary_interleaved=rotary_interleaved,
        )
        return w.center_writing_weights() if center_writing_weights else w

    @classmethod
    def random(
        cls, n_layers: int, n_heads: int, d_model: int, d_head: int, generator: torch.Generator | None = None
    ) -> HeadWeights:
        """Gaussian weights with std ``1/√d_model`` (reads) and ``1/√d_head`` (writes), for tests and nulls."""

        def g(*shape: int, std: float) -> Tensor:
            return torch.randn(*shape, generator=generator) * std

        r, w = 1 / math.sqrt(d_model), 1 / math.sqrt(d_head)
        return cls(
            g(n_layers, n_heads, d_model, d_head, std=r),
            g(n_layers, n_heads, d_model, d_head, std=r),
            g(n_layers, n_heads, d_model, d_head, std=r),
            g(n_layers, n_heads, d_head, d_model, std=w),
        )

    # ----------------------------------------------------------------- shape
    @property
    def n_layers(self) -> int:
        return self.W_Q.shape[0]

    @property
    def n_heads(self) -> int:
        return self.W_Q.shape[1]

    @property
    def d_model(self) -> int:
        return self.W_Q.shape[2]

    @property
    def d_head(self) -> int:
        return self.W_Q.shape[3]

    # ----------------------------------------------------------------- circuits
    @cached_property
    def OV(self) -> FactoredMatrix:
        """``W_OV = W_V W_O``, ``[n_layers, n_heads, d_model, d_model]`` (factored, inner ``d_head``)."""
        return _factored()(self.W_V, self.W_O)

    @cached_property
    def QK(self) -> FactoredMatrix:
        """Static ``W_QK = W_Q W_Kᵀ`` (no rotary rotation, i.e. offset 0), ``[n_layers, n_heads, d_model, d_model]``."""
        return _factored()(self.W_Q, self.W_K.transpose(-2, -1))

    def QK_at(self, offsets: int | Sequence[int]) -> FactoredMatrix:
        """QK form averaged over relative offsets (query − key position); needs ``rotary_dim``."""
        if self.rotary_dim is None:
            raise InputError(
                "QK_at(offsets) needs a rotary model: set rotary_dim (and rotary_base) on HeadWeights; "
                "for non-rotary models use .QK, which does not depend on position."
            )
        return qk_rotary_averaged(
            self.W_Q, self.W_K, self.rotary_dim, self.rotary_base, offsets, self.rotary_interleaved
        )

    @cached_property
    def ov_svd(self) -> OVSVD:
        """Thin SVD of every head's ``W_OV`` from the factors (see :class:`OVSVD`).

        ``W_V = Q_v R_v`` and ``W_Oᵀ = Q_o R_o`` (thin QR), so ``W_OV = Q_v (R_v R_oᵀ) Q_oᵀ`` and only the
        ``d_head × d_head`` core is decomposed: ``U = Q_v U'``, ``V = Q_o V'`` (computed in float64).
        """
        Qv, Rv = torch.linalg.qr(self.W_V.double())
        Qo, Ro = torch.linalg.qr(self.W_O.double().transpose(-1, -2))
        Uc, S, Vch = torch.linalg.svd(Rv @ Ro.transpose(-1, -2))
        dtype = self.W_O.dtype
        return OVSVD((Qv @ Uc).to(dtype), S.to(dtype), (Qo @ Vch.transpose(-1, -2)).to(dtype))

    # ----------------------------------------------------------------- transformations
    def center_writing_weights(self) -> HeadWeights:
        """Subtract each ``W_O`` row's mean over ``d_model`` (what LayerNorm's centring removes anyway).

        Afterwards every write direction ``v_i`` (with ``s_i > 0``) is orthogonal to the all-ones vector.

        >>> w = HeadWeights.random(1, 2, 8, 2).center_writing_weights()
        >>> w.writing_centered, bool(w.W_O.sum(-1).abs().max() < 1e-5)
        (True, True)
        """
        W_O = self.W_O - self.W_O.mean(dim=-1, keepdim=True)
        return replace(self, W_O=W_O, writing_centered=True)

    def remove_ov_component(self, layer: int, head: int, component: int) -> HeadWeights:
        """Set singular value ``s_i`` of one head's ``W_OV`` to zero: ``W_O ← W_O (I − v_i v_iᵀ)``.

        Equivalent to projecting that head's per-position output (before ``b_O``) off ``v_i``.
        """
        layer = check_index(layer, self.n_layers, "layer")
        head = check_index(head, self.n_heads, "head")
        component = check_index(component, self.d_head, "component")
        v = self.ov_svd.V[layer, head, :, component]
        W_O = self.W_O.clone()
        W_O[layer, head] = W_O[layer, head] - (W_O[layer, head] @ v)[:, None] * v[None, :]
        return replace(self, W_O=W_O)


def _factored():
    """TransformerLens's ``FactoredMatrix``, imported on first use (the import costs ~2 s)."""
    from transformer_lens import FactoredMatrix

    return FactoredMatrix
