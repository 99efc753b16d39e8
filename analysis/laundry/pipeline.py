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

import json

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
from probes.errors import InputError

__all__ = [
    "SteerConfig",
    "fit_steering",
    "steer_prompts",
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
    """One steering study (``sublens laundry steer``): the subspace settings plus the rule's fit."""

    fit_per_n: int = 30  # dev prompts per N the rule is fitted on (dev items, dev template family)
    steps: int = 60  # full-batch Adam steps fitting the rule
    lr: float = 0.05  # Adam step size of the rule's fit (A − I and b / coordinate RMS)
    l2: float = 0.01  # pull of the rule towards no change: l2 (‖A − I‖² + ‖b / RMS‖²)
    oracle_steps: int = 20  # margin-ascent steps per seed of the per-prompt oracle
    oracle_lr: float = 0.1  # oracle step size, in units of the coordinates' RMS
    steer_batch: int = 128  # prompts per cached END pass (one token each, so large batches are cheap)


def fit_steering(handle, config: SteerConfig, progress: bool = False, found: dict | None = None) -> dict:
    """Locate (or reuse ``found``), build the basis and fit :class:`~analysis.laundry.steering.AffineRule`
    on dev prompts. Returns a JSON-able dict: ``layer``, ``movers``, ``suppressors``, ``basis``
    (``[d_model, k]`` as lists), ``A``, ``b``, ``fit_loss`` (per step) and ``dev_accuracy`` (baseline, rule)."""
    from analysis.laundry.steering import EndSteer, fit_rule, margins

    found = found if found is not None else locate(handle, config, progress)
    cb = channel_basis(found, config.k)
    dev = laundry_batch(handle, _prompts(handle, config, "dev", config.fit_per_n))
    steers = [EndSteer(handle, dev, cb["basis"], cb["layer"], config.steer_batch)]
    rule, log = fit_rule(steers, config.steps, config.lr, config.l2, progress)
    with torch.no_grad():
        after = torch.cat([margins(s.item_logits(rule.targets(s.coords)), s.positions) for s in steers])
    before = torch.cat([margins(s.base, s.positions) for s in steers])
    return {
        "layer": cb["layer"], "movers": found["channel"]["movers"], "suppressors": found["channel"]["suppressors"],
        "basis": cb["basis"].tolist(), "A": rule.A.tolist(), "b": rule.b.tolist(), "fit_loss": log,
        "dev_accuracy": {"baseline": float((before > 0).float().mean()), "rule": float((after > 0).float().mean())},
    }  # fmt: skip


def steer_prompts(handle, config: SteerConfig, fitted: dict, prompts: pd.DataFrame) -> pd.DataFrame:
    """Held-out ``prompts`` scored unsteered (``baseline``), with the fitted rule (``rule``) and the
    per-prompt ``oracle``: one row per prompt with each condition's correctness and answer margin."""
    from analysis.laundry.steering import AffineRule, EndSteer, margins, oracle_margins

    basis = torch.tensor(fitted["basis"])
    rule = AffineRule(torch.tensor(fitted["A"]), torch.tensor(fitted["b"]))
    steer = EndSteer(handle, laundry_batch(handle, prompts), basis, fitted["layer"], config.steer_batch)
    targets = rule.targets(steer.coords)
    with torch.no_grad():
        m = {"baseline": margins(steer.base, steer.positions),
             "rule": margins(steer.item_logits(targets), steer.positions)}  # fmt: skip
    m["oracle"] = oracle_margins(steer, targets, config.oracle_steps, config.oracle_lr)
    out = prompts[["n_items", "position", "answer", "template"]].reset_index(drop=True)
    return out.assign(
        **{c: (v > 0).numpy() for c, v in m.items()}, **{f"margin_{c}": v.numpy() for c, v in m.items()}
    )


def steering_study(handle, config: SteerConfig, progress: bool = False, found: dict | None = None,
                   run_dir=None) -> dict:  # fmt: skip
    """Fit on dev (:func:`fit_steering`), then score the held-out prompts N by N (:func:`steer_prompts`).

    ``run_dir``: ``config.json``, the fit (``steer_fit.json``) and each N's scores
    (``scored_n{N}.parquet``) are written there as they are done and reused when present, so a stopped
    study resumes where it was. Returns ``by_n`` and ``by_position`` (Wilson 95 % intervals, gain in
    pp), ``scored`` and ``summary``."""
    from pathlib import Path

    from tqdm.auto import tqdm

    from analysis.laundry.steering import steering_table
    from probes.runs import write_json, write_table

    if run_dir is not None:
        saved = Path(run_dir) / "config.json"
        if not saved.is_file():
            write_json({"model": handle.name, "config": config.to_json()}, saved)
        elif (was := json.loads(saved.read_text()).get("model")) != handle.name:
            raise InputError(f"--resume {run_dir}: that run steered {was}, not {handle.name}; pass {was}.")
    path = Path(run_dir) / "steer_fit.json" if run_dir is not None else None
    if path is not None and path.is_file():
        fitted = json.loads(path.read_text())
    else:
        fitted = fit_steering(handle, config, progress, found)
        if path is not None:
            write_json(fitted, path)
    test = _prompts(handle, config, "test", config.per_n)
    parts = []
    for n in tqdm(config.n_items, desc="steer held-out N", disable=not progress):
        part = Path(run_dir) / f"scored_n{n}.parquet" if run_dir is not None else None
        if part is not None and part.is_file():
            parts.append(pd.read_parquet(part))
            continue
        parts.append(steer_prompts(handle, config, fitted, test[test["n_items"] == n]))
        if part is not None:
            write_table(parts[-1], part)
    scored = pd.concat(parts, ignore_index=True)
    correct = {c: scored[c].tolist() for c in ("baseline", "rule", "oracle")}
    by_n = steering_table(scored, correct, ("n_items",))
    wide = by_n.pivot(index="n_items", columns="condition", values="accuracy")
    summary = {
        "movers": fitted["movers"], "suppressors": fitted["suppressors"], "layer": fitted["layer"],
        "basis_k": len(fitted["b"]), "dev_accuracy": fitted["dev_accuracy"], "test_per_n": config.per_n,
        "max_gain_pp": {c: float(by_n[by_n.condition == c]["gain_pp"].max()) for c in ("rule", "oracle")},
        "oracle_ge_rule_every_n": bool((wide["oracle"] >= wide["rule"]).all()),
        "oracle_ge_rule_every_prompt": bool((scored["margin_oracle"] >= scored["margin_rule"]).all()),
    }  # fmt: skip
    return {"by_n": by_n, "by_position": steering_table(scored, correct, ("n_items", "position")),
            "scored": scored, "summary": summary}  # fmt: skip
