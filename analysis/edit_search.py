"""Seeded, resumable search for rank-1 OV-component rescalings that raise Laundry List accuracy.

Candidates are sender components ``(layer, head, component)``: the distinct senders of the strongest
channels of a weight-only channel scan (top ``top_k`` by ``z`` among receivers in later layers, in the
given composition modes), plus the top components of explicitly chosen heads, plus explicit components.
Each ``(candidate, α)`` is applied with :class:`probes.edits.EditSpec` (undone afterwards) and scored on
the **dev** item split (item accuracy averaged over N, optionally weighted ``∝ N**n_weight_power``).
Every finished evaluation is appended to ``search.jsonl``, a :class:`probes.runs.JsonlLog` (one fsynced
line each), so a killed search loses at most the evaluation in flight; a restart reads the complete
records back (a torn last line is cut off before the next append) and skips every key already present.
The best few single edits (best α per component) are then combined greedily. The best edit overall is
reported on the **test** split: test items and the held-out template family
(:data:`analysis.tasks.laundry.LAUNDRY_TEMPLATE_SPLITS`, or your ``templates``), with accuracy by N, IOI
logit difference and held-out LM loss, before and after; it is saved as ``best_edit.json`` + ``.safetensors``.

Run directory layout: ``config.json`` (the :class:`EditSearchConfig`), ``candidates.json``,
``search.jsonl``, ``best_edit.json``/``.safetensors``, ``test_by_n.parquet``, ``report.json``, ``run.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import model_validator

from analysis.channels import ScanConfig, scan_channels
from analysis.tasks.evaluate import evaluate_ioi, evaluate_prompts, laundry_gain
from analysis.tasks.heldout import heldout_texts
from analysis.tasks.laundry import laundry_family_prompts
from probes.config import Config
from probes.edits import ComponentEdit, EditSpec, _check_edit
from probes.errors import InputError, check_index
from probes.lm_loss import lm_loss
from probes.runs import JsonlLog, write_json, write_sidecar, write_table
from probes.scaleout import RayConfig
from probes.weights import head_weights

__all__ = [
    "EditSearchConfig",
    "EditSearchResult",
    "check_resume",
    "saved_candidates",
    "dev_score",
    "edit_key",
    "evaluate_dev",
    "resolve_candidates",
    "run_edit_search",
    "scan_candidates",
    "side_effects",
]

Edit = tuple[int, int, int, float]


class EditSearchConfig(Config):
    """Everything that defines a search (saved as ``config.json``; a resumed run must match it)."""

    top_k: int = 24  # distinct sender components taken from the channel scan (0: none from the scan)
    alphas: tuple[float, ...] = (0.0, 0.5, 2.0, 3.0)  # rescaling factors tried for each candidate
    modes: str = "Q"  # composition modes of the scan used to rank senders (any of Q, K, V)
    min_receiver_layer: int | None = None  # receivers at or after this layer (None: 2/3 of the depth)
    max_sender_layer: int | None = None  # senders at or before this layer (None: any earlier layer)
    n_null: int = 200  # null directions per receiver for the scan's z-scores
    heads: tuple[tuple[int, int], ...] = ()  # also try the top `head_components` components of these heads
    head_components: int = 4  # components per chosen head (0 = largest singular value first)
    components: tuple[tuple[int, int, int], ...] = ()  # explicit (layer, head, component) candidates
    dev_n: tuple[int, ...] = (4, 5, 6, 7, 8, 9, 10)  # list lengths scored on the dev split
    dev_per_n: int = 10  # dev prompts per list length
    n_weight_power: float = 0.0  # dev score weights each N by N**power (0: plain mean over N)
    n_combine: int = 3  # best single edits (distinct components) tried in the greedy combination
    test_n: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10)  # list lengths of the final test report
    test_per_n: int = 30  # test prompts per list length
    ioi_prompts: int = 100  # IOI prompts for the logit-difference side effect (0: skip)
    lm_max_tokens: int = 256  # tokens per held-out paragraph for the LM-loss side effect
    batch_size: int = 16  # prompts per forward pass
    seed: int = 0  # seeds the prompts (dev, test, IOI) and the scan's null directions
    items: tuple[str, ...] = ()  # your items (--items FILE), split into dev/test halves; empty: built-in
    templates: tuple[str, ...] = ()  # your test templates (--templates FILE); empty: built-in

    @model_validator(mode="after")
    def _check(self) -> EditSearchConfig:
        if not self.alphas:
            raise ValueError("alphas is empty: give at least one rescaling factor, e.g. 0,0.5,2,3.")
        if any(a != a or a in (float("inf"), float("-inf")) for a in self.alphas):
            raise ValueError(f"alphas must be finite numbers, got {self.alphas}.")
        if 1.0 in self.alphas:
            raise ValueError("alpha = 1 is the unedited model (the baseline is always scored); remove it.")
        for name in ("dev_n", "test_n"):
            ns = getattr(self, name)
            if not ns or any(n < 2 for n in ns):
                raise ValueError(f"{name} must be non-empty list lengths >= 2, got {ns}.")
        for name in ("dev_per_n", "test_per_n", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("top_k", "head_components", "n_combine", "ioi_prompts"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if not set(self.modes.upper()) <= set("QKV") or not self.modes:
            raise ValueError(f"modes must be letters from 'QKV', got {self.modes!r}.")
        if self.top_k == 0 and not self.heads and not self.components:
            raise ValueError("no candidates: set top_k > 0, or give heads or components to try.")
        return self


# ------------------------------------------------------------------------------------------- candidates
def scan_candidates(
    df: pd.DataFrame, top_k: int, min_receiver_layer: int, max_sender_layer: int | None = None
) -> list[tuple[int, int, int]]:
    """Distinct sender components of the top channels by ``z`` (receivers at or after ``min_receiver_layer``)."""
    sel = df[df["receiver_layer"] >= min_receiver_layer]
    if max_sender_layer is not None:
        sel = sel[sel["sender_layer"] <= max_sender_layer]
    best = (
        sel.groupby(["sender_layer", "sender_head", "component"], observed=True)["z"]
        .max()
        .sort_values(ascending=False, kind="stable")
    )
    return [(int(a), int(b), int(c)) for a, b, c in best.index[:top_k]]


def resolve_candidates(handle, config: EditSearchConfig) -> list[tuple[int, int, int]]:
    """Scan candidates + chosen heads' top components + explicit components, deduplicated, in that order."""
    info = handle.info
    out: list[tuple[int, int, int]] = []
    if config.top_k:
        min_recv = config.min_receiver_layer
        min_recv = (
            (2 * info.n_layers) // 3 if min_recv is None else check_index(min_recv, info.n_layers, "layer")
        )
        weights = head_weights(handle, fold_ln=True)
        df = scan_channels(
            weights, ScanConfig(modes=config.modes.upper(), n_null=config.n_null, seed=config.seed)
        )
        out += scan_candidates(df, config.top_k, min_recv, config.max_sender_layer)
    for layer, head in config.heads:
        layer, head = check_index(layer, info.n_layers, "layer"), check_index(head, info.n_heads, "head")
        out += [(layer, head, c) for c in range(min(config.head_components, info.d_head))]
    out += config.components
    # validate every candidate once (clear errors for an unknown component)
    for layer, head, c in out:
        _check_edit(ComponentEdit(layer, head, c, 0.0), info.n_layers, info.n_heads, info.d_head)
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------------------------- scoring
def dev_score(by_n: pd.DataFrame, power: float = 0.0) -> float:
    """Item accuracy averaged over N, each N weighted by ``N**power``."""
    w = by_n["n_items"].astype(float) ** power
    return float((by_n["accuracy_items"] * w).sum() / w.sum())


