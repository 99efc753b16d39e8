"""Prompt batches and held-out text for learning edits, and the before/after measurements of a learned edit.

Fitting sees only **dev** items with the **dev** template family and the first half of the held-out
paragraphs; every reported number comes from **test** items with the **test** template family (or your
``--templates``), the second half of the held-out paragraphs (``lm_loss``) and IOI prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from analysis.tasks.evaluate import evaluate_ioi
from analysis.tasks.heldout import heldout_texts
from analysis.tasks.laundry import laundry_family_prompts
from analysis.tasks.scoring import accuracy_by_n, score_laundry
from probes.lm_loss import lm_loss
from probes.logits import next_token_logits

__all__ = ["LaundryBatch", "TextBatch", "gain_by_n", "heldout_halves", "measure", "paired_interval"]


def heldout_halves() -> tuple[list[str], list[str]]:
    """``(fit, report)``: even paragraphs go into the LM-loss penalty, odd ones are only reported."""
    texts = heldout_texts()
    return texts[0::2], texts[1::2]


@dataclass
class LaundryBatch:
    """Tokenized Laundry List prompts: ids (right-padded), lengths, item ids (padded) and answer index."""

    ids: Tensor
    lengths: Tensor
    items: Tensor  # [P, max N] token ids, padded with the first item
    mask: Tensor  # [P, max N] True where an item is real
    target: Tensor  # [P] index of the answer among the items

    @classmethod
    def from_prompts(cls, handle, prompts: pd.DataFrame) -> LaundryBatch:
        ids, lengths = handle.tokenize(list(prompts["prompt"]), chat=False)
        width = int(prompts["n_items"].max())
        items = torch.zeros(len(prompts), width, dtype=torch.long)
        mask = torch.zeros(len(prompts), width, dtype=torch.bool)
        for r, item_ids in enumerate(prompts["item_ids"]):
            items[r, : len(item_ids)] = torch.tensor(item_ids)
            items[r, len(item_ids) :] = item_ids[0]
            mask[r, : len(item_ids)] = True
        target = torch.tensor(list(prompts["position"]), dtype=torch.long)
        return cls(ids, lengths, items, mask, target)

    def __len__(self) -> int:
        return len(self.lengths)

    def loss(self, handle, rows: Tensor) -> Tensor:
        """Cross-entropy of the answer among the prompt's list items (what item accuracy scores).

        Only the positions that end some prompt of ``rows`` go through the unembedding."""
        lengths = self.lengths[rows]
        width = int(lengths.max())
        ids = self.ids[rows, :width].to(handle.device)
        mask = (torch.arange(width)[None, :] < lengths[:, None]).long().to(handle.device)
        ends, where = torch.unique(lengths - 1, return_inverse=True)
        out = handle.hf(input_ids=ids, attention_mask=mask, logits_to_keep=ends.to(handle.device)).logits
        logits = out[torch.arange(len(rows)), where.to(out.device)]  # [rows, vocab] at each prompt's end
        item_logits = logits.gather(1, self.items[rows].to(logits.device)).float()
        item_logits = item_logits.masked_fill(~self.mask[rows].to(logits.device), float("-inf"))
        return F.cross_entropy(item_logits, self.target[rows].to(logits.device))


@dataclass
class TextBatch:
    """Held-out paragraphs (truncated, right-padded) and the unedited model's loss on each."""

    ids: Tensor
    lengths: Tensor
    base: Tensor  # [texts] mean token loss of the unedited model

    @classmethod
    def from_texts(cls, handle, texts: list[str], max_tokens: int) -> TextBatch:
        n_ctx = handle.info.n_ctx
        max_tokens = min(max_tokens, n_ctx) if n_ctx else max_tokens  # as probes.lm_loss does
        ids, lengths = handle.tokenize(texts, chat=False, truncate_to=max_tokens)
        batch = cls(ids, lengths, torch.zeros(len(texts)))
        with torch.no_grad():
            batch.base = torch.stack([batch.loss(handle, torch.tensor([i])) for i in range(len(texts))])
        return batch

    def loss(self, handle, rows: Tensor) -> Tensor:
        """Token-weighted mean next-token cross-entropy over ``rows``."""
        lengths = self.lengths[rows]
        width = int(lengths.max())
        ids = self.ids[rows, :width].to(handle.device)
        mask = (torch.arange(width)[None, :] < lengths[:, None]).to(handle.device)
        logits = handle.hf(input_ids=ids, attention_mask=mask.long()).logits[:, :-1].float()
        losses = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
        )
        keep = mask[:, 1:].reshape(-1)
        return losses[keep].mean()

    def relative_increase(self, handle, rows: Tensor) -> Tensor:
        """``(loss − unedited loss) / unedited loss`` on ``rows`` (token-weighted as :meth:`loss`)."""
        n_tok = (self.lengths[rows] - 1).float()
        base = float((self.base[rows] * n_tok).sum() / n_tok.sum())
        return (self.loss(handle, rows) - base) / base


