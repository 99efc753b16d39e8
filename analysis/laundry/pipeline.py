"""The positional-subspace study end to end (``sublens laundry subspace``): locate the channel on dev
prompts, stack the suppressors' top write directions, measure the subspace on held-out prompts.

1. **Locate** (dev items, dev templates): :func:`~analysis.laundry.channel.head_roles` →
   movers and suppressors; a Q-only channel scan (component scores + receiver null) →
   the suppressors' components that compose most with the movers.
2. **Subspace**: the chosen components' write directions ``[d_model, m]``; effective dimension, principal
   angles between heads; an orthonormal basis of ``k`` directions (``k=None``: 95 % of the energy, at
   least 3 so the scatter has three axes).
3. **Coordinates** (held-out: test items and the test template family, or your templates): the residual
   stream entering the first mover's layer at END, projected on the basis; decodability of the answer's
   list position from them by N (crowding), overlap vs accuracy by position (order sensitivity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from analysis.laundry.channel import head_roles, laundry_batch, locate_channel, record_end, sender_components
from analysis.laundry.subspace import (
    coordinate_frame,
    crowding,
    crowding_correlation,
    decodability,
    effective_dimension,
    head_angles,
    subspace_basis,
)
from analysis.tasks.laundry import laundry_family_prompts
from probes.config import Config

__all__ = [
    "SteerConfig",
    "SubspaceConfig",
    "correct_items",
    "locate",
    "positional_subspace",
    "steering_study",
    "write_directions",
]


class SubspaceConfig(Config):
    """One positional-subspace study (CLI flags of ``sublens laundry subspace`` map onto it)."""

    n_items: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10)  # list lengths N of the held-out prompts
    per_n: int = 40  # held-out prompts per N (coordinates, crowding, order sensitivity)
    locate_per_n: int = 10  # dev prompts per N used to locate movers and suppressors
    n_movers: int = 3  # mover heads kept
    n_suppressors: int = 4  # suppressor heads kept (before the first mover's layer)
    per_head: int = 2  # write directions (OV components) per suppressor
    k: int | None = None  # basis dimension (None: 95 % of the energy, at least 3)
    n_null: int = 500  # random directions per receiver for the component z-scores
    n_boot: int = 1000  # bootstrap resamples for the order-sensitivity interval
    batch_size: int = 16  # prompts per forward pass
    seed: int = 0  # prompts, null and bootstrap
    items: tuple[str, ...] = ()  # your items (split into dev/test halves); empty: built-in
    templates: tuple[str, ...] = ()  # your held-out templates; empty: the built-in test family


def correct_items(item_logits: torch.Tensor, prompts: pd.DataFrame) -> list[bool]:
    """Per prompt: the answer's logit beats every other list item (``item_logits`` ``[batch, n_max]``,
    list order, NaN padding)."""
    rows = []
    for b, (n, pos) in enumerate(prompts[["n_items", "position"]].itertuples(index=False)):
        row = item_logits[b, :n]
        others = torch.cat([row[:pos], row[pos + 1 :]])
        rows.append(bool(row[pos] > others.max()))
    return rows


def write_directions(weights, components: pd.DataFrame) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Stacked unit write directions ``[d_model, m]`` of ``components`` (``sender_layer, sender_head,
    component``) from ``weights.ov_svd``, and each head's own ``[d_model, m_h]`` block."""
    V = weights.ov_svd.V  # [L, H, d_model, d_head]: column c is component c's write direction
    cols, per_head = [], {}
    for (layer, head), g in components.groupby(["sender_layer", "sender_head"], sort=False):
        block = torch.stack([V[int(layer), int(head), :, int(c)] for c in g["component"]], dim=1).float()
        per_head[f"L{int(layer)}.H{int(head)}"] = block
        cols.append(block)
    return torch.cat(cols, dim=1), per_head


def channel_basis(found: dict, k: int | None = None) -> dict:
    """From a :func:`locate` result: the stacked write directions ``V``, each head's block, their
    :func:`effective_dimension`, the subspace ``basis`` ``[d_model, k]`` (``k`` default: 95 % of the
    energy, at least 3, at most the number of directions) and the ``layer`` read (the first mover's)."""
    V, per_head = write_directions(found["weights"], found["components"])
    dim = effective_dimension(V)
    k = k if k is not None else min(max(dim["k95"], 3), V.shape[1])
    layer = min(m[0] for m in found["channel"]["movers"])
    return {"V": V, "per_head": per_head, "dim": dim, "k": k, "basis": subspace_basis(V, k=k), "layer": layer}


