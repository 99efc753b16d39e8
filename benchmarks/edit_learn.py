"""Learned edits (gradient descent on per-component scales) vs the α-grid edit search, in one process.

    python benchmarks/edit_learn.py [--model smollm2-135m-instruct] [--top-k 8] [--alphas 0,3]
        [--dev-per-n 5] [--steps 40] [--lr 0.1] [--l1 0.3] [--check-every 5] [--threshold 10]
        [--learn-layers-from L]

Both methods get the grid search's candidate components (its ``candidates.json``: the channel scan's
top ``--top-k`` senders); with ``--learn-layers-from L`` the learned edit also gets every OV component
of every head in layers >= L (thousands: what a grid cannot try). Both are judged on the same dev prompts (``evaluate_dev`` of
:mod:`analysis.edit_search`: dev items, dev N = 4..10, ``--dev-per-n`` prompts per N). An edit
"has ≥ T points" when its dev item accuracy beats the unedited model's by at least ``--threshold``
percentage points at some N.

* α grid: :func:`analysis.edit_search.run_edit_search` (singles then greedy combination, no test
  report); time from its start to the record that ends up best, and to its first record with ≥ T points.
* learned: :func:`analysis.edits_learned.learn.learn_scales` on training prompts of another seed (no
  LM penalty); every ``--check-every`` steps the scales snapped at ``tol`` are scored on the dev prompts
  (with the hook, which equals the weight edit: ``tests/analysis/test_edits_learned.py``); time to the
  first check with ≥ T points (checks included), and seconds per optimisation step (checks excluded).

Prints both timings, seconds per grid evaluation vs per optimisation step, and the ratios. Writes
``<out>/bench-edit-learn/<stamp>-<hash>/summary.json`` and ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def max_gain_pp(rec: dict, base: dict) -> float:
    """Largest dev accuracy gain over N (pp) of an ``evaluate_dev`` record over the baseline's."""
    return max(100 * (rec["acc_by_n"][n] - base["acc_by_n"][n]) for n in base["acc_by_n"])


def grid(handle, cfg, run_dir, threshold: float) -> dict:
    """Run the α-grid search; the times (from its start) to its best record and to its first ≥ T record."""
    from analysis.edit_search import run_edit_search

    stamps: list[tuple[float, dict]] = []
    t0 = time.perf_counter()
    res = run_edit_search(
        handle,
        cfg,
        run_dir,
        progress=False,
        report=False,
        on_record=lambda r: stamps.append((time.perf_counter(), r)),
    )
    total = time.perf_counter() - t0
    base = res.baseline
    t_best = next(t for t, r in stamps if r["key"] == res.best["key"]) - t0
    first = next(((t, r) for t, r in stamps if max_gain_pp(r, base) >= threshold), None)
    return {
        "baseline": base,
        "best": res.best["key"],
        "best_max_gain_pp": max_gain_pp(res.best, base),
        "seconds_to_best": t_best,
        "seconds_to_threshold": None if first is None else first[0] - t0,
        "first_threshold_edit": None if first is None else first[1]["key"],
        "n_evaluations": len(stamps),
        "seconds_per_evaluation": total / len(stamps),
        "seconds_total": total,
    }


def learned(handle, search_cfg, candidates, base: dict, args) -> dict:
    """Learn scales on the same candidates; check the dev gain every ``args.check_every`` steps."""
    from analysis.edit_search import evaluate_dev
    from analysis.edits_learned import ComponentScales, EditLearnConfig
    from analysis.edits_learned.data import LaundryBatch, prompt_sets
    from analysis.edits_learned.learn import learn_scales

    if args.learn_layers_from is not None:
        info = handle.info
        more = [(la, h, c) for la in range(args.learn_layers_from, info.n_layers) for h in range(info.n_heads)
                for c in range(info.d_head)]  # fmt: skip
        candidates = list(dict.fromkeys([*candidates, *more]))
    cfg = EditLearnConfig(
        top_k=0, components=tuple(candidates), steps=args.steps, lr=args.lr, batch=args.batch,
        dev_n=search_cfg.dev_n, dev_per_n=args.train_per_n, seed=search_cfg.seed + 1,
    )  # fmt: skip
    t0 = time.perf_counter()
    cs = ComponentScales(handle, candidates)
    train = LaundryBatch.from_prompts(handle, prompt_sets(handle, cfg)["train"])
    checks: list[dict] = []

    def on_step(step, scales, log) -> bool:
        if (step + 1) % args.check_every:
            return False
        cs.set(cs.snapped(scales, cfg.tol))  # score the edit as it would be saved
        with torch.no_grad():
            rec = evaluate_dev(handle, search_cfg)
        rec.update(step=step + 1, seconds=time.perf_counter() - t0, n_edited=len(cs.edited(scales, cfg.tol)))
        rec["max_gain_pp"] = max_gain_pp(rec, base)
        checks.append(rec)
        print(
            f"  step {step + 1}: max dev gain {rec['max_gain_pp']:+.1f} pp, {rec['n_edited']} edited",
            flush=True,
        )
        return rec["max_gain_pp"] >= args.threshold

    _, log = learn_scales(cs, train, None, cfg, args.l1, 0.0, on_step=on_step)
    hit = next((c for c in checks if c["max_gain_pp"] >= args.threshold), None)
    return {
        "n_candidates": len(candidates),
        "seconds_per_step": log["seconds_per_step"],
        "steps_run": len(log["task_loss"]),
        "seconds_to_threshold": None if hit is None else hit["seconds"],
        "steps_to_threshold": None if hit is None else hit["step"],
        "best_check_max_gain_pp": max((c["max_gain_pp"] for c in checks), default=None),
        "checks": [
            {k: c[k] for k in ("step", "seconds", "n_edited", "max_gain_pp", "acc_by_n")} for c in checks
        ],
    }