def edit_key(edits: list[Edit] | tuple[Edit, ...]) -> str:
    """Order-independent key of a set of edits (``"baseline"`` for none)."""
    if not edits:
        return "baseline"
    return ";".join(f"{int(a)}.{int(b)}.{int(c)}x{float(d):g}" for a, b, c, d in sorted(edits))


def _laundry_by_n(handle, config: EditSearchConfig, split: str) -> pd.DataFrame:
    """Laundry accuracy by N on the ``dev`` or ``test`` split, at that split's N and prompts per N.

    Prompts come from :func:`laundry_family_prompts`: ``dev`` items with the dev template family (what
    the search scores), ``test`` items with the held-out test family, or your ``templates``, so the
    reported gains are measured on items and templates the search never saw."""
    ns, per_n = (config.dev_n, config.dev_per_n) if split == "dev" else (config.test_n, config.test_per_n)
    prompts = laundry_family_prompts(
        handle.tokenizer, split, list(ns), per_n, config.seed,
        list(config.items) or None, list(config.templates) or None,
    )  # fmt: skip
    return evaluate_prompts(handle, prompts, config.batch_size, progress=False).by_n


def evaluate_dev(handle, config: EditSearchConfig, edits: list[Edit] | tuple[Edit, ...] = ()) -> dict:
    """Dev-split score of ``handle`` with ``edits`` applied (then undone); a JSON-ready record."""
    t0 = time.time()
    spec = EditSpec.build(handle, list(edits)) if edits else None
    applied = spec.apply(handle) if spec else None
    try:
        by_n = _laundry_by_n(handle, config, "dev")
    finally:
        if applied:
            applied.undo()
    return {
        "key": edit_key(edits),
        "model": handle.name,
        "edits": [list(e) for e in edits],
        "score": dev_score(by_n, config.n_weight_power),
        "margin": float(by_n["mean_margin"].mean()),
        "acc_by_n": {
            str(int(n)): float(a) for n, a in zip(by_n["n_items"], by_n["accuracy_items"], strict=True)
        },
        "seconds": round(time.time() - t0, 2),
    }


