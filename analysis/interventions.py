"""Activation interventions for channel validation: component rescaling/removal as a hook, mean ablation
(of a head or of one OV component), and steering inside a subspace.

All interventions act through forward hooks (:func:`probes.hooks.run_with_hooks`); nothing here touches
a model's modules or weights. Row-vector convention throughout: a head's per-position write into the
residual stream is ``y_h = z_h W_O^h`` (``head_out``), and the attention output is
``attn_out = Σ_h y_h + b_O`` (before any post-attention norm).

- :class:`ComponentRescale` is the hook twin of the weight edit in :mod:`probes.edits`: it subtracts
  ``(1 − α)(y_h·v) v`` from ``attn_out``, which is exactly what ``W_O^h ← W_O^h + (α − 1)(W_O^h v) vᵀ``
  does to the forward pass (``α = 0``: the head's output projected off ``v``).
- :class:`HeadMeanAblation` replaces ``z_h`` by its mean over a reference prompt set (equivalently
  ``y_h`` by its mean, as ``W_O`` is linear); :class:`ComponentMeanAblation` replaces only the
  coordinate ``y_h·v`` by its reference mean.
- :class:`SubspaceAdd` adds ``c Bᵀ`` (a vector inside the subspace spanned by the orthonormal columns of
  ``B``); :class:`SubspaceSet` replaces the coordinates ``x B`` by targets ``t``: ``x ← x − (x B) Bᵀ + t Bᵀ``,
  leaving the orthogonal complement untouched. Sites: ``resid_pre.L``, ``attn_out.L``, ``mlp_out.L``,
  ``resid_post.L`` (``d_model``), ``z.L`` with a head (``d_head``), ``head_out.L`` with a head
  (``d_model``; applied by adding the change of ``y_h`` to ``attn_out``).

``positions``: ``None`` (every position, padding included), ``"last"`` (each prompt's last real token),
or ints / a list of ints counted per prompt (negative ones from each prompt's own end, so right padding
is never hit).

>>> from probes.testing import tiny_handle
>>> h = tiny_handle()
>>> B = orthonormalize(torch.randn(32, 2))
>>> run = run_with_interventions(
...     h, ["the cat sat"], [SubspaceSet("resid_pre.1", B, torch.tensor([1.0, -2.0]))], record=["resid_pre.1"]
... )
>>> [round(c, 4) for c in coordinates(run.acts["resid_pre.1"], B)[0, -1].tolist()]
[1.0, -2.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from probes.capture import capture
from probes.errors import InputError, check_index
from probes.handle import ModelHandle
from probes.hooks import HOOKABLE, parse_hook_site, run_with_hooks
from probes.sites import Site, parse_sites
from probes.weights import head_ov_svd, raw_attention_weights

__all__ = [
    "ComponentMeanAblation",
    "ComponentRescale",
    "HeadMeanAblation",
    "InterventionRun",
    "SubspaceAdd",
    "SubspaceSet",
    "add_in_subspace",
    "check_orthonormal",
    "coordinates",
    "orthonormalize",
    "replace_in_subspace",
    "rescale_along",
    "run_with_interventions",
]

Positions = None | int | Sequence[int] | Literal["last"]
Hook = tuple[str, Callable[[Tensor], Tensor]]

# ------------------------------------------------------------------------------------------ pure maths


def orthonormalize(vectors: Float[Tensor, "d k"]) -> Float[Tensor, "d k"]:
    """An orthonormal basis (columns) of the span of ``vectors``' columns (QR; full column rank needed).

    >>> Q = orthonormalize(torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]))
    >>> torch.allclose(Q.T @ Q, torch.eye(2), atol=1e-6)
    True
    """
    if not isinstance(vectors, Tensor) or vectors.ndim not in (1, 2) or not vectors.is_floating_point():
        raise InputError(
            f"vectors must be a float tensor [d, k] (columns span the subspace), got {getattr(vectors, 'shape', vectors)}."
        )
    V = vectors[:, None] if vectors.ndim == 1 else vectors
    Q, R = torch.linalg.qr(V.double())
    diag = R.diagonal().abs()
    if diag.numel() == 0 or bool((diag <= 1e-8 * diag.max().clamp_min(1e-30)).any()):
        raise InputError(
            f"vectors [d={V.shape[0]}, k={V.shape[1]}] are linearly dependent; drop redundant columns."
        )
    return (Q * R.diagonal().sign()).to(vectors.dtype)


def check_orthonormal(basis: Float[Tensor, "d k"], d: int, what: str = "basis") -> Float[Tensor, "d k"]:
    """Return ``basis`` (a 1-D vector becomes ``[d, 1]``) if it has ``d`` rows and orthonormal columns."""
    if not isinstance(basis, Tensor) or basis.ndim not in (1, 2) or not basis.is_floating_point():
        raise InputError(
            f"{what} must be a float tensor [d, k] with orthonormal columns, got {type(basis).__name__}."
        )
    B = basis[:, None] if basis.ndim == 1 else basis
    if B.shape[0] != d or B.shape[1] < 1 or B.shape[1] > d:
        raise InputError(
            f"{what} has shape {tuple(B.shape)}; expected [d={d}, k] with 1 <= k <= {d} (columns = directions)."
        )
    gram = B.double().T @ B.double()
    err = float((gram - torch.eye(B.shape[1], dtype=torch.float64, device=B.device)).abs().max())
    if not math.isfinite(err) or err > 1e-4:
        raise InputError(
            f"{what} columns are not orthonormal (max |BᵀB − I| = {err:.2g} > 1e-4); pass orthonormalize(B)."
        )
    return B


def coordinates(x: Float[Tensor, "... d"], basis: Float[Tensor, "d k"]) -> Float[Tensor, "... k"]:
    """Coordinates of ``x`` in the orthonormal basis: ``x B``."""
    return x @ basis.to(x.device, x.dtype)


def add_in_subspace(
    x: Float[Tensor, "... d"], basis: Float[Tensor, "d k"], coords: Float[Tensor, "... k"]
) -> Float[Tensor, "... d"]:
    """``x + c Bᵀ``: add the vector with coordinates ``c`` inside the subspace.

    >>> B = torch.eye(3)[:, :1]
    >>> add_in_subspace(torch.ones(3), B, torch.tensor([2.0])).tolist()
    [3.0, 1.0, 1.0]
    """
    B = basis.to(x.device, x.dtype)
    return x + coords.to(x.device, x.dtype) @ B.T


def replace_in_subspace(
    x: Float[Tensor, "... d"], basis: Float[Tensor, "d k"], target: Float[Tensor, "... k"]
) -> Float[Tensor, "... d"]:
    """``x − (x B) Bᵀ + t Bᵀ``: coordinates become ``t``, the orthogonal complement is unchanged.

    >>> B = torch.eye(3)[:, :2]
    >>> replace_in_subspace(torch.tensor([5.0, 6.0, 7.0]), B, torch.tensor([0.0, 1.0])).tolist()
    [0.0, 1.0, 7.0]
    """
    B = basis.to(x.device, x.dtype)
    return x + (target.to(x.device, x.dtype) - x @ B) @ B.T


def rescale_along(x: Float[Tensor, "... d"], v: Float[Tensor, " d"], alpha: float) -> Float[Tensor, "... d"]:
    """``x + (α − 1)(x·v) v`` for a unit ``v``: the component along ``v`` times ``α`` (0: projected off).

    >>> rescale_along(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0]), 0.0).tolist()
    [0.0, 4.0]
    """
    v = v.to(x.device, x.dtype)
    return x + (alpha - 1.0) * (x @ v)[..., None] * v


# ------------------------------------------------------------------------------------------ helpers


def _unit(v: Tensor, d: int, what: str) -> Tensor:
    if not isinstance(v, Tensor) or v.ndim != 1 or v.shape[0] != d or not v.is_floating_point():
        raise InputError(
            f"{what} must be a float vector [d_model={d}], got {getattr(v, 'shape', type(v).__name__)}."
        )
    n = float(v.norm())
    if not math.isfinite(n) or abs(n - 1.0) > 1e-4:
        raise InputError(f"{what} must be unit-norm (|v| = {n:.6g}); pass v / v.norm().")
    return v.detach()


def _finite(alpha: float, what: str = "alpha") -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha):
        raise InputError(f"{what} must be a finite number, got {alpha!r}.")
    return float(alpha)


def _position_mask(positions: Positions, lengths: Tensor, n_pos: int) -> Bool[Tensor, "batch pos"] | None:
    """Which (prompt, position) pairs an intervention touches (None: all)."""
    if positions is None:
        return None
    batch = lengths.shape[0]
    mask = torch.zeros(batch, n_pos, dtype=torch.bool)
    if positions == "last":
        mask[torch.arange(batch), lengths - 1] = True
        return mask
    pos = [positions] if isinstance(positions, int) else list(positions)
    if not pos or not all(isinstance(p, int) and not isinstance(p, bool) for p in pos):
        raise InputError(f"positions must be None, 'last', an int or a list of ints, got {positions!r}.")
    for b in range(batch):
        n = int(lengths[b])
        for p in pos:
            if not -n <= p < n:
                raise InputError(
                    f"position {p} is out of range for prompt {b} with {n} tokens (allowed {-n}..{n - 1}); "
                    "negative positions count from each prompt's end."
                )
            mask[b, p % n] = True
    return mask


def _masked(new: Tensor, old: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return new
    m = mask.to(old.device)[: old.shape[0], : old.shape[1]]
    return torch.where(m.view(*m.shape, *([1] * (old.ndim - 2))), new, old)


def _head_readout(handle: ModelHandle, layer: int, head: int) -> Float[Tensor, "d_head d_model"]:
    """Current ``W_O^h`` of one head (read at run time, so it reflects applied weight edits)."""
    return raw_attention_weights(handle, layer).W_O[head]


class _Context:
    """What hooks need to know about a batch: prompt lengths and padded length."""

    def __init__(self, lengths: Tensor, n_pos: int):
        self.lengths = lengths
        self.n_pos = n_pos

    def mask(self, positions: Positions) -> Tensor | None:
        return _position_mask(positions, self.lengths, self.n_pos)


# ------------------------------------------------------------------------------------------ interventions


@dataclass(frozen=True, eq=False)
class ComponentRescale:
    """Hook twin of :func:`probes.edits.rescale_components`: ``attn_out −= (1 − α)(y_h·v) v`` at every position.

    ``direction``: unit write direction ``v`` in ``d_model`` (e.g. ``head_weights(h).ov_svd.V[L, H, :, i]``).
    """

    layer: int
    head: int
    direction: Float[Tensor, " d_model"]
    alpha: float  # 0 removes the component, 1 does nothing

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _finite(self.alpha))

    @classmethod
    def from_component(
        cls,
        handle: ModelHandle,
        layer: int,
        head: int,
        component: int,
        alpha: float,
        *,
        fold_ln: bool = True,
        center_writing: bool = False,
    ) -> ComponentRescale:
        """Use ``v_i`` of ``head_weights(handle, fold_ln, center_writing)``, as :class:`probes.edits.EditSpec` does."""
        layer, head = handle.check_layer(layer), handle.check_head(head)
        component = check_index(component, handle.info.d_head, "component")
        V = head_ov_svd(handle, layer, head, fold_ln=fold_ln, center_writing=center_writing).V
        return cls(layer, head, V[:, component].float(), alpha)

    @classmethod
    def from_spec(cls, spec) -> list[ComponentRescale]:
        """One hook intervention per edit of a :class:`probes.edits.EditSpec` (same vectors)."""
        return [cls(e.layer, e.head, v, e.alpha) for e, v in zip(spec.edits, spec.vectors, strict=True)]

    def hooks(self, handle: ModelHandle, ctx: _Context) -> list[Hook]:
        layer, head = handle.check_layer(self.layer), handle.check_head(self.head)
        v = _unit(self.direction, handle.info.d_model, "direction")
        # [d_head]: z_h · read = y_h · v
        W_O = _head_readout(handle, layer, head)
        read = W_O @ v.to(W_O.device, W_O.dtype)
        state: dict[str, Tensor] = {}

        def on_z(z: Tensor) -> Tensor:
            state["c"] = z[..., head, :] @ read.to(z.dtype)
            return z

        def on_out(x: Tensor) -> Tensor:
            return x - (1.0 - self.alpha) * state.pop("c")[..., None] * v.to(x.device, x.dtype)

        return [(f"z.{layer}", on_z), (f"attn_out.{layer}", on_out)]


def _mean_over_tokens(x: Tensor, lengths: Tensor) -> Tensor:
    """Mean over real tokens of a right-padded ``[batch, pos, ...]`` tensor (padding is zero)."""
    return x.sum(dim=(0, 1)) / lengths.sum()


def _check_prompts(prompts, what: str = "reference_prompts") -> list[str]:
    if isinstance(prompts, str) or not prompts:
        raise InputError(f"{what} must be a non-empty list of prompts (the set the mean is taken over).")
    return list(prompts)


@dataclass(frozen=True, eq=False)
class HeadMeanAblation:
    """Replace head ``(layer, head)``'s ``z`` by ``mean_z`` (its mean over reference prompts) at ``positions``."""

    layer: int
    head: int
    mean_z: Float[Tensor, " d_head"]
    positions: Positions = None

    @classmethod
    def fit(
        cls,
        handle: ModelHandle,
        layer: int,
        head: int,
        reference_prompts: list[str],
        *,
        chat: bool = False,
        positions: Positions = None,
    ) -> HeadMeanAblation:
        """Mean of ``z_h`` over every real token of ``reference_prompts``."""
        layer, head = handle.check_layer(layer), handle.check_head(head)
        acts = capture(
            handle, _check_prompts(reference_prompts), [f"z.{layer}"], mode="all", chat=chat, progress=False
        )
        return cls(layer, head, _mean_over_tokens(acts[f"z.{layer}"][:, :, head], acts.lengths), positions)

    def hooks(self, handle: ModelHandle, ctx: _Context) -> list[Hook]:
        layer, head = handle.check_layer(self.layer), handle.check_head(self.head)
        d_head = handle.info.d_head
        if not isinstance(self.mean_z, Tensor) or tuple(self.mean_z.shape) != (d_head,):
            raise InputError(
                f"mean_z must be a vector [d_head={d_head}], got {getattr(self.mean_z, 'shape', None)}."
            )
        mask = ctx.mask(self.positions)

        def on_z(z: Tensor) -> Tensor:
            new = z.clone()
            new[..., head, :] = self.mean_z.to(z.device, z.dtype)
            return _masked(new, z, mask)

        return [(f"z.{layer}", on_z)]


