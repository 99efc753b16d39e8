"""Representation steering in the positional subspace (``sublens laundry steer``).

**The intervention family.** At the residual stream entering layer ``layer`` (the first mover's), at END
only, the coordinates ``c = x B`` in an orthonormal basis ``B`` ``[d_model, k]`` are replaced by a target
``t`` (``x ← x − c Bᵀ + t Bᵀ``, :func:`analysis.interventions.replace_in_subspace`; the orthogonal
complement is untouched). ``t = c`` is no change.

**Exact and fast.** Setting END's residual changes nothing at earlier positions (causal attention), so
:class:`EndSteer` runs each prompt's prefix once through the model into a key/value cache and then only
the END token, with the hook, for every candidate target: one token per prompt per step, so targets can
be optimised by gradient descent with the model frozen. Its logits equal a full forward pass (tested).

**The non-oracle rule** (:class:`AffineRule`, :func:`fit_rule`): ``t = c Aᵀ + b``, an affine map of the
prompt's *own* END coordinates, fitted on dev prompts only by gradient descent on the cross-entropy of
the answer among the list items, with an L2 pull towards no change (``A = I, b = 0``). It uses no answer
information at test time.

**The oracle** (:func:`oracle_margins`): per test prompt, with the answer known, gradient ascent on the
answer's margin over the free target ``t``, started from the rule's point and from no change; it keeps
the best margin seen, and the unsteered and rule margins are candidates themselves. So per prompt the
oracle's margin is ``>=`` both the baseline's and the rule's: it is correct wherever either is, and its
accuracy is an upper bound of both at every N *by construction* (within the family: the best point found
by local search, not the global maximum over all targets).

Margin: answer logit − the largest other list item's logit; a prompt is correct when it is > 0 (as
:func:`analysis.laundry.pipeline.correct_items` scores it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from analysis.interventions import replace_in_subspace
from analysis.laundry.channel import LaundryBatch, _item_id_matrix
from probes.architecture import decoder_layers, quiet_cache_notice, unwrapped_modules
from probes.errors import InputError

__all__ = ["AffineRule", "EndSteer", "fit_rule", "margins", "oracle_margins", "steering_table", "wilson"]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95 % interval of ``k`` successes in ``n`` trials.

    >>> [round(x, 3) for x in wilson(8, 10)]
    [0.49, 0.943]
    """
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (mid - half, mid + half)


def margins(item_logits: Tensor, positions: Tensor) -> Tensor:
    """``[batch]``: the answer's logit minus the largest other item's (``item_logits`` ``[batch, n_max]``,
    ``-inf`` padding).

    >>> margins(torch.tensor([[1.0, 3.0, -float('inf')], [2.0, 0.5, 1.0]]), torch.tensor([1, 0])).tolist()
    [2.0, 1.0]
    """
    rows = torch.arange(len(positions))
    others = item_logits.clone()
    others[rows, positions] = -torch.inf
    return item_logits[rows, positions] - others.max(1).values


