"""Logit-difference effect of knocking out one head at a time (mean ablation or ABC activation patching)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.circuits.batch import IOIBatch
from analysis.circuits.clean_run import CleanRun
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.hooks import bridge_hooks

__all__ = ["head_ablation_effects"]


def _corrupted_z(
    handle: ModelHandle, corrupted: IOIBatch, layers: Sequence[int]
) -> dict[int, Float[Tensor, "batch pos n_heads d_head"]]:
    """Every head's ``z`` at every position of the corrupted prompts (model device and dtype)."""
    z: dict[int, Tensor] = {}

    def grab(L: int):
        def hook(x: Tensor) -> Tensor:
            z[L] = x.detach().clone()
            return x

        return hook

    with torch.no_grad():
        handle.tl.run_with_hooks(
            corrupted.ids.to(handle.device),
            fwd_hooks=bridge_hooks(handle, [(f"z.{L}", grab(L)) for L in layers]),
        )
    return z


def head_ablation_effects(
    handle: ModelHandle,
    batch: IOIBatch,
    run: CleanRun,
    heads: Sequence[tuple[int, int]] | None = None,
    corrupted: IOIBatch | None = None,
) -> pd.DataFrame:
    """Logit-difference effect of ablating each head (one forward pass per head).

    Without ``corrupted``: mean ablation, ``z_h`` ← its mean over every real token of ``batch``
    (``run.z_mean``) at every position. With ``corrupted`` (e.g. :func:`abc_prompts`, same positions):
    ``z_h`` ← its value on the corrupted prompt at the same position (activation patching).
    Columns ``layer, head, method, logit_diff_clean, logit_diff_ablated, effect`` (clean − ablated, so a
    head that helps IOI has a positive effect).
    """
    info = handle.info
    heads = [(L, h) for L in range(info.n_layers) for h in range(info.n_heads)] if heads is None else heads
    z_corr: dict[int, Tensor] = {}
    if corrupted is not None:
        if corrupted.ids.shape != batch.ids.shape:
            raise InputError("corrupted prompts must tokenise to the same shape as the clean ones.")
        z_corr = _corrupted_z(handle, corrupted, sorted({L for L, _ in heads}))
    bidx = torch.arange(batch.ids.shape[0])
    end = batch.end_pos
    ans, dis = batch.answer_ids, batch.distractor_ids
    clean = float(run.logit_diff.mean())
    rows = []
    for L, h in heads:
        value = run.z_mean[L][h] if corrupted is None else z_corr[L][..., h, :]

        def fn(z: Tensor, _v=value, _h=h) -> Tensor:
            z = z.clone()
            z[..., _h, :] = _v.to(z.device, z.dtype)
            return z

        with torch.no_grad():
            logits = handle.tl.run_with_hooks(
                batch.ids.to(handle.device), fwd_hooks=bridge_hooks(handle, [(f"z.{L}", fn)])
            )
        last = logits.float().cpu()[bidx, end]
        ld = float((last[bidx, ans] - last[bidx, dis]).mean())
        rows.append((L, h, "mean" if corrupted is None else "patch_abc", clean, ld, clean - ld))
    return pd.DataFrame(
        rows, columns=["layer", "head", "method", "logit_diff_clean", "logit_diff_ablated", "effect"]
    )