@dataclass(frozen=True, eq=False)
class ComponentMeanAblation:
    """Replace the coordinate ``y_h·v`` of head ``(layer, head)``'s write by ``mean`` (its reference mean)."""

    layer: int
    head: int
    direction: Float[Tensor, " d_model"]
    mean: float
    positions: Positions = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _finite(self.mean, "mean"))

    @classmethod
    def fit(
        cls,
        handle: ModelHandle,
        layer: int,
        head: int,
        reference_prompts: list[str],
        *,
        component: int | None = None,
        direction: Tensor | None = None,
        fold_ln: bool = True,
        center_writing: bool = False,
        chat: bool = False,
        positions: Positions = None,
    ) -> ComponentMeanAblation:
        """Mean of ``y_h·v`` over every real token of ``reference_prompts``; ``v`` = OV component or ``direction``."""
        layer, head = handle.check_layer(layer), handle.check_head(head)
        if (component is None) == (direction is None):
            raise InputError(
                "Pass exactly one of component= (an OV SVD index) or direction= (a unit d_model vector)."
            )
        if component is not None:
            component = check_index(component, handle.info.d_head, "component")
            V = head_ov_svd(handle, layer, head, fold_ln=fold_ln, center_writing=center_writing).V
            direction = V[:, component].float()
        v = _unit(direction, handle.info.d_model, "direction").float()
        acts = capture(
            handle,
            _check_prompts(reference_prompts),
            [f"head_out.{layer}"],
            mode="all",
            chat=chat,
            progress=False,
        )
        coord = acts[f"head_out.{layer}"][:, :, head] @ v.cpu()
        return cls(layer, head, v, float(_mean_over_tokens(coord, acts.lengths)), positions)

    def hooks(self, handle: ModelHandle, ctx: _Context) -> list[Hook]:
        layer, head = handle.check_layer(self.layer), handle.check_head(self.head)
        v = _unit(self.direction, handle.info.d_model, "direction")
        W_O = _head_readout(handle, layer, head)
        read = W_O @ v.to(W_O.device, W_O.dtype)
        mask = ctx.mask(self.positions)
        state: dict[str, Tensor] = {}

        def on_z(z: Tensor) -> Tensor:
            state["c"] = z[..., head, :] @ read.to(z.dtype)
            return z

        def on_out(x: Tensor) -> Tensor:
            new = x + (self.mean - state.pop("c"))[..., None] * v.to(x.device, x.dtype)
            return _masked(new, x, mask)

        return [(f"z.{layer}", on_z), (f"attn_out.{layer}", on_out)]


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

    def hooks(self, handle: ModelHandle, ctx: _Context) -> list[Hook]:
        site, head, B = self._resolve(handle)
        mask = ctx.mask(self.positions)
        if site.kind == "z":

            def on_z(z: Tensor) -> Tensor:
                new = z.clone()
                new[..., head, :] = self._apply(z[..., head, :], B)
                return _masked(new, z, mask)

            return [(site.name, on_z)]
        if site.kind == "head_out":
            W_O = _head_readout(handle, site.layer, head)  # [d_head, d_model]
            state: dict[str, Tensor] = {}

            def read_z(z: Tensor) -> Tensor:
                state["y"] = z[..., head, :] @ W_O.to(z.device, z.dtype)
                return z

            def on_out(x: Tensor) -> Tensor:
                y = state.pop("y")
                return _masked(x + (self._apply(y, B) - y), x, mask)

            return [(f"z.{site.layer}", read_z), (f"attn_out.{site.layer}", on_out)]

        def on_site(x: Tensor) -> Tensor:
            return _masked(self._apply(x, B), x, mask)

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


# ------------------------------------------------------------------------------------------ runner


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
    ctx = _Context(lengths, ids.shape[1])
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
            post[name] = lambda z, W_O=W_O: torch.einsum("bphd,hdm->bphm", z, W_O.to(z.dtype))
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
