"""Steering inside a subspace at a named site: :class:`SubspaceAdd` (``x ← x + c Bᵀ``) and
:class:`SubspaceSet` (``x ← x − (x B) Bᵀ + t Bᵀ``, orthogonal complement untouched), ``B`` orthonormal.

Sites: ``resid_pre.L``, ``attn_out.L``, ``mlp_out.L``, ``resid_post.L`` (``d_model``), ``z.L`` with a
head (``d_head``), ``head_out.L`` with a head (``d_model``; applied by adding the change of
``y_h = z_h W_O^h`` to ``attn_out``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from analysis.interventions.context import Hook, Positions, PromptContext, masked
from analysis.interventions.subspace import add_in_subspace, check_orthonormal, replace_in_subspace
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.hooks import parse_hook_site
from probes.sites import Site, parse_sites
from probes.weights import raw_attention_weights

__all__ = ["SubspaceAdd", "SubspaceSet"]


@dataclass(frozen=True, eq=False)
class _SubspaceIntervention:
    site: str  # "resid_pre.L", "attn_out.L", "mlp_out.L", "resid_post.L", "z.L" or "head_out.L"
    basis: Float[Tensor, "d k"]  # orthonormal columns spanning the subspace
    values: Float[Tensor, "... k"]  # coordinates in that basis (broadcast over batch/pos)
    head: int | None = None  # required for z and head_out sites
    positions: Positions = None

    def _apply(self, x: Tensor, B: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def _resolve(self, handle: ModelHandle) -> tuple[Site, int | None, Tensor]:
        kind = self.site.rpartition(".")[0] if isinstance(self.site, str) else None
        if kind == "head_out":
            (site,) = parse_sites([self.site], handle.info.n_layers)
        else:
            site = parse_hook_site(self.site, handle)
        needs_head = site.kind in ("z", "head_out")
        if needs_head and self.head is None:
            raise InputError(f"Site {self.site!r} is per head: pass head= (0..{handle.info.n_heads - 1}).")
        if not needs_head and self.head is not None:
            raise InputError(
                f"head={self.head} only applies to 'z.L' and 'head_out.L' sites, not {self.site!r}; drop head=."
            )
        head = handle.check_head(self.head) if needs_head else None
        d = handle.info.d_head if site.kind == "z" else handle.info.d_model
        B = check_orthonormal(self.basis, d, f"basis for {self.site}")
        vals = self.values
        if not isinstance(vals, Tensor) or vals.ndim < 1 or vals.shape[-1] != B.shape[1]:
            raise InputError(
                f"values must be a tensor [..., k={B.shape[1]}] (one coordinate per basis column), got "
                f"{getattr(vals, 'shape', type(vals).__name__)}."
            )
        if not torch.isfinite(vals).all():
            raise InputError("values contain NaN or inf.")
        return site, head, B

    def hooks(self, handle: ModelHandle, ctx: PromptContext) -> list[Hook]:
        site, head, B = self._resolve(handle)
        mask = ctx.mask(self.positions)
        if site.kind == "z":

            def on_z(z: Tensor) -> Tensor:
                new = z.clone()
                new[..., head, :] = self._apply(z[..., head, :], B)
                return masked(new, z, mask)

            return [(site.name, on_z)]
        if site.kind == "head_out":
            W_O = raw_attention_weights(handle, site.layer).W_O[head]  # [d_head, d_model], current weights
            state: dict[str, Tensor] = {}

            def read_z(z: Tensor) -> Tensor:
                state["y"] = z[..., head, :] @ W_O.to(z.device, z.dtype)
                return z

            def on_out(x: Tensor) -> Tensor:
                y = state.pop("y")
                return masked(x + (self._apply(y, B) - y), x, mask)

            return [(f"z.{site.layer}", read_z), (f"attn_out.{site.layer}", on_out)]

        def on_site(x: Tensor) -> Tensor:
            return masked(self._apply(x, B), x, mask)

        return [(site.name, on_site)]


@dataclass(frozen=True, eq=False)
class SubspaceAdd(_SubspaceIntervention):
    """Steer: ``x ← x + c Bᵀ`` at ``site`` (``values`` = coordinates ``c``, ``basis`` = ``B``)."""

    def _apply(self, x: Tensor, B: Tensor) -> Tensor:
        return add_in_subspace(x, B, self.values)


@dataclass(frozen=True, eq=False)
class SubspaceSet(_SubspaceIntervention):
    """Steer: ``x ← x − (x B) Bᵀ + t Bᵀ`` at ``site`` (``values`` = target coordinates ``t``)."""

    def _apply(self, x: Tensor, B: Tensor) -> Tensor:
        return replace_in_subspace(x, B, self.values)