def _prompts(handle, config: SubspaceConfig, split: str, per_n: int) -> pd.DataFrame:
    return laundry_family_prompts(
        handle.tokenizer, split, list(config.n_items), per_n, config.seed,
        list(config.items) or None, list(config.templates) or None,
    )  # fmt: skip


def locate(handle, config: SubspaceConfig, progress: bool = False) -> dict:
    """Step 1 on dev prompts: ``roles`` (per-head table), ``channel`` (movers, suppressors) and
    ``components`` (the suppressors' top Q-composing OV components with z)."""
    from analysis.channels import ScanConfig, scan_channels
    from probes.weights import head_weights

    batch = laundry_batch(handle, _prompts(handle, config, "dev", config.locate_per_n))
    rec = record_end(handle, batch, config.batch_size, progress=progress)
    roles = head_roles(handle, batch, rec)
    channel = locate_channel(roles, config.n_movers, config.n_suppressors)
    weights = head_weights(handle)
    scan = scan_channels(weights, ScanConfig(modes="Q", n_null=config.n_null, seed=config.seed))
    comps = sender_components(scan, channel["suppressors"], channel["movers"], config.per_head)
    return {"roles": roles, "channel": channel, "components": comps, "weights": weights}


def positional_subspace(handle, config: SubspaceConfig, progress: bool = False) -> dict:
    """Steps 1–3. Returns DataFrames ``roles, components, energy, angles, coords, decodability, crowding,
    correlation``, the ``channel`` dict, the ``weights`` read, the ``basis`` ``[d_model, k]``, the
    ``layer`` read and a ``summary``."""
    found = locate(handle, config, progress)
    cb = channel_basis(found, config.k)
    per_head, dim, k, basis, layer = (cb[n] for n in ("per_head", "dim", "k", "basis", "layer"))
    batch = laundry_batch(handle, _prompts(handle, config, "test", config.per_n))
    rec = record_end(handle, batch, config.batch_size, progress=progress)
    correct = correct_items(rec.item_logits, batch.prompts)
    coords = coordinate_frame(rec.resid_pre[layer], basis, batch.prompts, correct)
    energy = pd.DataFrame({"direction": range(len(dim["energy"])), "energy": dim["energy"]})
    summary = {
        "movers": found["channel"]["movers"],
        "suppressors": found["channel"]["suppressors"],
        "read_layer": layer,
        "m_directions": dim["m"],
        "k90": dim["k90"],
        "k95": dim["k95"],
        "participation_ratio": dim["participation_ratio"],
        "basis_k": k,
    }
    return {
        "roles": found["roles"],
        "channel": found["channel"],
        "components": found["components"],
        "weights": found["weights"],
        "energy": energy,
        "angles": head_angles(per_head) if len(per_head) > 1 else pd.DataFrame(),
        "basis": basis,
        "layer": layer,
        "coords": coords,
        "decodability": decodability(coords, seed=config.seed),
        "crowding": crowding(coords),
        "correlation": crowding_correlation(coords, n_boot=config.n_boot, seed=config.seed),
        "summary": summary,
    }


class SteerConfig(SubspaceConfig):
    """One steering study (``sublens laundry steer``): the subspace settings plus the steering grid."""

    gammas: tuple[float, ...] = (0.0, 1.0, 2.0)  # push factors γ of the targets t(γ) tried (on dev; oracle)
    fit_per_n: int = 20  # dev prompts per N for the targets, the decoder and the choice of γ


