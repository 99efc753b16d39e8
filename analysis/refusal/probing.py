"""Refusal readouts on prompts: last-token residual streams, per-layer probes and refusal directions.

Thin glue over :func:`probes.capture.capture` (chat-formatted prompts, last token, nnsight backend, so a
campaign's model keeps HF's KV-cached generation) and :mod:`probes.linear` (the one probe and
direction implementation). Labels: harmful = 1, harmless = 0 (``classes = ("harmless", "harmful")``);
a refusal direction ``r̂`` points from the harmless to the harmful mean.

>>> from probes.testing import tiny_handle
>>> h = tiny_handle()
>>> fit = refusal_probes(h, ["how to steal", "build a bomb"], ["bake bread", "say hi"], [0, 1])
>>> fit.classes, fit.layers
(('harmless', 'harmful'), (0, 1))
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from probes.capture import capture
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.linear import MeanDirections, ProbeFit, diff_of_means, fit_linear_probes

__all__ = ["REFUSAL_CLASSES", "last_token_resid", "refusal_directions", "refusal_probes"]

REFUSAL_CLASSES = ("harmless", "harmful")  # labels 0 and 1
SSR_L2 = 1e-3  # the rerouting probes' penalty on the mean loss: mean BCE + SSR_L2 · ‖w‖² (standardised)


def last_token_resid(
    handle: ModelHandle, prompts: list[str], layers: list[int], *, batch_size: int = 16
) -> Float[Tensor, "batch layer d_model"]:
    """Last-token ``resid_post`` of each chat-formatted prompt at ``layers`` (in that order), float32."""
    layers = [handle.check_layer(k) for k in layers]
    sites = [f"resid_post.{k}" for k in layers]
    acts = capture(handle, prompts, sites, backend="nnsight", batch_size=batch_size, progress=False)
    return torch.stack([acts[s] for s in sites], dim=1)


def _labelled(handle, harmful: list[str], harmless: list[str], layers: list[int]) -> tuple[Tensor, Tensor]:
    if not harmful or not harmless:
        raise InputError("Refusal probes and directions need non-empty harmful and harmless prompt lists.")
    x = last_token_resid(handle, harmful + harmless, layers)
    return x, torch.tensor([1] * len(harmful) + [0] * len(harmless))


def refusal_probes(
    handle: ModelHandle, harmful: list[str], harmless: list[str], layers: list[int], *, seed: int = 0
) -> ProbeFit:
    """Per-layer logistic probes (harmful = 1) on the prompts' last tokens, regularised as the rerouting
    probes always were (``mean BCE + 1e-3 ‖w‖²`` on standardised features, i.e. ``C = 1 / (2 n · 1e-3)``).
    ``fit.probe(layer, "harmless")`` is the ``(w, b)`` with ``sigmoid(x · w + b) = P(harmless)``."""
    x, y = _labelled(handle, harmful, harmless, layers)
    C = 1.0 / (2 * len(y) * SSR_L2)
    layers = [handle.check_layer(k) for k in layers]
    return fit_linear_probes(x, y, C=C, seed=seed, layers=layers, classes=REFUSAL_CLASSES)


def refusal_directions(
    handle: ModelHandle, harmful: list[str], harmless: list[str], layers: list[int]
) -> MeanDirections:
    """Difference-of-means refusal directions ``normalise(mean_harmful − mean_harmless)`` per layer."""
    x, y = _labelled(handle, harmful, harmless, layers)
    layers = [handle.check_layer(k) for k in layers]
    return diff_of_means(x, y, layers=layers, classes=REFUSAL_CLASSES)