def side_effects(handle, config: EditSearchConfig, texts: list[str] | None = None) -> dict:
    """Test-split accuracy by N, IOI mean logit difference and held-out LM loss of ``handle`` as it is now."""
    out = {
        "by_n": _laundry_by_n(handle, config, "test"),
        "lm_loss": lm_loss(handle, texts or heldout_texts(), max_tokens=config.lm_max_tokens),
        "ioi_logit_diff": None,
    }
    if config.ioi_prompts:
        _, summary = evaluate_ioi(handle, n_prompts=config.ioi_prompts, seed=config.seed, progress=False)
        out["ioi_logit_diff"] = float(summary.loc[summary["pattern"] == "all", "mean_logit_diff"].iloc[0])
    return out


# ------------------------------------------------------------------------------------------- search
@dataclass
class EditSearchResult:
    run_dir: Path
    baseline: dict  # dev record of the unedited model
    best: dict  # dev record of the best edit (== baseline when nothing helped)
    records: list[dict]  # every dev record, in file order
    spec_path: Path | None = None  # best_edit.json (None when no edit beat the baseline)
    report: dict = field(default_factory=dict)  # test-split before/after numbers
    test_by_n: pd.DataFrame | None = None  # n_items, accuracy_before, accuracy_after, gain_pp


def check_resume(run_dir: str | Path, model: str, config: Config, what: str = "a search") -> bool:
    """True when ``run_dir`` holds ``what`` (e.g. ``"a search"``) of ``model`` with ``config`` (a resume),
    False when it holds none; raises :class:`InputError` when it holds another model's or config's run.
    The saved config is parsed as ``type(config)``. Writes nothing."""
    cfg_path = Path(run_dir) / "config.json"
    if not cfg_path.exists():
        return False
    try:
        saved = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{cfg_path} is unreadable ({err}); start a new run directory.") from None
    if saved.get("model") != model:
        raise InputError(
            f"{run_dir} holds {what} for model {saved.get('model')!r}, not {model!r}; "
            "resume it with that model or start a new run directory."
        )
    cls = type(config)
    if cls.parse(saved["config"]) != config:
        raise InputError(
            f"{run_dir} was started with a different config; resume with the saved one "
            f"({cls.__name__}.parse(json.load(open('{cfg_path}'))['config'])) or use a new directory."
        )
    return True


def saved_candidates(run_dir: Path, make: Callable[[], list]) -> list[tuple[int, int, int]]:
    """``run_dir/candidates.json`` when a resumed run saved it, else ``make()``, saved there first (so a
    resume edits the same components even if the scan's code changed)."""
    path = run_dir / "candidates.json"
    if path.exists():
        return [tuple(c) for c in json.loads(path.read_text())]
    candidates = make()
    write_json(candidates, path)
    return candidates


def _best(records: list[dict]) -> dict:
    return max(records, key=lambda r: (r["score"], r["margin"], -len(r["edits"])))


