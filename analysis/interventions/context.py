"""What an intervention's hooks need to know about a batch: :class:`PromptContext` (prompt lengths and
padded length) and the positions it acts on (``positions``: ``None`` every position, padding included;
``"last"`` each prompt's last real token; ints counted per prompt, negative ones from each prompt's own end).

>>> ctx = PromptContext(torch.tensor([3, 2]), n_pos=3)
>>> ctx.mask("last").int().tolist()
[[0, 0, 1], [0, 1, 0]]
>>> ctx.mask([0, -1]).int().tolist()
[[1, 0, 1], [1, 1, 0]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from probes.errors import InputError

__all__ = ["Hook", "Positions", "PromptContext", "masked"]

Positions = None | int | Sequence[int] | Literal["last"]
Hook = tuple[str, Callable[[Tensor], Tensor]]  # (site name, activation -> replacement)


@dataclass(frozen=True)
class PromptContext:
    """Prompt lengths and padded length of a right-padded batch (what position masks are built from)."""

    lengths: Int[Tensor, " batch"]
    n_pos: int

    def mask(self, positions: Positions) -> Bool[Tensor, "batch pos"] | None:
        """Which (prompt, position) pairs ``positions`` touches (None: all)."""
        if positions is None:
            return None
        batch = self.lengths.shape[0]
        mask = torch.zeros(batch, self.n_pos, dtype=torch.bool)
        if positions == "last":
            mask[torch.arange(batch), self.lengths - 1] = True
            return mask
        pos = [positions] if isinstance(positions, int) else list(positions)
        if not pos or not all(isinstance(p, int) and not isinstance(p, bool) for p in pos):
            raise InputError(f"positions must be None, 'last', an int or a list of ints, got {positions!r}.")
        for b in range(batch):
            n = int(self.lengths[b])
            for p in pos:
                if not -n <= p < n:
                    raise InputError(
                        f"position {p} is out of range for prompt {b} with {n} tokens (allowed {-n}..{n - 1}); "
                        "negative positions count from each prompt's end."
                    )
                mask[b, p % n] = True
        return mask


def masked(new: Tensor, old: Tensor, mask: Bool[Tensor, "batch pos"] | None) -> Tensor:
    """``new`` where ``mask`` (over the leading ``[batch, pos]``) is set, ``old`` elsewhere (None: ``new``)."""
    if mask is None:
        return new
    m = mask.to(old.device)[: old.shape[0], : old.shape[1]]
    return torch.where(m.view(*m.shape, *([1] * (old.ndim - 2))), new, old)
