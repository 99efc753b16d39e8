"""The tasks on the packaged SmolLM2: IOI well above chance, Laundry List accuracy falling with N."""

from __future__ import annotations

import pytest

from analysis.tasks.evaluate import evaluate_ioi, evaluate_laundry

pytestmark = pytest.mark.pack


def test_ioi_above_chance(smollm2):
    _, summary = evaluate_ioi(smollm2, n_prompts=40, progress=False)
    overall = summary[summary["pattern"] == "all"].iloc[0]
    assert overall["accuracy"] >= 0.85 and overall["mean_logit_diff"] > 2.0


def test_laundry_accuracy_falls_with_n(smollm2):
    res = evaluate_laundry(smollm2, n_items=[2, 8], n_per_n=30, progress=False)
    acc = dict(zip(res.by_n["n_items"], res.by_n["accuracy_items"], strict=True))
    assert acc[2] >= 0.7  # chance 0.5
    assert acc[8] <= acc[2] - 0.3
    assert set(res.by_position["n_items"]) == {2, 8}
    assert (res.scored["split"] == "test").all()
