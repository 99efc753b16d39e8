"""Run the IOI and Laundry List tasks on a model and score them (one forward pass per prompt)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.tasks.ioi import ioi_prompts
from analysis.tasks.laundry import laundry_list_prompts
from analysis.tasks.scoring import accuracy_by_n, accuracy_by_position, ioi_summary, score_ioi, score_laundry
from probes.logits import next_token_logits

__all__ = ["LaundryResult", "evaluate_ioi", "evaluate_laundry", "evaluate_prompts", "laundry_gain"]


@dataclass
class LaundryResult:
    """Per-prompt scores and the two summary tables (by N, by N × answer position)."""

    scored: pd.DataFrame
    by_n: pd.DataFrame
    by_position: pd.DataFrame


def evaluate_laundry(
    handle,
    n_items=range(2, 11),
    n_per_n: int = 40,
    split: str = "test",
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
    items=None,
    templates=None,
) -> LaundryResult:
    """Laundry List accuracy of ``handle`` (among the list's items and over the full vocabulary).

    ``items`` (your pool, split into dev/test halves) and ``templates`` replace the built-in ones."""
    prompts = laundry_list_prompts(
        handle.tokenizer,
        n_items=n_items,
        n_per_n=n_per_n,
        split=split,
        seed=seed,
        templates=templates,
        items=items,
    )
    return evaluate_prompts(handle, prompts, batch_size, progress)


def evaluate_prompts(
    handle, prompts: pd.DataFrame, batch_size: int = 16, progress: bool = True
) -> LaundryResult:
    """Score ready-made Laundry List ``prompts`` (e.g. :func:`analysis.tasks.laundry.heldout_laundry_prompts`)."""
    logits = next_token_logits(handle, list(prompts["prompt"]), batch_size=batch_size, progress=progress)
    scored = score_laundry(logits.numpy(), prompts)
    by_n = accuracy_by_n(scored)
    by_n["chance_items"] = 1.0 / by_n["n_items"]
    return LaundryResult(scored, by_n, accuracy_by_position(scored))


def evaluate_ioi(
    handle, n_prompts: int = 100, seed: int = 0, batch_size: int = 16, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """IOI per-prompt scores and a summary (logit difference IO − S, accuracy) per pattern and overall."""
    prompts = ioi_prompts(handle.tokenizer, n_prompts=n_prompts, seed=seed)
    logits = next_token_logits(handle, list(prompts["prompt"]), batch_size=batch_size, progress=progress)
    scored = score_ioi(logits.numpy(), prompts)
    summary = pd.concat([ioi_summary(scored), ioi_summary(scored.assign(pattern="all"))], ignore_index=True)
    return scored, summary


def laundry_gain(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Two :func:`evaluate_laundry` ``by_n`` tables (before / after an edit, same N) side by side.

    Columns: ``n_items, accuracy_before, accuracy_after, gain_pp`` (percentage points), one row per N.

    >>> b = pd.DataFrame({"n_items": [2, 4], "accuracy_items": [0.5, 0.25]})
    >>> laundry_gain(b, b.assign(accuracy_items=[0.75, 0.25]))["gain_pp"].tolist()
    [25.0, 0.0]
    """
    table = pd.DataFrame(
        {
            "n_items": before["n_items"].astype(int),
            "accuracy_before": before["accuracy_items"],
            "accuracy_after": after["accuracy_items"].to_numpy(),
        }
    )
    table["gain_pp"] = 100 * (table["accuracy_after"] - table["accuracy_before"])
    return table
