"""Score final-position logits on IOI and Laundry List prompts.

All functions take ``logits: [batch, vocab]`` at the last prompt position (torch tensor or numpy
array) and token ids. Accuracy is strict: the answer's logit must be *greater* than every
competitor's (ties count as wrong).

* Laundry List: ``correct_items`` (answer beats the other list items), ``correct_vocab`` (answer is
  the top token of the whole vocabulary), ``margin`` (answer − best other item), ``rank_items``.
* IOI: ``logit_diff = logit(IO) − logit(S)``, ``correct`` (IO beats S), ``correct_vocab``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from probes.errors import InputError

__all__ = [
    "accuracy_by_n",
    "accuracy_by_position",
    "ioi_summary",
    "item_accuracy",
    "laundry_accuracy",
    "logit_difference",
    "score_ioi",
    "score_laundry",
    "vocab_accuracy",
]


def _as_logits(logits, batch: int | None = None) -> np.ndarray:
    if hasattr(logits, "detach"):
        logits = logits.detach().float().cpu().numpy()
    arr = np.asarray(logits, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(
            f"logits must be [batch, vocab] at the final prompt position, got shape {arr.shape}; "
            "take logits[:, -1] (or the last non-pad position) first."
        )
    if batch is not None and arr.shape[0] != batch:
        raise InputError(
            f"logits have {arr.shape[0]} rows but there are {batch} prompts; pass one row per prompt."
        )
    if np.isnan(arr).any():
        raise InputError("logits contain NaN; check the model run (dtype overflow?).")
    return arr


def _as_ids(ids, vocab: int, what: str, batch: int) -> np.ndarray:
    if hasattr(ids, "detach"):
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.shape != (batch,) or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{what} must be {batch} integer token ids (one per prompt), got shape {arr.shape}.")
    if batch and (arr.min() < 0 or arr.max() >= vocab):
        raise InputError(f"{what} contain ids outside the vocabulary 0..{vocab - 1}.")
    return arr


def _gather(arr: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return arr[np.arange(len(ids)), ids]


def vocab_accuracy(logits, answer_ids) -> np.ndarray:
    """``[batch]`` bool: the answer's logit is strictly the largest in the vocabulary.

    >>> vocab_accuracy(np.array([[0.0, 2.0, 1.0], [3.0, 3.0, 0.0]]), [1, 0]).tolist()
    [True, False]
    """
    arr = _as_logits(logits)
    ids = _as_ids(answer_ids, arr.shape[1], "answer_ids", arr.shape[0])
    ans = _gather(arr, ids)
    others = arr.copy()
    others[np.arange(len(ids)), ids] = -np.inf
    return ans > others.max(axis=1)


def logit_difference(logits, answer_ids, distractor_ids) -> np.ndarray:
    """``[batch]``: ``logit(answer) − logit(distractor)`` (the IOI logit difference, IO − S).

    >>> logit_difference(np.array([[0.0, 2.0, 1.0]]), [1], [2]).tolist()
    [1.0]
    """
    arr = _as_logits(logits)
    a = _as_ids(answer_ids, arr.shape[1], "answer_ids", arr.shape[0])
    d = _as_ids(distractor_ids, arr.shape[1], "distractor_ids", arr.shape[0])
    return _gather(arr, a) - _gather(arr, d)


def item_accuracy(logits, answer_ids, item_ids: Sequence[Sequence[int]]) -> pd.DataFrame:
    """Per prompt: does the answer beat the other list items? ``item_ids[b]`` lists prompt b's items.

    Returns columns ``answer_logit, best_other_item_logit, margin, rank_items (1 = best),
    correct_items``.

    >>> logits = np.array([[0.0, 2.0, 1.0, 5.0], [0.0, 2.0, 1.0, 5.0]])
    >>> item_accuracy(logits, [1, 2], [(0, 1, 2), (0, 1, 2)])["correct_items"].tolist()
    [True, False]
    """
    arr = _as_logits(logits)
    batch, vocab = arr.shape
    ans = _as_ids(answer_ids, vocab, "answer_ids", batch)
    if len(item_ids) != batch:
        raise InputError(f"item_ids has {len(item_ids)} entries but there are {batch} prompts.")
    rows = []
    for b, items in enumerate(item_ids):
        items = [int(i) for i in items]
        if ans[b] not in items or len(items) < 2 or min(items) < 0 or max(items) >= vocab:
            raise InputError(
                f"item_ids[{b}] = {items} must hold >= 2 valid token ids including the answer {int(ans[b])}."
            )
        a = arr[b, ans[b]]
        other = arr[b, [i for i in items if i != ans[b]]]
        best = other.max()
        rows.append((a, best, a - best, 1 + int((other >= a).sum()), bool(a > best)))
    return pd.DataFrame(
        rows, columns=["answer_logit", "best_other_item_logit", "margin", "rank_items", "correct_items"]
    )


def score_laundry(logits, prompts: pd.DataFrame) -> pd.DataFrame:
    """Per-prompt Laundry List scores: ``prompts`` (from ``laundry_list_prompts``) plus score columns.

    Adds ``answer_logit, best_other_item_logit, margin, rank_items, correct_items, correct_vocab``.
    """
    need = ["answer_id", "item_ids", "n_items", "position"]
    missing = [c for c in need if c not in prompts.columns]
    if missing:
        raise InputError(f"prompts must come from laundry_list_prompts; missing columns {missing}.")
    arr = _as_logits(logits, len(prompts))
    scores = item_accuracy(arr, prompts["answer_id"].to_numpy(), list(prompts["item_ids"]))
    scores["correct_vocab"] = vocab_accuracy(arr, prompts["answer_id"].to_numpy())
    return pd.concat([prompts.reset_index(drop=True), scores], axis=1)


def laundry_accuracy(scored: pd.DataFrame, by: str | Sequence[str] = ("n_items",)) -> pd.DataFrame:
    """Group :func:`score_laundry` output: ``n_prompts, accuracy_items, accuracy_vocab, mean_margin``.

    >>> scored = pd.DataFrame({"n_items": [2, 2, 3], "position": [0, 1, 0], "correct_items": [True, False, True],
    ...                        "correct_vocab": [True, False, False], "margin": [1.0, -1.0, 0.5]})
    >>> laundry_accuracy(scored)["accuracy_items"].tolist()
    [0.5, 1.0]
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, "correct_items", "correct_vocab", "margin"] if c not in scored.columns]
    if missing:
        raise InputError(f"laundry_accuracy needs score_laundry output; missing columns {missing}.")
    g = scored.groupby(by, sort=True)
    return pd.DataFrame(
        {
            "n_prompts": g.size(),
            "accuracy_items": g["correct_items"].mean(),
            "accuracy_vocab": g["correct_vocab"].mean(),
            "mean_margin": g["margin"].mean(),
        }
    ).reset_index()


