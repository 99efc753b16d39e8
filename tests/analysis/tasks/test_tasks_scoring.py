"""Scoring helpers on hand-made final-position logits."""

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.tasks.common import ToyTokenizer
from analysis.tasks.ioi import DEFAULT_NAMES, ioi_prompts
from analysis.tasks.laundry import DEFAULT_ITEMS, laundry_list_prompts
from analysis.tasks.scoring import (
    accuracy_by_n,
    accuracy_by_position,
    ioi_summary,
    item_accuracy,
    laundry_accuracy,
    logit_difference,
    score_ioi,
    score_laundry,
    vocab_accuracy,
)
from probes.errors import InputError


def hand_made_laundry():
    """Four prompts over tokens 0..9; answers 1, 4, 7, 2."""
    prompts = pd.DataFrame(
        {
            "answer_id": [1, 4, 7, 2],
            "item_ids": [(0, 1), (3, 4, 5), (6, 7, 8), (2, 9)],
            "n_items": [2, 3, 3, 2],
            "position": [1, 1, 1, 0],
        }
    )
    logits = torch.zeros(4, 12)
    logits[0, [0, 1]] = torch.tensor([1.0, 3.0])  # answer best overall -> both correct
    logits[1, [3, 4, 5, 11]] = torch.tensor([1.0, 2.0, 0.5, 9.0])  # best item, but token 11 wins the vocab
    logits[2, [6, 7, 8]] = torch.tensor([4.0, 2.0, 1.0])  # another item wins
    logits[3, [2, 9]] = torch.tensor([5.0, 5.0])  # tie with another item -> wrong
    return logits, prompts


def test_item_and_vocab_accuracy_on_hand_made_logits():
    logits, prompts = hand_made_laundry()
    scored = score_laundry(logits, prompts)
    assert scored["correct_items"].tolist() == [True, True, False, False]
    assert scored["correct_vocab"].tolist() == [True, False, False, False]
    assert scored["margin"].tolist() == [2.0, 1.0, -2.0, 0.0]
    assert scored["rank_items"].tolist() == [1, 1, 2, 2]


def test_breakdowns_by_n_and_position():
    logits, prompts = hand_made_laundry()
    scored = score_laundry(logits, prompts)
    by_n = accuracy_by_n(scored)
    assert by_n["n_items"].tolist() == [2, 3]
    assert by_n["n_prompts"].tolist() == [2, 2]
    assert by_n["accuracy_items"].tolist() == [0.5, 0.5]
    assert by_n["accuracy_vocab"].tolist() == [0.5, 0.0]
    assert by_n["mean_margin"].tolist() == [1.0, -0.5]
    by_pos = accuracy_by_position(scored)
    assert by_pos[["n_items", "position"]].values.tolist() == [[2, 0], [2, 1], [3, 1]]
    assert by_pos["accuracy_items"].tolist() == [0.0, 1.0, 0.5]
    assert laundry_accuracy(scored, "position")["n_prompts"].tolist() == [1, 3]


def test_laundry_end_to_end_with_generated_prompts():
    tok = ToyTokenizer(DEFAULT_ITEMS)
    prompts = laundry_list_prompts(tok, n_items=[2, 4], n_per_n=8)
    logits = np.zeros((len(prompts), 2 * len(DEFAULT_ITEMS)))
    for b, row in enumerate(prompts.itertuples()):
        logits[b, row.answer_id] = 1.0 if row.n_items == 2 else -1.0  # right for N=2, wrong for N=4
    by_n = accuracy_by_n(score_laundry(logits, prompts))
    assert by_n.set_index("n_items")["accuracy_items"].to_dict() == {2: 1.0, 4: 0.0}
    assert accuracy_by_position(score_laundry(logits, prompts))["n_prompts"].sum() == 16


def test_ioi_logit_difference_and_summary():
    prompts = pd.DataFrame(
        {"answer_id": [1, 2, 3], "distractor_id": [2, 1, 0], "pattern": ["ABBA", "BABA", "ABBA"]}
    )
    logits = np.array([[0.0, 2.0, 1.0, 0.0], [0.0, 2.0, 1.0, 0.0], [5.0, 0.0, 0.0, 4.0]])
    scored = score_ioi(logits, prompts)
    assert scored["logit_diff"].tolist() == [1.0, -1.0, -1.0]
    assert scored["correct"].tolist() == [True, False, False]
    assert scored["correct_vocab"].tolist() == [True, False, False]
    summary = ioi_summary(scored)
    assert summary["pattern"].tolist() == ["ABBA", "BABA"]
    assert summary["mean_logit_diff"].tolist() == [0.0, -1.0]
    assert summary["accuracy"].tolist() == [0.5, 0.0]


def test_ioi_end_to_end_with_generated_prompts():
    tok = ToyTokenizer(DEFAULT_NAMES)
    prompts = ioi_prompts(tok, n_prompts=10)
    logits = torch.zeros(10, 2 * len(DEFAULT_NAMES))
    logits[torch.arange(10), torch.tensor(prompts["answer_id"].to_numpy())] = 2.0
    scored = score_ioi(logits, prompts)
    assert (scored["logit_diff"] == 2.0).all() and scored["correct_vocab"].all()


def test_low_level_helpers():
    logits = np.array([[0.0, 2.0, 1.0, 5.0]])
    assert logit_difference(logits, [1], [2]).tolist() == [1.0]
    assert vocab_accuracy(logits, [3]).tolist() == [True]
    assert item_accuracy(logits, [1], [[0, 1, 2]])["correct_items"].tolist() == [True]


def test_scoring_errors():
    logits, prompts = hand_made_laundry()
    with pytest.raises(InputError, match=r"\[batch, vocab\]"):
        score_laundry(logits[None], prompts)
    with pytest.raises(InputError, match="rows"):
        score_laundry(logits[:3], prompts)
    with pytest.raises(InputError, match="NaN"):
        score_laundry(torch.full((4, 12), float("nan")), prompts)
    with pytest.raises(InputError, match="vocabulary"):
        vocab_accuracy(logits, [1, 2, 3, 99])
    with pytest.raises(InputError, match="including the answer"):
        item_accuracy(logits, [1, 4, 7, 2], [(0, 5), (3, 4), (6, 7), (2, 9)])
    with pytest.raises(InputError, match="missing columns"):
        score_laundry(logits, prompts.drop(columns="item_ids"))
    with pytest.raises(InputError, match="missing columns"):
        score_ioi(logits, prompts)
    with pytest.raises(InputError, match="missing columns"):
        ioi_summary(pd.DataFrame({"pattern": ["ABBA"]}))
