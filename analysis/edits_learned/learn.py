"""Learn sparse OV-component (and movers' QK-component) scales by gradient descent; sweep the penalties
into a Pareto front.

For each ``(l1, lm_weight)`` of the sweep, scales ``s`` (one per candidate component, start 1) minimise::

    CE(answer among the list items | dev prompt) + lm_weight · max(0, ΔLM / LM)      (Adam, lr)

on dev items with dev templates, where ``ΔLM / LM`` is the relative increase of the next-token loss on
the *fit* half of the held-out paragraphs; after every Adam step the L1 pull towards "no change" is a
proximal step, ``s − 1 ← sign(s − 1) max(|s − 1| − lr · l1, 0)`` (so unused components return to
exactly 1), then ``s`` is clipped to ``[scale_min, scale_max]``. Adam's steps are about ``lr`` in size
whatever the gradient's scale, so ``l1`` is roughly a consistency threshold: a component moves only while
its gradient's running mean beats ``l1`` times its running RMS (``l1 >= 1`` edits almost nothing).
Components whose scale moved by more than ``tol`` form the point's :class:`probes.edits.EditSpec` (the
others are dropped, i.e. snapped to 1); it is applied **as a weight edit** and measured on test
items with the test template family (accuracy by N with paired 95% intervals), on the *report* half of the
held-out text and on IOI. Points are appended to ``front.jsonl`` as they finish; a rerun skips them.

Run directory: ``config.json``, ``candidates.json`` (OV), ``qk_candidates.json`` (QK: ``qk_heads`` and the
movers located on the dev-eval prompts, ``qk_movers``), ``baseline.json``, ``front.jsonl``,
``specs/<key>.json`` + ``.safetensors``, ``front.parquet`` (one row per point, ``pareto`` flag),
``test_by_n.parquet`` (per point and N), ``report.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from pydantic import Field, model_validator

from analysis.edit_search import EditSearchConfig, check_resume, resolve_candidates, saved_candidates
from analysis.edits_learned.data import (
    LaundryBatch,
    TextBatch,
    by_n_accuracy,
    gain_by_n,
    measure,
    prompt_sets,
)
from analysis.edits_learned.scales import ComponentScales
from probes.config import Config
from probes.errors import InputError
from probes.runs import JsonlLog, write_json, write_table

__all__ = ["LEARN_RUN", "EditLearnConfig", "learn_scales", "pareto_flags", "point_key", "run_edit_learn"]

LEARN_RUN = "an edit-learn sweep"  # what check_resume calls a run of this module


class EditLearnConfig(Config):
    """Everything that defines a learned-edit sweep (saved as ``config.json``; a resume must match it)."""

    top_k: int = 24  # sender components from the channel scan (as `edit search`; 0: none)
    modes: str = "Q"  # composition modes of the scan used to rank senders
    min_receiver_layer: int | None = None  # scan receivers at or after this layer (None: 2/3 depth)
    n_null: int = 200  # null directions per receiver for the scan's z-scores
    heads: tuple[tuple[int, int], ...] = ()  # also every component of these heads
    components: tuple[tuple[int, int, int], ...] = ((21, 5, 2), (20, 1, 3))  # explicit candidates
    layers_from: int | None = None  # also every component of every head in layers >= this
    qk_heads: tuple[tuple[int, int], ...] = ()  # also every QK component of these (mover) heads
    qk_movers: int = Field(0, ge=0)  # also every QK component of the top movers located on dev prompts
    l1: tuple[float, ...] = (0.1, 0.3)  # proximal L1 strengths swept (per step: lr * l1 towards 1)
    lm_weight: tuple[float, ...] = (0.0, 10.0)  # weights of the relative LM-loss increase swept
    steps: int = 60  # Adam steps per point
    lr: float = 0.05  # Adam learning rate on the scales
    batch: int = 16  # dev prompts per step
    lm_batch: int = 2  # held-out paragraphs per step for the LM penalty
    tol: float = 0.02  # a component counts as edited when |scale - 1| > tol
    scale_min: float = -2.0  # scales are clipped to [scale_min, scale_max] (the dashboard's alpha range)
    scale_max: float = 4.0
    dev_n: tuple[int, ...] = (4, 5, 6, 7, 8, 9, 10)  # list lengths of the dev (training) prompts
    dev_per_n: int = 40  # training prompts per list length
    dev_eval_per_n: int = 20  # dev prompts per N (another seed) for each point's dev accuracy
    test_n: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10)  # list lengths of the test report
    test_per_n: int = 40  # test prompts per list length
    ioi_prompts: int = 100  # IOI prompts for the logit-difference side effect (0: skip)
    lm_max_tokens: int = 128  # tokens per held-out paragraph (penalty and report)
    batch_size: int = 16  # prompts per forward pass when measuring
    items: tuple[str, ...] = ()  # your items (--items FILE); empty: the built-in pool
    templates: tuple[str, ...] = ()  # your test template family (--templates FILE); empty: built-in
    seed: int = 0  # prompts, batches and the scan's null

    @model_validator(mode="after")
    def _check(self) -> EditLearnConfig:
        for name in ("l1", "lm_weight"):
            vals = getattr(self, name)
            if not vals or any(not (v >= 0 and v < float("inf")) for v in vals):
                raise ValueError(f"{name} must be finite numbers >= 0, got {vals}.")
        for name in ("steps", "batch", "lm_batch", "dev_per_n", "dev_eval_per_n", "test_per_n", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        if not self.tol > 0:
            raise ValueError(f"tol must be > 0, got {self.tol}.")
        if not self.scale_min < 1 < self.scale_max:
            raise ValueError(f"need scale_min < 1 < scale_max, got {self.scale_min}, {self.scale_max}.")
        for name in ("dev_n", "test_n"):
            ns = getattr(self, name)
            if not ns or any(n < 2 for n in ns):
                raise ValueError(f"{name} must be non-empty list lengths >= 2, got {ns}.")
        if (
            self.top_k == 0
            and not (self.heads or self.components or self.qk_heads or self.qk_movers)
            and self.layers_from is None
        ):
            raise ValueError(
                "no candidates: set top_k > 0, or give heads, components, qk_heads, qk_movers or layers_from."
            )
        return self


def point_key(l1: float, lm_weight: float) -> str:
    """The name of one sweep point (also its spec's file stem)."""
    return f"l1={l1:g}_lm={lm_weight:g}"


def candidates_for(handle, config: EditLearnConfig) -> list[tuple[int, int, int]]:
    """Scan senders + chosen heads' components + explicit components + every component of late layers."""
    info = handle.info
    out: list[tuple[int, int, int]] = []
    if config.top_k or config.components:
        search = EditSearchConfig(
            top_k=config.top_k,
            modes=config.modes,
            min_receiver_layer=config.min_receiver_layer,
            n_null=config.n_null,
            components=config.components,
            seed=config.seed,
        )
        out += resolve_candidates(handle, search)
    heads = list(config.heads)
    if config.layers_from is not None:
        if not 0 <= config.layers_from < info.n_layers:
            raise InputError(
                f"--layers-from {config.layers_from} is out of range: {handle.name} has layers 0..{info.n_layers - 1}."
            )
        heads += [(la, h) for la in range(config.layers_from, info.n_layers) for h in range(info.n_heads)]
    out += [(la, h, c) for la, h in heads for c in range(info.d_head)]
    return list(dict.fromkeys(out))


def located_movers(handle, prompts: pd.DataFrame, n_movers: int) -> list[tuple[int, int]]:
    """The ``n_movers`` mover heads of :func:`analysis.laundry.channel.locate_channel` on ``prompts``."""
    from analysis.laundry.channel import head_roles, laundry_batch, locate_channel, record_end

    batch = laundry_batch(handle, prompts)
    roles = head_roles(handle, batch, record_end(handle, batch))
    return locate_channel(roles, n_movers=n_movers, n_suppressors=1)["movers"]


def qk_candidates_for(
    handle, config: EditLearnConfig, prompts: pd.DataFrame | None = None
) -> list[tuple[int, int, int]]:
    """Every QK component ``(layer, head, component)`` of ``config.qk_heads`` and of the
    ``config.qk_movers`` movers located on ``prompts`` (dev prompts)."""
    info = handle.info
    heads = list(config.qk_heads)
    if config.qk_movers:
        if prompts is None:
            raise InputError("qk_movers needs the dev prompts to locate the movers on.")
        heads += located_movers(handle, prompts, config.qk_movers)
    for layer, head in config.qk_heads:
        if not (0 <= layer < info.n_layers and 0 <= head < info.n_heads):
            raise InputError(
                f"--qk-heads {layer}.{head} is out of range: {handle.name} has layers 0..{info.n_layers - 1} "
                f"and heads 0..{info.n_heads - 1}."
            )
    return list(dict.fromkeys((la, h, c) for la, h in heads for c in range(info.d_head)))


def _prox(scales: torch.Tensor, threshold: float, lo: float, hi: float) -> None:
    """In place: soft-threshold ``scales − 1`` by ``threshold``, then clip to ``[lo, hi]``."""
    with torch.no_grad():
        d = scales - 1
        scales.copy_(1 + d.sign() * (d.abs() - threshold).clamp(min=0))
        scales.clamp_(lo, hi)


def learn_scales(
    cs: ComponentScales,
    train: LaundryBatch,
    texts: TextBatch | None,
    config: EditLearnConfig,
    l1: float,
    lm_weight: float,
    *,
    on_step: Callable[[int, torch.Tensor, dict], bool | None] | None = None,
) -> tuple[torch.Tensor, dict]:
    """One sweep point: the learned scales and a log (task loss and LM term per step, seconds per step).

    ``on_step(step, scales, log)`` runs after each step with the hooks still attached (call ``cs.set``
    before evaluating the model with other scales); returning True stops early. Its time is not counted
    in ``seconds_per_step``."""
    handle = cs.handle
    gen = torch.Generator().manual_seed(config.seed)
    scales = cs.ones()
    opt = torch.optim.Adam([scales], lr=config.lr)
    frozen = [p for p in handle.hf.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    log: dict = {"task_loss": [], "lm_term": []}
    busy = 0.0
    try:
        with cs.attached():
            for step in range(config.steps):
                t0 = time.perf_counter()
                cs.set(scales)
                rows = torch.randperm(len(train), generator=gen)[: config.batch]
                loss = train.loss(handle, rows)
                log["task_loss"].append(loss.item())
                if lm_weight and texts is not None:
                    trows = torch.arange(step * config.lm_batch, (step + 1) * config.lm_batch) % len(
                        texts.lengths
                    )
                    rel = texts.relative_increase(handle, trows)
                    log["lm_term"].append(rel.item())
                    loss = loss + lm_weight * rel.clamp(min=0)
                opt.zero_grad()
                loss.backward()
                opt.step()
                _prox(scales, config.lr * l1, config.scale_min, config.scale_max)
                busy += time.perf_counter() - t0
                if on_step and on_step(step, scales, log):
                    break
    finally:
        for p in frozen:
            p.requires_grad_(True)
    log["seconds_per_step"] = busy / len(log["task_loss"])
    return scales.detach(), log


def pareto_flags(front: pd.DataFrame) -> list[bool]:
    """Non-dominated points: higher ``mean_gain_pp``, lower ``lm_loss_rel_change_pct`` and ``n_edited``.

    >>> df = pd.DataFrame({"mean_gain_pp": [5.0, 3.0, 5.0], "lm_loss_rel_change_pct": [1.0, 2.0, 1.0],
    ...                    "n_edited": [2, 3, 4]})
    >>> pareto_flags(df)
    [True, False, False]
    """
    vals = list(zip(-front["mean_gain_pp"], front["lm_loss_rel_change_pct"], front["n_edited"], strict=True))

    def dominated(i: int) -> bool:
        return any(all(a <= b for a, b in zip(o, vals[i], strict=True)) and o != vals[i] for o in vals)

    return [not dominated(i) for i in range(len(vals))]


def _point_record(key, l1, lm_weight, spec_path, spec, log, base: dict, after: dict, config, handle) -> dict:
    """The ``front.jsonl`` record of one point: test gain by N (paired 95% intervals), LM loss, IOI."""
    table = gain_by_n(base["test"], after["test"], config.seed)
    top = table.loc[table["gain_pp"].idxmax()]
    lm0, lm1 = base["lm_loss"], after["lm_loss"]
    rec = {
        "key": key,
        "model": handle.name,
        "l1": l1,
        "lm_weight": lm_weight,
        "n_edited": len(spec.edits) if spec else 0,
        "edits": [[e.layer, e.head, e.component, e.alpha, e.kind] for e in spec.edits] if spec else [],
        "spec": str(spec_path.name) if spec_path else None,
        "dev_acc_by_n": by_n_accuracy(after["dev"]),
        "dev_mean_gain_pp": 100
        * float(after["dev"]["correct_items"].mean() - base["dev"]["correct_items"].mean()),
        "test_acc_by_n": {
            str(int(r.n_items)): [r.accuracy_before, r.accuracy_after] for r in table.itertuples()
        },
        "mean_gain_pp": float(table["gain_pp"].mean()),
        "max_gain_pp": float(top["gain_pp"]),
        "max_gain_n": int(top["n_items"]),
        "max_gain_ci": [float(top["gain_lo"]), float(top["gain_hi"])],
        "lm_loss": [lm0, lm1],
        "lm_loss_rel_change_pct": 100 * (lm1 - lm0) / lm0,
        "ioi_logit_diff": [base["ioi_logit_diff"], after["ioi_logit_diff"]],
        "final_task_loss": log["task_loss"][-1],
        "seconds_per_step": log["seconds_per_step"],
    }
    return rec


def run_edit_learn(
    handle,
    config: EditLearnConfig,
    run_dir: str | Path,
    *,
    progress: bool = True,
    on_point: Callable[[dict], None] | None = None,
) -> dict:
    """Run (or resume) the sweep in ``run_dir`` (module docstring); returns ``report.json``'s content."""
    from rich.progress import Progress

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not check_resume(run_dir, handle.name, config, LEARN_RUN):
        write_json({"model": handle.name, "config": config.to_json()}, run_dir / "config.json")
    candidates = saved_candidates(run_dir, lambda: candidates_for(handle, config))
    sets = prompt_sets(handle, config)
    base = measure(handle, sets, config)
    write_json(
        {
            "dev_acc_by_n": by_n_accuracy(base["dev"]),
            "test_acc_by_n": by_n_accuracy(base["test"]),
            "lm_loss": base["lm_loss"],
            "ioi_logit_diff": base["ioi_logit_diff"],
        },
        run_dir / "baseline.json",
    )
    qk_path = run_dir / "qk_candidates.json"  # saved, so a resume learns the same (located) components
    if qk_path.exists():
        qk = [tuple(c) for c in json.loads(qk_path.read_text())]
    else:
        qk = qk_candidates_for(handle, config, sets["dev_eval"])
        write_json(qk, qk_path)
    cs = ComponentScales(handle, candidates, qk=qk)
    train = LaundryBatch.from_prompts(handle, sets["train"])
    texts = TextBatch.from_texts(handle, sets["fit_texts"], config.lm_max_tokens)
    log = JsonlLog(run_dir / "front.jsonl")
    done = {r["key"]: r for r in log.read()}
    grid = [(a, b) for a in config.l1 for b in config.lm_weight]
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"edit learn {handle.name}", total=len(grid) * config.steps)
        for l1, lm_weight in grid:
            key = point_key(l1, lm_weight)
            if key in done:
                bar.advance(task, config.steps)
                continue
            scales, tlog = learn_scales(
                cs, train, texts, config, l1, lm_weight, on_step=lambda *_: bar.advance(task)
            )
            spec = cs.to_spec(scales, config.tol, note=f"edit learn {key}")
            spec_path = spec.save(run_dir / "specs" / f"{key}.json") if spec else None
            if spec:
                with spec.apply(handle):
                    after = measure(handle, sets, config)
            else:
                after = base
            rec = _point_record(key, l1, lm_weight, spec_path, spec, tlog, base, after, config, handle)
            log.append(rec)
            done[key] = rec
            if on_point:
                on_point(rec)
    return _summarise(run_dir, handle, config, done, qk)


def _summarise(run_dir: Path, handle, config: EditLearnConfig, done: dict, qk: list) -> dict:
    """``front.parquet``, ``test_by_n.parquet`` and ``report.json`` from every finished point."""
    recs = [done[point_key(a, b)] for a in config.l1 for b in config.lm_weight if point_key(a, b) in done]
    cols = ["key", "l1", "lm_weight", "n_edited", "mean_gain_pp", "max_gain_pp", "max_gain_n",
            "lm_loss_rel_change_pct", "dev_mean_gain_pp", "spec"]  # fmt: skip
    front = pd.DataFrame([{c: r[c] for c in cols} for r in recs], columns=cols)
    front["max_gain_lo"] = [r["max_gain_ci"][0] for r in recs]
    front["max_gain_hi"] = [r["max_gain_ci"][1] for r in recs]
    front["ioi_before"] = [r["ioi_logit_diff"][0] for r in recs]
    front["ioi_after"] = [r["ioi_logit_diff"][1] for r in recs]
    front["pareto"] = pareto_flags(front) if len(front) else []
    write_table(front, run_dir / "front.parquet")
    long = []
    for r in recs:
        for n, (a0, a1) in r["test_acc_by_n"].items():
            long.append({"key": r["key"], "n_items": int(n), "accuracy_before": a0, "accuracy_after": a1})
    write_table(pd.DataFrame(long), run_dir / "test_by_n.parquet")
    ok = front[front["lm_loss_rel_change_pct"] < 2.0]
    best = ok.loc[ok["max_gain_pp"].idxmax()] if len(ok) else None
    rep = {
        "model": handle.name,
        "n_candidates": len(json.loads((run_dir / "candidates.json").read_text())),
        "n_qk_candidates": len(qk),
        "qk_heads": sorted({(la, h) for la, h, _ in qk}),
        "n_points": len(front),
        "test_prompts_per_n": config.test_per_n,
        "best_under_2pct_lm": None if best is None else best.to_dict(),
        "reaches_20pp": bool(best is not None and best["max_gain_pp"] >= 20),
    }
    write_json(rep, run_dir / "report.json")
    rep["front"] = front
    return rep