def _ratio(a, b) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--top-k", type=int, default=8, help="candidate components from the channel scan")
    ap.add_argument("--alphas", default="0,3", help="α grid of the search")
    ap.add_argument(
        "--dev-per-n", type=int, default=5, help="dev prompts per N (both methods are judged on them)"
    )
    ap.add_argument("--train-per-n", type=int, default=20, help="training prompts per N of the learned edit")
    ap.add_argument("--steps", type=int, default=40, help="most optimisation steps of the learned edit")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--l1", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--check-every", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=10.0, help="points of dev gain at some N")
    ap.add_argument(
        "--learn-layers-from", type=int, default=None, help="learned: also all components of layers >= L"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="runs root (default ./runs)")
    args = ap.parse_args()
    for name in ("top_k", "dev_per_n", "train_per_n", "steps", "batch", "check_every", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")

    from analysis.edit_search import EditSearchConfig
    from probes.loading import load_model
    from probes.runs import open_run, write_json

    torch.set_num_threads(args.threads)
    alphas = tuple(float(a) for a in args.alphas.split(","))
    search_cfg = EditSearchConfig(top_k=args.top_k, alphas=alphas, dev_per_n=args.dev_per_n, n_combine=2)
    with open_run("bench edit learn", {**vars(args)}, root=args.out, model=args.model) as run:
        handle = load_model(args.model, backend="hf", progress=False)
        print(f"{handle.name}, torch threads {torch.get_num_threads()}, run {run.dir}", flush=True)
        g = grid(handle, search_cfg, run.dir / "grid", args.threshold)
        candidates = [tuple(c) for c in json.loads((run.dir / "grid" / "candidates.json").read_text())]
        print(
            f"α grid ({len(candidates)} components x {len(alphas)} α, {g['n_evaluations']} evaluations): best "
            f"{g['best']} ({g['best_max_gain_pp']:+.1f} pp) after {g['seconds_to_best']:.0f} s; first >= "
            f"{args.threshold:g} pp: {g['seconds_to_threshold'] and round(g['seconds_to_threshold'])} s; "
            f"{g['seconds_per_evaluation']:.1f} s per evaluation",
            flush=True,
        )
        lr = learned(handle, search_cfg, candidates, g["baseline"], args)
        print(
            f"learned ({lr['n_candidates']} components): {lr['seconds_per_step']:.2f} s per step; first >= {args.threshold:g} pp after "
            f"{lr['steps_to_threshold']} steps, {lr['seconds_to_threshold'] and round(lr['seconds_to_threshold'])} s "
            f"(best check {lr['best_check_max_gain_pp']:+.1f} pp)"
        )
        print(
            f"ratio learned step / grid evaluation: {_ratio(lr['seconds_per_step'], g['seconds_per_evaluation'])}"
        )
        print(
            f"ratio learned time to >= T / grid time to its best: {_ratio(lr['seconds_to_threshold'], g['seconds_to_best'])}"
        )
        print(
            f"ratio learned time to >= T / grid time to >= T: "
            f"{_ratio(lr['seconds_to_threshold'], g['seconds_to_threshold'])}"
        )
        g.pop("baseline")
        write_json(
            {"model": handle.name, "args": vars(args), "grid": g, "learned": lr}, run.dir / "summary.json"
        )


if __name__ == "__main__":
    main()
