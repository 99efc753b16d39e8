"""Several campaigns side by side (one per method, same prompts and budget): ASR under each check and the
median steps / time to first success, each with a 95% percentile-bootstrap interval over prompts.

A failed attempt's time and steps count as infinite, so a median over all prompts is finite only when
at least half succeed (the successes-only median is given too).

>>> lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0], np.median, n_boot=200)
>>> 1.0 <= lo <= 2.5 <= hi <= 4.0
True
>>> bootstrap_ci([1.0, 1.0], np.mean)
(1.0, 1.0)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.rerouting import judge as judges
from analysis.rerouting.campaign import read_attempts
from analysis.rerouting.config import stored_config
from probes.errors import InputError

__all__ = ["REVIEW", "bootstrap_ci", "compare_campaigns", "method_row", "read_review"]

REVIEW = "review.json"  # a campaign's manual review: {"rule": str, "verdicts": {attempt key: bool}}


def bootstrap_ci(
    values, stat: Callable = np.median, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``stat`` over ``values`` (resampled with replacement)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise InputError("bootstrap_ci needs at least one value.")
    rng = np.random.default_rng(seed)
    boots = np.array([stat(x[rng.integers(0, x.size, x.size)]) for _ in range(n_boot)])
    a = (1 - level) / 2
    return float(np.quantile(boots, a, method="lower")), float(np.quantile(boots, 1 - a, method="higher"))


def read_review(run_dir: str | Path) -> dict[str, bool] | None:
    """The manual verdicts of ``run_dir/review.json`` (attempt key -> complies with concrete content)."""
    path = Path(run_dir) / REVIEW
    return json.loads(path.read_text())["verdicts"] if path.is_file() else None


def _content(rec: dict) -> bool:
    return (
        bool(rec["success"])
        and isinstance(rec.get("response"), str)
        and (judges.non_answer_reason(rec["response"]) is None)
    )


def _fmt(v: float) -> float | None:
    return None if math.isinf(v) or math.isnan(v) else round(v, 3)


def _median_ci(values: list[float], prefix: str) -> dict:
    med = float(np.median(values))
    lo, hi = bootstrap_ci(values)
    return {prefix: _fmt(med), f"{prefix}_lo": _fmt(lo), f"{prefix}_hi": _fmt(hi)}


def method_row(
    records: list[dict], review: dict[str, bool] | None = None, search_width: int | None = None
) -> dict:
    """ASR (in-loop check, + content, manual review) with 95% intervals, and medians of steps and time to
    first success (failures = ∞) with 95% intervals, for one campaign's attempts; with the campaign's
    ``search_width``, candidates scored per second of search (an upper bound: filtered duplicates and
    non-retokenising candidates are counted as scored)."""
    ok = np.array([bool(r["success"]) for r in records], dtype=float)
    content = np.array([_content(r) for r in records], dtype=float)
    row: dict = {"method": records[0]["method"], "model": records[0]["model"], "attempts": len(records)}
    for name, x in (("asr", ok), ("asr_content", content)):
        row[name] = float(x.mean())
        row[f"{name}_lo"], row[f"{name}_hi"] = bootstrap_ci(x, np.mean)
    if review is not None:
        missing = [r["key"] for r in records if r["key"] not in review]
        if missing:
            raise InputError(
                f"The manual review lacks {len(missing)} attempts (e.g. {missing[0]}): review them all."
            )
        x = np.array([bool(r["success"]) and review[r["key"]] for r in records], dtype=float)
        row["asr_manual"] = float(x.mean())
        row["asr_manual_lo"], row["asr_manual_hi"] = bootstrap_ci(x, np.mean)
    inf = math.inf
    steps = [
        r["first_success_step"] if r["success"] and r["first_success_step"] is not None else inf
        for r in records
    ]
    secs = [r["time_to_first_success_s"] if r["success"] else inf for r in records]
    attack = [
        r["attack_s_to_first_success"]
        if r["success"] and r.get("attack_s_to_first_success") is not None
        else inf
        for r in records
    ]
    row |= _median_ci(steps, "median_steps")
    row |= _median_ci(secs, "median_s")
    row |= _median_ci(attack, "median_attack_s")
    done = [s for s in secs if not math.isinf(s)]
    row["median_s_successes"] = float(np.median(done)) if done else None
    row["s_per_success"] = float(sum(r["total_s"] for r in records) / ok.sum()) if ok.sum() else None
    if search_width is not None:  # candidates scored per second of search (in-loop judging excluded)
        search_s = sum(r["optimise_s"] - r["judge_s"] for r in records)
        row["candidates_per_s"] = sum(r["steps"] for r in records) * search_width / search_s
    return row


def compare_campaigns(run_dirs: list[str | Path], common: bool = False) -> pd.DataFrame:
    """One :func:`method_row` per campaign; refuses campaigns that attacked different prompt sets, or with
    ``common`` keeps only the attempts on prompts every campaign attacked (campaigns stopped part-way)."""
    runs = []
    for d in run_dirs:
        recs = read_attempts(d)
        if not recs:
            raise InputError(f"No attempts in {d}: run the campaign first.")
        runs.append((d, recs))
    sets = [{r["prompt"] for r in recs} for _, recs in runs]
    shared = set.intersection(*sets)
    if common:
        if not shared:
            raise InputError("The campaigns share no attacked prompt: nothing to compare.")
        runs = [(d, [r for r in recs if r["prompt"] in shared]) for d, recs in runs]
    elif any(s != sets[0] for s in sets):
        raise InputError(
            "The campaigns attacked different prompts: compare campaigns of one prompt set only, or "
            "compare the prompts they share (common=True, --common)."
        )
    rows = []
    for d, recs in runs:
        review = read_review(d)
        if review is not None:
            review = {k: v for k, v in review.items() if k in {r["key"] for r in recs}}
        width = stored_config(d).optimiser.search_width
        rows.append({**method_row(recs, review, width), "run_dir": str(d)})
    return pd.DataFrame(rows)