def run_edit_search(
    handle,
    config: EditSearchConfig,
    run_dir: str | Path,
    *,
    progress: bool = True,
    report: bool = True,
    texts: list[str] | None = None,
    on_record: Callable[[dict], None] | None = None,
    ray: RayConfig | None = None,
) -> EditSearchResult:
    """Run (or resume) the search in ``run_dir``; see the module docstring for what is written there.

    ``ray``: evaluate the baseline and the single edits on Ray workers that each load ``handle.name``
    once (:mod:`probes.scaleout`); the records and the rest of the search are the same."""
    from tqdm.auto import tqdm

    started = time.time()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run_dir / "config.json"
    if not check_resume(run_dir, handle.name, config):
        write_json({"model": handle.name, "config": config.to_json()}, cfg_path)

    candidates = saved_candidates(run_dir, lambda: resolve_candidates(handle, config))

    log = JsonlLog(run_dir / "search.jsonl")
    records = log.read()
    done = {r["key"]: r for r in records}

    def evaluate(edits, stage: str) -> dict:
        key = edit_key(edits)
        if key in done:
            return done[key]
        rec = {"stage": stage, **evaluate_dev(handle, config, edits)}
        log.append(rec)
        done[key] = rec
        records.append(rec)
        if on_record:
            on_record(rec)
        return rec

    singles = [(layer, head, c, a) for layer, head, c in candidates for a in config.alphas]
    if ray is not None:
        _evaluate_on_ray(
            handle.name, config, [("baseline", [])] + [("single", [e]) for e in singles], log, ray
        )
        records = log.read()
        done.update({r["key"]: r for r in records})
    total = 1 + len(singles) + max(config.n_combine - 1, 0)
    bar = tqdm(total=total, desc=f"edit search {handle.name}", unit="eval", disable=not progress)
    baseline = evaluate([], "baseline")
    bar.update(1)
    for edit in singles:
        evaluate([edit], "single")
        bar.update(1)
        bar.set_postfix(best=f"{_best(records)['score']:.3f}", base=f"{baseline['score']:.3f}")

    # greedy combination of the best single edits (best α per component, beating the baseline)
    single_recs = [done[edit_key([e])] for e in singles]
    per_comp: dict[tuple, dict] = {}
    for r in sorted(single_recs, key=lambda r: (-r["score"], -r["margin"])):
        per_comp.setdefault(tuple(r["edits"][0][:3]), r)
    top = [r for r in per_comp.values() if r["score"] > baseline["score"]][: config.n_combine]
    if top:
        current = top[0]
        for r in top[1:]:
            trial = evaluate([tuple(e) for e in current["edits"]] + [tuple(r["edits"][0])], "combo")
            bar.update(1)
            if (trial["score"], trial["margin"]) > (current["score"], current["margin"]):
                current = trial
            bar.set_postfix(best=f"{_best(records)['score']:.3f}", base=f"{baseline['score']:.3f}")
    bar.close()

    best = _best([r for r in records if r["model"] == handle.name])
    result = EditSearchResult(run_dir=run_dir, baseline=baseline, best=best, records=records)
    if best["edits"] and best["score"] > baseline["score"]:
        spec = EditSpec.build(handle, [tuple(e) for e in best["edits"]], note=f"edit search {best['key']}")
        result.spec_path = spec.save(run_dir / "best_edit.json")
    if report and result.spec_path is not None:
        _final_report(handle, config, result, texts)
    write_sidecar(
        run_dir,
        command="edit search",
        config=config,
        model=handle.name,
        pack_sha256=handle.pack_sha256,
        seed=config.seed,
        started=started,
        extra={"n_records": len(records), "best": best["key"], "best_dev_score": best["score"]},
    )
    return result


def _search_worker(shared: tuple[str, EditSearchConfig]):
    """A Ray worker's state for the edit search: the model, loaded once."""
    from probes.loading import load_model

    model, config = shared
    handle = load_model(model, backend="hf", progress=False)
    return lambda task: {"stage": task[0], **evaluate_dev(handle, config, [tuple(e) for e in task[1]])}


def _evaluate_on_ray(
    model: str, config: EditSearchConfig, tasks: list, log: JsonlLog, ray: RayConfig
) -> None:
    from probes.scaleout import cluster, run_keyed

    keyed = [(edit_key([tuple(e) for e in edits]), (stage, edits)) for stage, edits in tasks]
    with cluster(ray):
        stats = run_keyed(keyed, _search_worker, log, ray, shared=(model, config), desc="edit search")
    if stats.failed:
        raise InputError(
            f"{len(stats.failed)} evaluations lost their worker more than {ray.max_retries} times; the "
            "rest are saved. Resume the search to retry them."
        )


def _final_report(handle, config: EditSearchConfig, result: EditSearchResult, texts) -> None:
    spec = EditSpec.load(result.spec_path)
    before = side_effects(handle, config, texts)
    with spec.apply(handle):
        after = side_effects(handle, config, texts)
    table = laundry_gain(before["by_n"], after["by_n"])
    write_table(table, result.run_dir / "test_by_n.parquet")
    top = table.loc[table["gain_pp"].idxmax()]
    rep = {
        "best_edit": result.best["edits"],
        "dev_score_before": result.baseline["score"],
        "dev_score_after": result.best["score"],
        "test_accuracy_by_n": {
            str(int(r.n_items)): [float(r.accuracy_before), float(r.accuracy_after)]
            for r in table.itertuples()
        },
        "max_gain_pp": float(top["gain_pp"]),
        "max_gain_n": int(top["n_items"]),
        "ioi_logit_diff": [before["ioi_logit_diff"], after["ioi_logit_diff"]],
        "lm_loss": [before["lm_loss"], after["lm_loss"]],
        "lm_loss_rel_change_pct": 100 * (after["lm_loss"] - before["lm_loss"]) / before["lm_loss"],
    }
    write_json(rep, result.run_dir / "report.json")
    result.report = rep
    result.test_by_n = table
