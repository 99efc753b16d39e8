"""Small, self-contained refusal readouts for SSR tests and demos (the full toolkit is ``probes.linear``).

``last_token_acts`` reads last-token ``resid_post`` of chat-formatted prompts; ``fit_directions`` gives
difference-of-means refusal directions r̂ = normalise(mean_harmful − mean_harmless); ``fit_probes``
fits per-layer logistic probes with harmless = 1 (the SSR convention). Both save/load as safetensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from analysis.rerouting.optimiser import run_forward
from probes.errors import InputError
from probes.handle import ModelHandle


@torch.no_grad()
def last_token_acts(
    handle: ModelHandle, prompts: list[str], layers: list[int], batch_size: int = 16
) -> dict[int, Float[Tensor, "batch d_model"]]:
    """Last-token resid_post of each chat-formatted prompt at ``layers``."""
    layers = [handle.check_layer(layer) for layer in layers]
    emb = handle.hf.get_input_embeddings()
    out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    for i in range(0, len(prompts), batch_size):
        ids, lengths = handle.tokenize(prompts[i : i + batch_size])
        fw = run_forward(handle, emb(ids.to(handle.device)), layers)
        rows = torch.arange(ids.shape[0])
        for layer in layers:
            out[layer].append(fw.resid[layer][rows, lengths - 1].float().cpu())
    return {layer: torch.cat(v) for layer, v in out.items()}


def fit_directions(
    handle: ModelHandle, harmful: list[str], harmless: list[str], layers: list[int]
) -> dict[int, Float[Tensor, " d_model"]]:
    """Unit difference-of-means refusal directions per layer (harmful minus harmless)."""
    if not harmful or not harmless:
        raise InputError("fit_directions needs non-empty harmful and harmless prompt lists.")
    a, b = last_token_acts(handle, harmful, layers), last_token_acts(handle, harmless, layers)
    return {k: torch.nn.functional.normalize(a[k].mean(0) - b[k].mean(0), dim=0) for k in a}


def fit_probes(
    handle: ModelHandle,
    harmful: list[str],
    harmless: list[str],
    layers: list[int],
    steps: int = 300,
    l2: float = 1e-3,
) -> dict[int, tuple[Tensor, Tensor]]:
    """Per-layer logistic probes P(harmless) = sigmoid(x·w + b), full batch, on standardised features
    (folded back into ``w``, ``b`` so they apply to raw activations)."""
    if not harmful or not harmless:
        raise InputError("fit_probes needs non-empty harmful and harmless prompt lists.")
    a, b = last_token_acts(handle, harmful, layers), last_token_acts(handle, harmless, layers)
    y = torch.cat([torch.zeros(len(harmful)), torch.ones(len(harmless))])
    out = {}
    for k in layers:
        x = torch.cat([a[k], b[k]])
        mu, sd = x.mean(0), x.std(0) + 1e-6
        z = (x - mu) / sd
        w = torch.zeros(z.shape[1], requires_grad=True)
        c = torch.zeros((), requires_grad=True)
        opt = torch.optim.Adam([w, c], lr=0.05)
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + c, y) + l2 * w.square().sum()
            loss.backward()
            opt.step()
        w_raw = (w / sd).detach()
        out[k] = (w_raw, (c - (mu * w_raw).sum()).detach())
    return out


def save_directions(directions: dict[int, Tensor], path: str | Path) -> Path:
    from safetensors.torch import save_file

    save_file({f"layer.{k}": v.contiguous() for k, v in directions.items()}, str(path))
    return Path(path)


def save_probes(probes: dict[int, tuple[Tensor, Tensor]], path: str | Path) -> Path:
    from safetensors.torch import save_file

    t = {}
    for k, (w, b) in probes.items():
        t[f"layer.{k}.w"], t[f"layer.{k}.b"] = w.contiguous(), b.reshape(()).contiguous()
    save_file(t, str(path))
    return Path(path)


def _load(path: str | Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise InputError(f"Tensor file {path} does not exist.")
    return load_file(str(path))


def load_directions(path: str | Path) -> dict[int, Tensor]:
    """``{layer: r̂}`` from a safetensors file with keys ``layer.<L>``."""
    t = _load(path)
    try:
        return {int(k.split(".")[1]): v for k, v in t.items()}
    except (IndexError, ValueError):
        raise InputError(f"{path}: expected keys 'layer.<L>', got {sorted(t)[:5]}.") from None


def load_probes(path: str | Path) -> dict[int, tuple[Tensor, Tensor]]:
    """``{layer: (w, b)}`` from a safetensors file with keys ``layer.<L>.w`` / ``layer.<L>.b``."""
    t = _load(path)
    layers = sorted({int(k.split(".")[1]) for k in t if k.startswith("layer.")})
    if not layers or any(f"layer.{k}.w" not in t or f"layer.{k}.b" not in t for k in layers):
        raise InputError(f"{path}: expected keys 'layer.<L>.w' and 'layer.<L>.b', got {sorted(t)[:5]}.")
    return {k: (t[f"layer.{k}.w"], t[f"layer.{k}.b"]) for k in layers}
