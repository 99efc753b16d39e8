"""Representation steering in the positional subspace (``sublens laundry steer``).

At the residual stream entering the first mover's layer, at END only, the coordinates in the subspace
basis ``B`` are replaced (:class:`analysis.interventions.SubspaceSet`, orthogonal complement untouched)
by a target ``t``. Targets come from **dev** prompts only: ``μ[N, p]`` is the mean coordinate of the dev
prompts of length N whose answer sits at position p, ``μ[N]`` their mean over positions, and
``t(γ) = μ[N, p] + γ (μ[N, p] − μ[N])`` pushes the point away from the centre by ``γ``.

Rules (all evaluated on held-out prompts: test items and the test template family):

* ``position``: ``p`` = the answer's position (a fixed per-position target; it knows where the answer
  is, not which item it is), ``γ`` chosen on dev.
* ``decoded``: ``p`` = the position decoded from the prompt's own coordinates by a logistic regression
  fitted on dev (no answer information at all), ``γ`` chosen on dev.
* ``oracle``: per prompt, the candidate ``t(γ)`` (γ in the grid, answer's position) or no change that
  maximises the movers' attention to the answer, an upper bound that looks at each test prompt.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from analysis.interventions import PromptContext, SubspaceSet
from analysis.laundry.channel import LaundryBatch, record_end
from probes.errors import InputError

__all__ = ["fit_targets", "mover_attention", "steer", "steering_table", "targets_for", "wilson"]


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


def fit_targets(coords: pd.DataFrame) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per N: ``(μ[N, p] for p = 0..N-1 as [N, k], μ[N] as [k])`` from dev :func:`coordinate_frame` rows."""
    cols = [c for c in coords.columns if c.startswith("c") and c[1:].isdigit()]
    out = {}
    for n, g in coords.groupby("n_items"):
        mu = g.groupby("position")[cols].mean().reindex(range(int(n)))
        if mu.isna().any().any():
            raise InputError(f"dev prompts of N = {n} miss some positions; raise the dev prompts per N.")
        out[int(n)] = (mu.to_numpy(), mu.to_numpy().mean(0))
    return out


def targets_for(prompts: pd.DataFrame, positions, fitted: dict, gamma: float) -> Tensor:
    """``[batch, k]`` targets ``t(γ)`` for each prompt's N and the given ``positions`` (one per prompt)."""
    rows = []
    for n, p in zip(prompts["n_items"], positions, strict=True):
        mu, centre = fitted[int(n)]
        rows.append(mu[int(p)] + gamma * (mu[int(p)] - centre))
    return torch.tensor(np.array(rows), dtype=torch.float32)


def mover_attention(rec, batch: LaundryBatch, movers) -> Tensor:
    """``[batch]``: END's attention to the answer token, summed over the mover heads."""
    pos = batch.answer_pos
    rows = torch.arange(len(pos))
    return sum(rec.attn[layer][rows, head, pos] for layer, head in movers)


def steer(handle, batch: LaundryBatch, basis: Tensor, layer: int, targets: Tensor | None, batch_size: int = 16,
          progress: bool = False):  # fmt: skip
    """One recorded pass with the END coordinates at ``resid_pre.layer`` set to ``targets`` ``[batch, k]``
    (None: no intervention). Returns the :class:`~analysis.laundry.channel.EndRecord`."""
    if targets is None:
        return record_end(handle, batch, batch_size, progress=progress)
    if targets.shape != (len(batch.prompts), basis.shape[1]):
        raise InputError(
            f"targets must be [{len(batch.prompts)}, {basis.shape[1]}], got {tuple(targets.shape)}."
        )

    def hooks(sl: slice, lengths: Tensor, width: int):
        iv = SubspaceSet(f"resid_pre.{layer}", basis, targets[sl][:, None, :], positions="last")
        return iv.hooks(handle, PromptContext(lengths, width))

    return record_end(handle, batch, batch_size, extra_hooks=hooks, progress=progress)


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