def paired_interval(
    before: np.ndarray, after: np.ndarray, seed: int, n_boot: int = 2000
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of ``mean(after) − mean(before)`` over paired prompts, in pp.

    >>> paired_interval(np.zeros(10), np.ones(10), 0)
    (100.0, 100.0)
    """
    d = after.astype(float) - before.astype(float)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(100 * lo), float(100 * hi)


def gain_by_n(before: pd.DataFrame, after: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Per N: accuracy before/after on the same prompts, gain (pp) and its paired 95% interval."""
    rows = []
    for n, b in before.groupby("n_items", sort=True):
        a = after.loc[b.index]
        lo, hi = paired_interval(b["correct_items"].to_numpy(), a["correct_items"].to_numpy(), seed + int(n))
        acc0, acc1 = float(b["correct_items"].mean()), float(a["correct_items"].mean())
        rows.append((int(n), len(b), acc0, acc1, 100 * (acc1 - acc0), lo, hi))
    cols = ["n_items", "n_prompts", "accuracy_before", "accuracy_after", "gain_pp", "gain_lo", "gain_hi"]
    return pd.DataFrame(rows, columns=cols)


def laundry_scored(handle, prompts: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """Per-prompt Laundry List scores of ``handle`` as it is now."""
    logits = next_token_logits(handle, list(prompts["prompt"]), batch_size=batch_size, progress=False)
    return score_laundry(logits.numpy(), prompts)


def measure(handle, sets: dict, config) -> dict:
    """Dev and test per-prompt scores, held-out LM loss (report half) and IOI logit difference, as is."""
    out = {
        "dev": laundry_scored(handle, sets["dev_eval"], config.batch_size),
        "test": laundry_scored(handle, sets["test"], config.batch_size),
        "lm_loss": lm_loss(handle, sets["report_texts"], max_tokens=config.lm_max_tokens),
        "ioi_logit_diff": None,
    }
    if config.ioi_prompts:
        _, summary = evaluate_ioi(handle, n_prompts=config.ioi_prompts, seed=config.seed, progress=False)
        out["ioi_logit_diff"] = float(summary.loc[summary["pattern"] == "all", "mean_logit_diff"].iloc[0])
    return out


def prompt_sets(handle, config) -> dict:
    """The run's prompt sets: ``train`` (dev items + dev templates), ``dev_eval`` (same family, other
    seed), ``test`` (test items + test family or ``config.templates``) and the two held-out halves."""
    tok = handle.tokenizer
    items = list(config.items) or None
    templates = list(config.templates) or None
    fit_texts, report_texts = heldout_halves()
    return {
        "train": laundry_family_prompts(tok, "dev", config.dev_n, config.dev_per_n, config.seed, items),
        "dev_eval": laundry_family_prompts(
            tok, "dev", config.dev_n, config.dev_eval_per_n, config.seed + 1, items
        ),
        "test": laundry_family_prompts(
            tok, "test", config.test_n, config.test_per_n, config.seed, items, templates
        ),
        "fit_texts": fit_texts,
        "report_texts": report_texts,
    }


def by_n_accuracy(scored: pd.DataFrame) -> dict[str, float]:
    """``{"N": item accuracy}``."""
    t = accuracy_by_n(scored)
    return {str(int(n)): float(a) for n, a in zip(t["n_items"], t["accuracy_items"], strict=True)}
