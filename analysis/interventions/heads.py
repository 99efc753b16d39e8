"""Head-level interventions: rescale or remove one OV write direction of a head (the hook twin of
:mod:`probes.edits`), and mean ablation of a head's ``z`` or of one coordinate of its write.

Row vectors: a head's write is ``y_h = z_h W_O^h`` (``head_out``), ``attn_out = Σ_h y_h + b_O`` (before
any post-attention norm). ``W_O^h`` is read when the hooks are built, so applied weight edits count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor

from analysis.interventions.context import Hook, Positions, PromptContext, masked
from probes.capture import capture
from probes.errors import InputError, check_index
from probes.handle import ModelHandle
from probes.weights import head_ov_svd, raw_attention_weights

__all__ = ["ComponentMeanAblation", "ComponentRescale", "HeadMeanAblation"]


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


def _read_along(handle: ModelHandle, layer: int, head: int, v: Tensor) -> Float[Tensor, " d_head"]:
    """``W_O^h v``: ``z_h · read = y_h · v`` (current weights, so applied edits count)."""
    W_O = raw_attention_weights(handle, layer).W_O[head]  # [d_head, d_model]
    return W_O @ v.to(W_O.device, W_O.dtype)


def _mean_over_tokens(x: Tensor, lengths: Tensor) -> Tensor:
    """Mean over real tokens of a right-padded ``[batch, pos, ...]`` tensor (padding is zero)."""
    return x.sum(dim=(0, 1)) / lengths.sum()


def _check_prompts(prompts, what: str = "reference_prompts") -> list[str]:
    if isinstance(prompts, str) or not prompts:
        raise InputError(f"{what} must be a non-empty list of prompts (the set the mean is taken over).")
    return list(prompts)


def _ov_direction(
    handle: ModelHandle, layer: int, head: int, component: int, fold_ln: bool, center_writing: bool
) -> Float[Tensor, " d_model"]:
    component = check_index(component, handle.info.d_head, "component")
    V = head_ov_svd(handle, layer, head, fold_ln=fold_ln, center_writing=center_writing).V
    return V[:, component].float()


@dataclass(frozen=True, eq=False)
class ComponentRescale:
    """Hook twin of :func:`probes.edits.rescale_components`: ``attn_out −= (1 − α)(y_h·v) v`` at every position.

    ``direction``: unit write direction ``v`` in ``d_model`` (e.g. ``head_weights(h).ov_svd.V[L, H, :, i]``).
    It subtracts exactly what ``W_O^h ← W_O^h + (α − 1)(W_O^h v) vᵀ`` changes in the forward pass.
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
        return cls(layer, head, _ov_direction(handle, layer, head, component, fold_ln, center_writing), alpha)

    @classmethod
    def from_spec(cls, spec) -> list[ComponentRescale]:
        """One hook intervention per edit of a :class:`probes.edits.EditSpec` (same vectors)."""
        return [cls(e.layer, e.head, v, e.alpha) for e, v in zip(spec.edits, spec.vectors, strict=True)]

    def hooks(self, handle: ModelHandle, ctx: PromptContext) -> list[Hook]:
        layer, head = handle.check_layer(self.layer), handle.check_head(self.head)
        v = _unit(self.direction, handle.info.d_model, "direction")
        read = _read_along(handle, layer, head, v)
        state: dict[str, Tensor] = {}

        def on_z(z: Tensor) -> Tensor:
            state["c"] = z[..., head, :] @ read.to(z.dtype)
            return z

        def on_out(x: Tensor) -> Tensor:
            return x - (1.0 - self.alpha) * state.pop("c")[..., None] * v.to(x.device, x.dtype)

        return [(f"z.{layer}", on_z), (f"attn_out.{layer}", on_out)]


@dataclass(frozen=True, eq=False)
class HeadMeanAblation:
    """Replace head ``(layer, head)``'s ``z`` by ``mean_z`` (its mean over reference prompts) at ``positions``.

    Equivalent to replacing ``y_h`` by its mean, as ``W_O`` is linear.
    """

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

    def hooks(self, handle: ModelHandle, ctx: PromptContext) -> list[Hook]:
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
            return masked(new, z, mask)

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
            direction = _ov_direction(handle, layer, head, component, fold_ln, center_writing)
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

    def hooks(self, handle: ModelHandle, ctx: PromptContext) -> list[Hook]:
        layer, head = handle.check_layer(self.layer), handle.check_head(self.head)
        v = _unit(self.direction, handle.info.d_model, "direction")
        read = _read_along(handle, layer, head, v)
        mask = ctx.mask(self.positions)
        state: dict[str, Tensor] = {}

        def on_z(z: Tensor) -> Tensor:
            state["c"] = z[..., head, :] @ read.to(z.dtype)
            return z

        def on_out(x: Tensor) -> Tensor:
            new = x + (self.mean - state.pop("c"))[..., None] * v.to(x.device, x.dtype)
            return masked(new, x, mask)

        return [(f"z.{layer}", on_z), (f"attn_out.{layer}", on_out)]