class EndSteer:
    """Steer END's coordinates at ``resid_pre.layer`` of ``batch``'s prompts (module docstring).

    ``basis`` ``[d_model, k]`` orthonormal. Prefixes are cached in chunks of ``batch_size`` prompts.
    After construction: ``coords`` ``[batch, k]`` (END's unsteered coordinates), ``base`` ``[batch, n_max]``
    (unsteered item logits, ``-inf`` padding) and ``positions`` ``[batch]`` (the answers' list positions).
    """

    def __init__(self, handle, batch: LaundryBatch, basis: Tensor, layer: int, batch_size: int = 64):
        self.handle, self.batch, self.layer = handle, batch, handle.check_layer(layer)
        p = next(handle.hf.parameters())
        self.basis = basis.to(p.device, p.dtype)
        self.items = _item_id_matrix(batch)
        self.positions = torch.tensor(batch.prompts["position"].to_numpy())
        self.chunks = [slice(s, s + batch_size) for s in range(0, len(batch.prompts), batch_size)]
        self._caches = [self._prefix(sl) for sl in self.chunks]
        with torch.no_grad():
            self.base = self.item_logits(None)
        self.coords = self._seen.float().cpu()

    def _prefix(self, sl: slice):
        from transformers import DynamicCache

        hf, lengths = self.handle.hf, self.batch.lengths[sl]
        width = int(lengths.max()) - 1
        mask = (torch.arange(width)[None, :] < (lengths - 1)[:, None]).long()
        cache = DynamicCache(config=hf.config)
        with torch.no_grad(), unwrapped_modules(hf), quiet_cache_notice():
            hf(input_ids=self.batch.ids[sl, :width].to(self.handle.device), attention_mask=mask.to(self.handle.device),
               position_ids=(mask.cumsum(1) - 1).clamp_min(0).to(self.handle.device), past_key_values=cache,
               use_cache=True)  # fmt: skip
        return cache, mask

    def item_logits(self, targets: Tensor | None) -> Tensor:
        """``[batch, n_max]`` item logits at END with its coordinates set to ``targets`` ``[batch, k]``
        (None: unsteered); differentiable in ``targets``. Also leaves the coordinates it saw in ``_seen``."""
        n, k = len(self.batch.prompts), self.basis.shape[1]
        if targets is not None and tuple(targets.shape) != (n, k):
            raise InputError(f"targets must be [{n}, {k}], got {tuple(targets.shape)}.")
        hf, dev, out, seen = self.handle.hf, self.handle.device, [], []
        for sl, (cache, mask) in zip(self.chunks, self._caches, strict=True):
            t = None if targets is None else targets[sl]

            def pre(_module, args, kwargs, t=t):
                x = args[0] if args else kwargs["hidden_states"]  # [chunk, 1, d_model]: END only
                seen.append((x[:, -1] @ self.basis).detach())
                if t is None:
                    return None
                x = replace_in_subspace(x, self.basis, t[:, None, :])
                return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

            lengths = self.batch.lengths[sl]
            full = torch.cat([mask, torch.ones(len(lengths), 1, dtype=torch.long)], 1).to(dev)
            last = self.batch.ids[sl][torch.arange(len(lengths)), lengths - 1]
            with unwrapped_modules(hf), quiet_cache_notice():
                hook = decoder_layers(hf)[self.layer].register_forward_pre_hook(pre, with_kwargs=True)
                try:
                    logits = hf(input_ids=last[:, None].to(dev), attention_mask=full,
                                position_ids=(lengths - 1)[:, None].to(dev), past_key_values=cache,
                                use_cache=True).logits[:, -1].float()  # fmt: skip
                finally:
                    hook.remove()
                    cache.crop(-1)  # drop END again: the cache holds the prefix only, without a graph
                    for kv in cache.layers:
                        kv.keys, kv.values = kv.keys.detach(), kv.values.detach()
            ii = self.items[sl].to(logits.device)
            out.append(logits.gather(1, ii.clamp_min(0)).masked_fill(ii < 0, -torch.inf).cpu())
        self._seen = torch.cat(seen)
        return torch.cat(out)


@dataclass
class AffineRule:
    """``t = c Aᵀ + b``: targets from a prompt's own END coordinates ``c`` ``[batch, k]``."""

    A: Tensor  # [k, k]
    b: Tensor  # [k]

    @classmethod
    def identity(cls, k: int) -> AffineRule:
        """No change: ``A = I``, ``b = 0``."""
        return cls(torch.eye(k), torch.zeros(k))

    def targets(self, coords: Tensor) -> Tensor:
        return coords @ self.A.T + self.b