def accuracy_by_n(scored: pd.DataFrame) -> pd.DataFrame:
    """Laundry List accuracy per list length ``n_items``."""
    return laundry_accuracy(scored, ["n_items"])


def accuracy_by_position(scored: pd.DataFrame) -> pd.DataFrame:
    """Laundry List accuracy per ``(n_items, position)`` of the answer in the list."""
    return laundry_accuracy(scored, ["n_items", "position"])


def score_ioi(logits, prompts: pd.DataFrame) -> pd.DataFrame:
    """Per-prompt IOI scores: ``prompts`` (from ``ioi_prompts``) plus ``logit_diff, correct, correct_vocab``.

    >>> prompts = pd.DataFrame({"answer_id": [1, 2], "distractor_id": [2, 1], "pattern": ["ABBA", "BABA"]})
    >>> score_ioi(np.array([[0.0, 3.0, 1.0], [0.0, 3.0, 1.0]]), prompts)["logit_diff"].tolist()
    [2.0, -2.0]
    """
    missing = [c for c in ["answer_id", "distractor_id"] if c not in prompts.columns]
    if missing:
        raise InputError(f"prompts must come from ioi_prompts; missing columns {missing}.")
    arr = _as_logits(logits, len(prompts))
    out = prompts.reset_index(drop=True).copy()
    out["logit_diff"] = logit_difference(arr, out["answer_id"].to_numpy(), out["distractor_id"].to_numpy())
    out["correct"] = out["logit_diff"] > 0
    out["correct_vocab"] = vocab_accuracy(arr, out["answer_id"].to_numpy())
    return out


def ioi_summary(scored: pd.DataFrame, by: str | Sequence[str] = ("pattern",)) -> pd.DataFrame:
    """Group :func:`score_ioi` output: ``n_prompts, mean_logit_diff, std_logit_diff, accuracy, accuracy_vocab``."""
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, "logit_diff", "correct", "correct_vocab"] if c not in scored.columns]
    if missing:
        raise InputError(f"ioi_summary needs score_ioi output; missing columns {missing}.")
    g = scored.groupby(by, sort=True)
    return pd.DataFrame(
        {
            "n_prompts": g.size(),
            "mean_logit_diff": g["logit_diff"].mean(),
            "std_logit_diff": g["logit_diff"].std(),
            "accuracy": g["correct"].mean(),
            "accuracy_vocab": g["correct_vocab"].mean(),
        }
    ).reset_index()
