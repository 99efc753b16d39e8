"""Per-component OV (and QK) scales as differentiable parameters: the training-time form of an
:class:`EditSpec`.

A spec applies its rescalings one after another to each head's ``W_O`` (:mod:`probes.edits`)::

    W_O ← W_O (I + β_1 v_1 v_1ᵀ)(I + β_2 v_2 v_2ᵀ) …      β_e = α_e − 1

and its QK rescalings the same way to ``W = W_Qᵀ`` (``[d_head, d_model]``, ``v_e`` the query-side read
directions ``a_e`` of ``W_QK``).

:class:`ComponentScales` computes the same product in closed form, ``W_O + (W_O Vᵀ) T V`` with the
upper-triangular ``T`` of the compact WY representation (``T_kk = β_k``, ``T_{<k,k} = β_k T_{<k,<k} G_{<k,k}``,
``G = V Vᵀ`` the Gram matrix of the spec's float32 vectors, so their last-bit non-orthogonality is
reproduced too), and adds ``z_h (ΔW_h)`` to the output of each edited layer's attention output
projection with a forward hook (QK: ``x ΔW_hᵀ`` to the head's query columns of the query projection's
output, ``x`` its input). The scales are the only tensor with a gradient. A scale of exactly 1
contributes exactly nothing, so the spec of the moved components alone (:meth:`to_spec`) applied as a
weight edit gives the hook's forward pass up to float rounding (``tests/analysis/test_edit_learn.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from probes.architecture import decoder_layers, out_proj, query_proj
from probes.edits import ComponentEdit, EditSpec

__all__ = ["ComponentScales", "wy_factor"]


def wy_factor(beta: Tensor, gram: Tensor) -> Tensor:
    """``T [g, k, k]`` with ``Π_e (I + β_e v_e v_eᵀ) = I + Vᵀ T V`` for each of ``g`` groups (``gram = V Vᵀ``).

    >>> b = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    >>> wy_factor(b, torch.eye(2, dtype=torch.float64)[None])[0].diagonal().tolist()
    [0.5, -1.0]
    """
    g, k = beta.shape
    cols: list[Tensor] = []
    for j in range(k):
        if j == 0:
            col = beta[:, :1]
        else:
            prev = torch.stack(cols, dim=-1)[:, :j, :]  # [g, j, j]: columns 0..j-1, rows 0..j-1
            above = beta[:, j : j + 1] * (prev @ gram[:, :j, j : j + 1])[..., 0]
            col = torch.cat([above, beta[:, j : j + 1]], dim=1)
        cols.append(torch.cat([col, beta.new_zeros(g, k - col.shape[1])], dim=1))
    return torch.stack(cols, dim=-1)


class ComponentScales:
    """Learnable scales ``s`` (1 = unchanged) for OV components ``(layer, head, component)`` of ``handle``
    and, after them, QK components ``qk`` (same triples; :mod:`probes.edits`)."""

    def __init__(
        self,
        handle,
        candidates: Sequence[tuple[int, int, int]],
        *,
        qk: Sequence[tuple[int, int, int]] = (),
        fold_ln: bool = True,
    ):
        self.handle = handle
        edits = [(la, h, c, 1.0, "ov") for la, h, c in candidates] + [
            (la, h, c, 1.0, "qk") for la, h, c in qk
        ]
        self.base = EditSpec.build(handle, edits, fold_ln=fold_ln)
        self.candidates = [(e.layer, e.head, e.component) for e in self.base.edits]
        self.kinds = [e.kind for e in self.base.edits]
        d_head = handle.info.d_head
        self._groups: dict[tuple[str, int, int], list[int]] = {}
        for i, ((layer, head, _), kind) in enumerate(zip(self.candidates, self.kinds, strict=True)):
            self._groups.setdefault((kind, layer, head), []).append(i)
        self._prep: list[tuple[tuple[str, int], slice, list[int], Tensor, Tensor, Tensor]] = []
        for (kind, layer, head), idx in self._groups.items():
            proj = self._proj(kind, layer)
            sl = slice(head * d_head, (head + 1) * d_head)
            weight = proj.weight.detach()
            cols = isinstance(proj, torch.nn.Linear) == (kind == "ov")  # see probes.edits._head_slice
            W = (weight[:, sl].T if cols else weight[sl, :]).clone()  # [d_head, d_model]: W_O or W_Qᵀ
            V = self.base.vectors[idx].to(W.device, W.dtype)  # [k, d_model], the spec's own vectors
            self._prep.append(((kind, layer), sl, idx, W @ V.T, V @ V.T, V))
        self._delta: dict[tuple[str, int], list[tuple[slice, Tensor]]] = {}

    def _proj(self, kind: str, layer: int) -> torch.nn.Module:
        block = decoder_layers(self.handle.hf)[layer]
        return out_proj(block) if kind == "ov" else query_proj(block)

    def __len__(self) -> int:
        return len(self.candidates)

    def ones(self) -> Tensor:
        """Scales that leave the model unchanged, on the model's device and dtype, with a gradient."""
        p = next(self.handle.hf.parameters())
        return torch.ones(len(self), device=p.device, dtype=p.dtype, requires_grad=True)

    def set(self, scales: Tensor) -> None:
        """Compute every edited head's ``ΔW_O`` from ``scales`` (kept in the autograd graph)."""
        delta: dict[tuple[str, int], list[tuple[slice, Tensor]]] = {}
        for site, sl, idx, WV, gram, V in self._prep:
            beta = (scales[idx] - 1).to(WV.dtype)[None]
            T = wy_factor(beta, gram[None])[0]
            delta.setdefault(site, []).append((sl, WV @ T @ V))
        self._delta = delta

    def _hook(self, site: tuple[str, int]):
        def hook(_module, args, output):
            x = args[0]
            if site[0] == "ov":  # x = z [..., H*d_head]: the head's slice times ΔW_O
                for sl, dW in self._delta.get(site, ()):
                    output = output + x[..., sl] @ dW
                return output
            output = output.clone()  # qk: x = the query projection's input; add x ΔW_Qᵀ to the head's queries
            for sl, dW in self._delta.get(site, ()):
                output[..., sl] = output[..., sl] + x @ dW.T
            return output

        return hook

    @contextmanager
    def attached(self, scales: Tensor | None = None) -> Iterator[ComponentScales]:
        """Hooks on the edited layers' output projections (``scales``: set them first); removed on exit."""
        if scales is not None:
            self.set(scales)
        sites = sorted({(kind, la) for (la, _, _), kind in zip(self.candidates, self.kinds, strict=True)})
        handles = [self._proj(kind, la).register_forward_hook(self._hook((kind, la))) for kind, la in sites]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()
            self._delta = {}

    def edited(self, scales: Tensor, tol: float) -> list[int]:
        """Indices of the candidates whose scale moved by more than ``tol`` from 1."""
        s = scales.detach().cpu().double()
        return [i for i in range(len(self)) if abs(float(s[i]) - 1.0) > tol]

    def snapped(self, scales: Tensor, tol: float) -> Tensor:
        """``scales`` with every component within ``tol`` of 1 set to exactly 1 (not edited)."""
        s = scales.detach().clone()
        keep = torch.zeros(len(self), dtype=torch.bool)
        keep[self.edited(scales, tol)] = True
        s[~keep.to(s.device)] = 1.0
        return s

    def to_spec(self, scales: Tensor, tol: float, note: str = "") -> EditSpec | None:
        """The spec of the components moved by more than ``tol`` (None when none moved), in candidate order."""
        idx = self.edited(scales, tol)
        if not idx:
            return None
        s = scales.detach().cpu().double()
        b = self.base
        edits = tuple(ComponentEdit(*self.candidates[i], float(s[i]), self.kinds[i]) for i in idx)
        return EditSpec(
            model=b.model,
            pack_sha256=b.pack_sha256,
            weights_fingerprint=b.weights_fingerprint,
            n_layers=b.n_layers,
            n_heads=b.n_heads,
            d_model=b.d_model,
            d_head=b.d_head,
            edits=edits,
            vectors=b.vectors[idx],
            fold_ln=b.fold_ln,
            center_writing=b.center_writing,
            singular_values=tuple(b.singular_values[i] for i in idx),
            note=note,
        )
