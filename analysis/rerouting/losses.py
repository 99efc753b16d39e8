"""SSR and GCG losses (pure torch, one value per batch row) and the objectives that wire them up.

Conventions (as in the SSR code): probes output P(harmless) = sigmoid(x·w + b), harmless = 1;
a refusal direction r̂ points from harmless to harmful means. All losses are >= 0 and 0 is ideal, so
the optimiser's adaptive swap count (``best / initial``) is meaningful.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from analysis.rerouting.optimiser import Objective, SlotForward
from probes.errors import InputError
from probes.handle import ModelHandle

__all__ = [
    "AttentionObjective",
    "ProbeObjective",
    "SteeringObjective",
    "TargetObjective",
    "attention_ssr_loss",
    "gcg_target_loss",
    "probe_readout",
    "probe_ssr_loss",
    "traced_probe_loss",
    "steering_ssr_loss",
]


def probe_ssr_loss(
    acts: list[Float[Tensor, "batch d_model"]],
    probes: list[tuple[Float[Tensor, " d_model"], Float[Tensor, ""]]],
    alphas: list[float] | None = None,
) -> Float[Tensor, " batch"]:
    """Σ_k α_k · BCE(P_k(harmless), 1) = Σ_k α_k · softplus(−(x_k·w_k + b_k)) on last-token activations."""
    alphas = alphas or [1.0] * len(acts)
    total = 0.0
    for a, (w, b), alpha in zip(acts, probes, alphas, strict=True):
        logit = a.float() @ w.float().to(a.device) + b.float().to(a.device)
        total = total + alpha * F.softplus(-logit)
    return total


def probe_readout(acts: Float[Tensor, "batch d_model"], w: Tensor, b: Tensor) -> Float[Tensor, " batch"]:
    """P(harmless) of a probe; > 0.5 means the activation reads as harmless."""
    return torch.sigmoid(acts.float() @ w.float().to(acts.device) + b.float().to(acts.device))


def steering_ssr_loss(
    acts: list[Float[Tensor, "batch d_model"]],
    directions: list[Float[Tensor, " d_model"]],
    alphas: list[float] | None = None,
) -> Float[Tensor, " batch"]:
    """Σ_k (−s_k − cos(x_k, r̂_k))²: with s_k = 1 pushes the activation to the acceptance side (cos → −1)."""
    alphas = alphas or [1.0] * len(acts)
    total = 0.0
    for a, r, s in zip(acts, directions, alphas, strict=True):
        cos = F.cosine_similarity(a.float(), r.float().to(a.device)[None], dim=-1)
        total = total + (-s - cos) ** 2
    return total


def attention_ssr_loss(
    patterns: list[Float[Tensor, "batch head q k"]],
    heads: list[int],
    suffix: slice,
    alphas: list[float] | None = None,
) -> Float[Tensor, " batch"]:
    """Σ_k α_k (1 − Σ_{i ∈ suffix} A_k[last → i]) for each (pattern, head) pair (SSR's "Dazzle")."""
    alphas = alphas or [1.0] * len(patterns)
    total = 0.0
    for p, h, alpha in zip(patterns, heads, alphas, strict=True):
        total = total + alpha * (1.0 - p[:, h, -1, suffix].float().sum(-1))
    return total


def gcg_target_loss(
    logits: Float[Tensor, "batch pos vocab"], target: Int[Tensor, " n_target"], target_start: int
) -> Float[Tensor, " batch"]:
    """Mean cross-entropy of ``target`` placed at ``target_start`` (logits at the positions before it)."""
    n = target.shape[0]
    pred = logits[:, target_start - 1 : target_start - 1 + n].float()
    tgt = target.to(logits.device)[None].expand(pred.shape[0], -1)
    return (
        F.cross_entropy(pred.reshape(-1, pred.shape[-1]), tgt.reshape(-1), reduction="none")
        .view(pred.shape[0], n)
        .mean(-1)
    )


# -- objectives ----------------------------------------------------------------------------------------
def _check_alphas(alphas, n, what):
    if alphas is not None and len(alphas) != n:
        raise InputError(f"{what}: got {len(alphas)} alphas for {n} targets; give one per target or none.")
    return list(alphas) if alphas is not None else None


class ProbeObjective(Objective):
    """Probe-SSR: per-layer probes ``{layer: (w, b)}`` read the last token; push them to "harmless".

    ``(w, b)`` reads P(harmless) = sigmoid(x·w + b): e.g. ``refusal_probes(...).probe(layer, "harmless")``
    (:mod:`analysis.refusal.probing`).
    """

    def __init__(self, probes: dict[int, tuple[Tensor, Tensor]], alphas: list[float] | None = None):
        if not probes:
            raise InputError("Probe-SSR needs probes at one or more layers (e.g. {10: (w, b), 20: (w, b)}).")
        self.layers = sorted(probes)
        self.probes = [(torch.as_tensor(probes[k][0]), torch.as_tensor(probes[k][1])) for k in self.layers]
        self.alphas = _check_alphas(alphas, len(self.layers), "Probe-SSR")
        self.resid_layers = self.layers

    def loss(self, fw: SlotForward) -> Float[Tensor, " batch"]:
        return probe_ssr_loss([fw.resid[k][:, -1] for k in self.layers], self.probes, self.alphas)


def traced_probe_loss(
    handle: ModelHandle, prompts: list[str], objective: ProbeObjective, remote: bool | str = False
) -> Float[Tensor, " batch"]:
    """The Probe-SSR loss of whole prompts (instruction + suffix, chat-formatted) read through one
    nnsight trace per batch: the same number as the optimiser's, and remote-ready (``remote``: see
    :func:`probes.capture.capture`), e.g. to score a found suffix on a model served by NDIF."""
    from probes.capture import capture

    sites = [f"resid_post.{k}" for k in objective.layers]
    acts = capture(handle, prompts, sites, backend="nnsight", remote=remote, progress=False)
    return probe_ssr_loss([acts[s] for s in sites], objective.probes, objective.alphas)


class SteeringObjective(Objective):
    """Steering-SSR: per-layer refusal directions ``{layer: r̂}``; drive cos(x, r̂) towards −s."""

    def __init__(self, directions: dict[int, Tensor], alphas: list[float] | None = None):
        if not directions:
            raise InputError("Steering-SSR needs refusal directions at one or more layers.")
        self.layers = sorted(directions)
        self.directions = [torch.as_tensor(directions[k]) for k in self.layers]
        self.alphas = _check_alphas(alphas, len(self.layers), "Steering-SSR")
        self.resid_layers = self.layers

    def loss(self, fw: SlotForward) -> Float[Tensor, " batch"]:
        return steering_ssr_loss([fw.resid[k][:, -1] for k in self.layers], self.directions, self.alphas)


class AttentionObjective(Objective):
    """Attention-SSR: heads ``[(layer, head), ...]``; maximise last-token attention to the suffix."""

    def __init__(self, heads: list[tuple[int, int]], alphas: list[float] | None = None):
        if not heads:
            raise InputError("Attention-SSR needs heads, e.g. [[20, 3], [25, 1]] as (layer, head) pairs.")
        self.heads = [(int(layer), int(h)) for layer, h in heads]
        self.alphas = _check_alphas(alphas, len(self.heads), "Attention-SSR")
        self.attn_layers = sorted({layer for layer, _ in self.heads})

    def check(self, handle: ModelHandle) -> None:
        super().check(handle)
        for _, h in self.heads:
            handle.check_head(h)

    def loss(self, fw: SlotForward) -> Float[Tensor, " batch"]:
        pats = [fw.attn[layer] for layer, _ in self.heads]
        return attention_ssr_loss(pats, [h for _, h in self.heads], fw.suffix, self.alphas)


class TargetObjective(Objective):
    """GCG: cross-entropy of a target string (default "Sure, here's") right after the assistant header."""

    needs_logits = True

    def __init__(self, handle: ModelHandle, target: str = "Sure, here's"):
        if not target:
            raise InputError('The GCG target string must be non-empty (e.g. "Sure, here\'s").')
        ids = handle.tokenizer.encode(target, add_special_tokens=False)
        self.target = target
        self.extra_ids = torch.tensor(ids, dtype=torch.long, device=handle.device)

    def loss(self, fw: SlotForward) -> Float[Tensor, " batch"]:
        return gcg_target_loss(fw.logits, self.extra_ids, fw.extra_start - fw.logits_start)