def fit_rule(steers: list[EndSteer], steps: int = 100, lr: float = 0.05, l2: float = 1e-2,
             progress: bool = False) -> tuple[AffineRule, list[float]]:  # fmt: skip
    """Fit :class:`AffineRule` on dev prompts (``steers``, frozen model): full-batch Adam on the mean
    cross-entropy of the answer among the list items + ``l2 (‖A − I‖² + ‖b/s‖²)``, ``s`` the coordinates'
    RMS (so ``b`` is in their units). Starts at no change. Returns the rule and the loss per step."""
    from tqdm.auto import tqdm

    k = steers[0].basis.shape[1]
    scale = float(torch.cat([s.coords for s in steers]).pow(2).mean().sqrt().clamp_min(1e-6))
    dA = torch.zeros(k, k, requires_grad=True)
    db = torch.zeros(k, requires_grad=True)  # b / scale
    opt = torch.optim.Adam([dA, db], lr=lr)
    n_all, log = sum(len(s.positions) for s in steers), []
    for _ in tqdm(range(steps), desc="fit steering rule", disable=not progress):
        opt.zero_grad()
        total = 0.0
        for s in steers:
            t = s.coords + s.coords @ dA.T + scale * db
            il = s.item_logits(t)
            loss = F.cross_entropy(il, s.positions, reduction="sum") / n_all
            loss.backward()
            total += loss.item()
        reg = l2 * (dA.pow(2).sum() + db.pow(2).sum())
        reg.backward()
        opt.step()
        log.append(total + reg.item())
    return AffineRule(torch.eye(k) + dA.detach(), scale * db.detach()), log


def oracle_margins(steer: EndSteer, rule_targets: Tensor, steps: int = 30, lr: float = 0.1) -> Tensor:
    """``[batch]``: the best answer margin per prompt over no change, the rule's point and ``steps`` Adam
    steps of margin ascent (softplus-smoothed) from each of those two seeds; step size ``lr`` times the
    coordinates' RMS. It is ``>=`` the unsteered and the rule's margins on every prompt by construction."""
    pos = steer.positions
    with torch.no_grad():
        best = torch.maximum(margins(steer.base, pos), margins(steer.item_logits(rule_targets), pos))
    scale = float(steer.coords.pow(2).mean().sqrt().clamp_min(1e-6))
    for seed in (steer.coords, rule_targets):
        t = seed.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([t], lr=lr * scale)
        for _ in range(steps):
            il = steer.item_logits(t)
            m = margins(il, pos)
            best = torch.maximum(best, m.detach())
            opt.zero_grad()
            # ascend the margin: softplus keeps pushing prompts already right; logsumexp over the others
            others = il.clone()
            others[torch.arange(len(pos)), pos] = -torch.inf
            F.softplus(torch.logsumexp(others, 1) - il[torch.arange(len(pos)), pos]).sum().backward()
            opt.step()
        with torch.no_grad():
            best = torch.maximum(best, margins(steer.item_logits(t), pos))
    return best


def steering_table(
    prompts: pd.DataFrame, correct: dict[str, list[bool]], by: tuple[str, ...]
) -> pd.DataFrame:
    """Accuracy with Wilson 95 % intervals per condition (``correct``: condition → per-prompt bools),
    grouped ``by`` (e.g. ``("n_items",)`` or ``("n_items", "position")``); ``gain_pp`` vs ``baseline``."""
    frames = []
    for name, ok in correct.items():
        df = prompts[list(by)].reset_index(drop=True).assign(correct=np.asarray(ok, dtype=bool))
        g = df.groupby(list(by))["correct"].agg(["sum", "count"]).reset_index()
        lo_hi = [wilson(int(k), int(n)) for k, n in g[["sum", "count"]].to_numpy()]
        frames.append(g.assign(condition=name, accuracy=g["sum"] / g["count"],
                               ci_low=[a for a, _ in lo_hi], ci_high=[b for _, b in lo_hi]))  # fmt: skip
    out = pd.concat(frames, ignore_index=True).rename(columns={"count": "n_prompts"}).drop(columns="sum")
    base = out[out["condition"] == "baseline"].set_index(list(by))["accuracy"]
    out["gain_pp"] = 100 * (out["accuracy"] - base.reindex(pd.MultiIndex.from_frame(out[list(by)])
                                                           if len(by) > 1 else out[by[0]]).to_numpy())  # fmt: skip
    return out[[*by, "condition", "n_prompts", "accuracy", "ci_low", "ci_high", "gain_pp"]]
