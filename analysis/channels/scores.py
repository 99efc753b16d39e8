"""Head-level and component-level composition scores between attention heads.

Sender head ``s`` (earlier layer) writes with ``W_OV^s``; receiver head ``r`` (later layer) reads
it through the matrix ``R`` of the chosen mode (TransformerLens's "right" matrix):

* ``"Q"``: ``R = W_QK^r`` (the sender's output feeds the receiver's queries),
* ``"K"``: ``R = (W_QK^r)ᵀ`` (feeds the keys),
* ``"V"``: ``R = W_OV^r`` (feeds the values).

Head level (Elhage et al. 2021; TL ``all_composition_scores``):
``CS = ‖W_OV^s R‖_F / (‖W_OV^s‖_F ‖R‖_F)`` in ``[0, 1]``.

Component level (Merullo et al. 2024): with ``W_OV^s = Σ_i s_i u_i v_iᵀ``, the score of the rank-1
write ``s_i u_i v_iᵀ`` is ``‖(s_i u_i v_iᵀ) R‖_F / (s_i ‖R‖_F) = ‖Rᵀ v_i‖₂ / ‖R‖_F``: it depends only
on the write direction ``v_i``. Both are computed from a per-receiver *reader* ``P``
(``[d_model, d_head]``, ``P Pᵀ = R Rᵀ``, from a ``d_head × d_head`` eigendecomposition), so a
component's score is one mat-vec ``‖Pᵀ v_i‖ / ‖P‖_F`` and no ``d_model × d_model`` matrix is formed.
The head-level score satisfies ``CS² = Σ_i s_i² CS_i² / Σ_i s_i²``.

Rotary models: ``"Q"``/``"K"`` use the static ``W_Q W_Kᵀ`` (relative offset 0) unless ``qk_offsets``
is given, in which case the QK form is averaged over those offsets (see :mod:`probes.head_weights`).

Tensors use TL's layout ``[sender_layer, sender_head, (component,) receiver_layer, receiver_head]``
with zeros wherever ``sender_layer >= receiver_layer`` (as TL does).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError
from probes.head_weights import HeadWeights, rotary_offset_matrix

if TYPE_CHECKING:
    from transformer_lens import FactoredMatrix

__all__ = [
    "MODES",
    "check_mode",
    "component_score_tensor",
    "component_scores",
    "direction_scores",
    "head_composition_scores",
    "receiver_matrix",
    "receiver_readers",
]

MODES: tuple[str, ...] = ("Q", "K", "V")

SCORE_COLUMNS = [
    "sender_layer",
    "sender_head",
    "component",
    "singular_value",
    "receiver_layer",
    "receiver_head",
    "mode",
    "score",
]


def check_mode(mode: str) -> str:
    """Return ``mode`` as one of ``"Q"``, ``"K"``, ``"V"`` (case-insensitive), else raise InputError."""
    m = mode.upper() if isinstance(mode, str) else mode
    if m not in MODES:
        raise InputError(
            f"mode must be one of 'Q', 'K', 'V' (which input of the receiver head), got {mode!r}."
        )
    return m


def _check_modes(modes: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = list(modes)  # "QK" -> ["Q", "K"]
    out = tuple(dict.fromkeys(check_mode(m) for m in modes))
    if not out:
        raise InputError("modes is empty: pass some of 'Q', 'K', 'V'.")
    return out


def _receiver_factors(
    weights: HeadWeights, mode: str, qk_offsets: Sequence[int] | None
) -> tuple[Tensor, Tensor]:
    """``(A, B)`` with ``R = A B`` per receiver head: ``A [L, H, d_model, k]``, ``B [L, H, k, d_model]``."""
    mode = check_mode(mode)
    if mode == "V":
        return weights.W_V, weights.W_O
    W_Q = weights.W_Q
    if qk_offsets is not None:
        if weights.rotary_dim is None:
            raise InputError(
                "qk_offsets given but the weights are not rotary: set rotary_dim on HeadWeights, or "
                "drop qk_offsets (the static QK is exact for models without rotary embeddings)."
            )
        M = rotary_offset_matrix(
            weights.d_head,
            weights.rotary_dim,
            list(qk_offsets),
            weights.rotary_base,
            weights.rotary_interleaved,
            dtype=W_Q.dtype,
        )
        W_Q = W_Q @ M.to(W_Q.device)
    if mode == "Q":  # R = W_Q M W_Kᵀ
        return W_Q, weights.W_K.transpose(-2, -1)
    return weights.W_K, W_Q.transpose(-2, -1)  # "K": R = (W_Q M W_Kᵀ)ᵀ


def receiver_matrix(
    weights: HeadWeights, mode: str, qk_offsets: Sequence[int] | None = None
) -> FactoredMatrix:
    """The receiver matrix ``R`` of each head for ``mode``, ``[n_layers, n_heads, d_model, d_model]``.

    ``qk_offsets`` (rotary models only): average the QK form over these relative offsets.

    >>> w = HeadWeights.random(2, 2, 8, 2)
    >>> torch.equal(receiver_matrix(w, "K").AB, w.QK.AB.transpose(-1, -2))
    True
    """
    from transformer_lens import FactoredMatrix  # here: importing TransformerLens costs ~2 s

    return FactoredMatrix(*_receiver_factors(weights, mode, qk_offsets))


def receiver_readers(
    weights: HeadWeights, mode: str, qk_offsets: Sequence[int] | None = None
) -> tuple[Float[Tensor, "n_layers n_heads d_model k"], Float[Tensor, "n_layers n_heads"]]:
    """Per receiver, ``P`` with ``P Pᵀ = R Rᵀ`` and ``‖R‖_F = ‖P‖_F``: ``‖Rᵀ v‖ = ‖Pᵀ v‖`` for any ``v``.

    From ``R = A B``: ``B Bᵀ = Q Λ Qᵀ`` (``k × k``), ``P = A Q Λ^½``. Returns ``(P, ‖R‖_F)``.
    """
    A, B = _receiver_factors(weights, mode, qk_offsets)
    G = B.double() @ B.double().transpose(-2, -1)
    evals, evecs = torch.linalg.eigh(G)
    root = evecs * evals.clamp(min=0).sqrt()[..., None, :]
    P = (A.double() @ root).to(A.dtype)
    return P, P.pow(2).sum((-2, -1)).sqrt()


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, NaN where ``den == 0`` (a head with all-zero weights has no defined score)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.nan)


def direction_scores(
    directions: Float[Tensor, "n d_model"],
    weights: HeadWeights,
    mode: str,
    qk_offsets: Sequence[int] | None = None,
) -> Float[Tensor, "n n_layers n_heads"]:
    """Score of each write direction ``v`` against every head as receiver: ``‖Rᵀ v‖ / (‖v‖ ‖R‖_F)``.

    >>> w = HeadWeights.random(2, 3, 16, 4)
    >>> direction_scores(torch.randn(5, 16), w, "Q").shape
    torch.Size([5, 2, 3])
    """
    if not isinstance(directions, Tensor) or directions.ndim != 2 or directions.shape[1] != weights.d_model:
        raise InputError(
            f"directions must be a tensor [n, d_model={weights.d_model}], got "
            f"{tuple(directions.shape) if isinstance(directions, Tensor) else type(directions).__name__}."
        )
    norms = directions.norm(dim=-1, keepdim=True)
    if not torch.isfinite(directions).all() or (norms == 0).any():
        raise InputError("directions must be finite and non-zero (each row is a write direction).")
    P, Rnorm = receiver_readers(weights, mode, qk_offsets)
    v = (directions / norms).to(P.dtype)
    reads = torch.einsum("nd,lhdk->nlhk", v, P).norm(dim=-1)
    return _ratio(reads, Rnorm)


def _layer_mask(n_layers: int, device: torch.device) -> Tensor:
    idx = torch.arange(n_layers, device=device)
    return idx[:, None] < idx[None, :]  # [sender_layer, receiver_layer]


def head_composition_scores(
    weights: HeadWeights, mode: str, qk_offsets: Sequence[int] | None = None
) -> Float[Tensor, "n_layers n_heads n_layers n_heads"]:
    """Head-level composition scores ``‖W_OV^s R^r‖_F / (‖W_OV^s‖_F ‖R^r‖_F)`` for all head pairs.

    Same conventions and layer mask as TL's ``all_composition_scores(mode)``: zero unless
    ``sender_layer < receiver_layer``.

    >>> w = HeadWeights.random(3, 2, 16, 4)
    >>> cs = head_composition_scores(w, "V")
    >>> cs.shape, bool(cs[2].abs().sum() == 0), bool(((cs >= 0) & (cs <= 1)).all())
    (torch.Size([3, 2, 3, 2]), True, True)
    """
    P, Rnorm = receiver_readers(weights, mode, qk_offsets)
    # ‖W_V W_O P‖_F = ‖T W_O P‖_F with W_V = Q T (thin QR): sender reduced to [d_head, d_model].
    T = torch.linalg.qr(weights.W_V.double(), mode="r").R.to(P.dtype)
    TW = T @ weights.W_O  # [L, H, d_head, d_model]
    Snorm = TW.pow(2).sum((-2, -1)).sqrt()  # ‖W_OV‖_F
    L, H = weights.n_layers, weights.n_heads
    out = torch.zeros(L, H, L, H, dtype=P.dtype, device=P.device)
    for ls in range(L - 1):
        prod = torch.einsum("hid,lgdk->hlgik", TW[ls], P[ls + 1 :]).pow(2).sum((-2, -1)).sqrt()
        out[ls, :, ls + 1 :] = _ratio(prod, Snorm[ls][:, None, None] * Rnorm[ls + 1 :][None])
    return out


def component_score_tensor(
    weights: HeadWeights, mode: str, qk_offsets: Sequence[int] | None = None
) -> Float[Tensor, "n_layers n_heads d_head n_layers n_heads"]:
    """Component scores ``CS_i = ‖Rᵀ v_i‖ / ‖R‖_F`` for every sender component and receiver head.

    Index ``[sender_layer, sender_head, component, receiver_layer, receiver_head]``; components in
    order of decreasing singular value; zero unless ``sender_layer < receiver_layer``. Components
    with ``s_i = 0`` are included here (their ``v_i`` is an arbitrary null-space direction).

    >>> w = HeadWeights.random(2, 2, 16, 4)
    >>> component_score_tensor(w, "Q").shape
    torch.Size([2, 2, 4, 2, 2])
    """
    P, Rnorm = receiver_readers(weights, mode, qk_offsets)
    V = weights.ov_svd.V.to(P.dtype)  # [L, H, d_model, C]
    L, H, C = weights.n_layers, weights.n_heads, weights.d_head
    out = torch.zeros(L, H, C, L, H, dtype=P.dtype, device=P.device)
    for ls in range(L - 1):
        reads = torch.einsum("hdc,lgdk->hclgk", V[ls], P[ls + 1 :]).norm(dim=-1)
        out[ls, :, :, ls + 1 :] = _ratio(reads, Rnorm[ls + 1 :][None, None])
    return out


def component_scores(
    weights: HeadWeights,
    modes: str | Iterable[str] = MODES,
    qk_offsets: Sequence[int] | None = None,
    rtol: float = 1e-6,
) -> pd.DataFrame:
    """Tidy table of component-level composition scores, one row per (sender component, later receiver, mode).

    Columns: ``sender_layer, sender_head, component, singular_value, receiver_layer, receiver_head,
    mode, score``; only receivers in later layers. Rows ordered by mode, then sender, component,
    receiver. ``modes``: an iterable of ``"Q"``, ``"K"``, ``"V"`` or a string such as ``"QV"``.
    Components with ``s_i <= rtol * max_j s_j`` (rank-deficient heads, removed components) are left
    out: their write direction is an arbitrary null-space vector, not something the head writes.

    >>> w = HeadWeights.random(2, 2, 16, 4)
    >>> df = component_scores(w, modes="QK")
    >>> len(df), list(df["mode"].unique())  # 2 modes x 2 senders x 4 components x 2 receivers
    (32, ['Q', 'K'])
    """
    modes = _check_modes(modes)
    S = weights.ov_svd.S
    mask = _layer_mask(weights.n_layers, S.device)[:, None, None, :, None]
    kept = S > rtol * S.max(dim=-1, keepdim=True).values  # [L, H, C]
    mask = (mask & kept[:, :, :, None, None]).expand(-1, -1, -1, -1, weights.n_heads)
    idx = mask.nonzero().cpu().numpy()
    sl, sh, c, rl, rh = (idx[:, j] for j in range(5))
    sv = S.cpu().numpy()[sl, sh, c].astype(np.float64)
    frames = []
    for mode in modes:
        T = component_score_tensor(weights, mode, qk_offsets)
        frames.append(
            pd.DataFrame(
                {
                    "sender_layer": sl,
                    "sender_head": sh,
                    "component": c,
                    "singular_value": sv,
                    "receiver_layer": rl,
                    "receiver_head": rh,
                    "mode": mode,
                    "score": T[mask].cpu().numpy().astype(np.float64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[SCORE_COLUMNS]