def _decoders(coords: pd.DataFrame, seed: int) -> dict:
    """Per N: a logistic regression decoding the answer position from the coordinates (fitted on dev)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cols = [c for c in coords.columns if c.startswith("c") and c[1:].isdigit()]
    return {int(n): make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
            .fit(g[cols].to_numpy(), g["position"].to_numpy()) for n, g in coords.groupby("n_items")}  # fmt: skip


def _decode(decoders: dict, coords: pd.DataFrame) -> np.ndarray:
    cols = [c for c in coords.columns if c.startswith("c") and c[1:].isdigit()]
    out = np.zeros(len(coords), dtype=int)
    for n, g in coords.groupby("n_items"):
        out[g.index.to_numpy()] = decoders[int(n)].predict(g[cols].to_numpy())
    return out


def steering_study(handle, config: SteerConfig, progress: bool = False, found: dict | None = None) -> dict:
    """Locate, build the basis, fit the targets/decoder/γ on dev, then evaluate baseline, ``position``,
    ``decoded`` and ``oracle`` steering on held-out prompts. Returns ``by_n``, ``by_position`` (Wilson
    95 % intervals, gain in pp), ``summary`` and ``scored`` (per held-out prompt, every condition).
    ``found``: a :func:`locate` (or :func:`positional_subspace`) result to reuse instead of locating again."""
    from analysis.laundry.steering import fit_targets, mover_attention, steer, steering_table, targets_for

    found = found if found is not None else locate(handle, config, progress)
    cb = channel_basis(found, config.k)
    basis, k, layer, movers = cb["basis"], cb["k"], cb["layer"], found["channel"]["movers"]

    def run(batch, targets):
        rec = steer(handle, batch, basis, layer, targets, config.batch_size, progress)
        return rec, correct_items(rec.item_logits, batch.prompts)

    dev = laundry_batch(handle, _prompts(handle, config, "dev", config.fit_per_n))
    rec, ok = run(dev, None)
    dev_coords = coordinate_frame(rec.resid_pre[layer], basis, dev.prompts, ok)
    fitted, decoders = fit_targets(dev_coords), _decoders(dev_coords, config.seed)
    dev_decoded = _decode(decoders, dev_coords)
    dev_acc = {"baseline": float(np.mean(ok))}
    for rule, pos in (("position", dev.prompts["position"]), ("decoded", dev_decoded)):
        for g in config.gammas:
            dev_acc[f"{rule} γ={g:g}"] = float(np.mean(run(dev, targets_for(dev.prompts, pos, fitted, g))[1]))
    best = {
        rule: max(config.gammas, key=lambda g, r=rule: dev_acc[f"{r} γ={g:g}"])
        for rule in ("position", "decoded")
    }

    test = laundry_batch(handle, _prompts(handle, config, "test", config.per_n))
    rec0, ok0 = run(test, None)
    coords = coordinate_frame(rec0.resid_pre[layer], basis, test.prompts, ok0)
    correct = {"baseline": ok0}
    attn, oks = [mover_attention(rec0, test, movers)], [ok0]
    for g in config.gammas:
        rec_g, ok_g = run(test, targets_for(test.prompts, test.prompts["position"], fitted, g))
        attn.append(mover_attention(rec_g, test, movers))
        oks.append(ok_g)
        if g == best["position"]:
            correct["position"] = ok_g
    correct["decoded"] = run(
        test, targets_for(test.prompts, _decode(decoders, coords), fitted, best["decoded"])
    )[1]
    pick = (
        torch.stack(attn).argmax(0).numpy()
    )  # per prompt: the candidate the movers attend most to the answer
    correct["oracle"] = [bool(oks[c][i]) for i, c in enumerate(pick)]
    by_n = steering_table(test.prompts, correct, ("n_items",))
    wide = by_n.pivot(index="n_items", columns="condition", values="accuracy")
    summary = {
        "movers": movers, "suppressors": found["channel"]["suppressors"], "layer": layer, "basis_k": k,
        "gamma": best, "dev_accuracy": dev_acc, "test_per_n": config.per_n,
        "max_gain_pp": {c: float(by_n[by_n.condition == c]["gain_pp"].max()) for c in ("position", "decoded", "oracle")},
        "oracle_ge_rules_every_n": bool(((wide["oracle"] >= wide["position"]) & (wide["oracle"] >= wide["decoded"])).all()),
    }  # fmt: skip
    scored = test.prompts[["n_items", "position", "answer", "template"]].assign(**correct, oracle_choice=pick)
    return {
        "by_n": by_n,
        "by_position": steering_table(test.prompts, correct, ("n_items", "position")),
        "summary": summary,
        "scored": scored,
        "coords": coords,
    }
