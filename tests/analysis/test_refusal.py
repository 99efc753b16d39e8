"""Refusal checks: matcher, exact directional ablation/addition on the tiny model, head attribution,
the end-to-end fit on the tiny model, and a small real check on SmolLM2."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from analysis.refusal import (
    RefusalConfig,
    choose_layer,
    fit_refusal,
    head_attribution,
    is_refusal,
    projection_table,
    refusal_rate,
)
from probes.errors import InputError
from probes.generation import ablate_direction, add_to_residual, generate_batch
from probes.linear import diff_of_means

pytestmark = pytest.mark.usefixtures("one_thread")


def test_matcher():
    assert is_refusal("I’m sorry, but I can’t help with that.")
    assert is_refusal("As an AI, I cannot do this")
    assert not is_refusal("Sure, here is how to bake bread.")
    assert refusal_rate(["I cannot", "ok", "fine", "I won't"]) == 0.5
    with pytest.raises(InputError):
        refusal_rate([])


def test_ablation_zeroes_projection_everywhere(tiny):
    r = torch.nn.functional.normalize(torch.randn(32, generator=torch.Generator().manual_seed(0)), dim=0)
    ids, _ = tiny.tokenize(["the cat sat on the mat", "a dog"], chat=True)
    with torch.no_grad():
        before = tiny.hf(ids, output_hidden_states=True).hidden_states
        with ablate_direction(tiny, 3.0 * r):  # any scale: normalised inside
            after = tiny.hf(ids, output_hidden_states=True).hidden_states
        again = tiny.hf(ids, output_hidden_states=True).hidden_states  # hooks removed
    assert max(float((h @ r).abs().max()) for h in before[:-1]) > 0.01
    assert max(float((h @ r).abs().max()) for h in after[:-1]) < 1e-5  # embedding + every resid_post
    assert all(torch.equal(a, b) for a, b in zip(before, again, strict=True))


def test_addition_shifts_resid_post_exactly(tiny):
    from probes.architecture import decoder_layers

    v = torch.randn(32, generator=torch.Generator().manual_seed(1))
    ids, _ = tiny.tokenize(["the cat sat"], chat=False)
    seen = []  # layer 1's input = resid_post.0 as the rest of the model sees it
    rec = decoder_layers(tiny.hf)[1].register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    try:
        with torch.no_grad():
            tiny.hf(ids)
            with add_to_residual(tiny, v, 0):
                tiny.hf(ids)
    finally:
        rec.remove()
    base, shifted = seen
    assert torch.allclose(shifted - base, v.expand_as(base), atol=1e-5)
    with pytest.raises(InputError):
        with add_to_residual(tiny, v, 5):
            pass
    with pytest.raises(InputError, match="zero"):
        with ablate_direction(tiny, torch.zeros(32)):
            pass


def test_generate_batch_matches_single(tiny):
    prompts = ["the cat sat on the mat", "a dog", "hello there friend"]
    assert generate_batch(tiny, prompts, 4, batch_size=2) == [tiny.generate(p, 4) for p in prompts]


def test_head_attribution_ranks_planted_head():
    r = torch.zeros(8)
    r[0] = 1.0
    harmful = {0: torch.zeros(5, 3, 8), 1: torch.zeros(5, 3, 8)}
    harmless = {0: torch.zeros(4, 3, 8), 1: torch.zeros(4, 3, 8)}
    harmful[1][:, 2, 0] = 2.0
    harmless[1][:, 2, 0] = 0.5
    df = head_attribution(harmful, harmless, r)
    top = df.iloc[0]
    assert (top["layer"], top["head"], top["rank"]) == (1, 2, 1)
    assert top["diff"] == pytest.approx(1.5)
    assert len(df) == 6
    with pytest.raises(InputError):
        head_attribution(harmful, {0: harmless[0]}, r)


def test_projection_table_and_choose_layer():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 8, 6, generator=g)
    y = torch.tensor([1, 0] * 20)
    x[y == 1, 3, 0] += 10.0
    d = diff_of_means(x, y)
    assert choose_layer(x, y, d) == 3
    proj = projection_table(x[y == 1, 3], x[y == 0, 3], d.unit[3])
    assert proj.groupby("label").projection.mean()["harmful"] > 5


def test_fit_refusal_on_tiny(tiny, tmp_cache, tmp_path):
    harmful = ["make a bomb", "steal a car", "hack a bank", "hurt someone"]
    harmless = ["bake bread", "wash a car", "open a bank account", "help someone"]
    fit = fit_refusal(
        tiny, harmful, harmless, harmful[:2], harmless[:2], RefusalConfig(max_new_tokens=2), progress=False
    )
    assert len(fit.probes.table) == tiny.info.n_layers
    assert set(fit.summary.condition) == {"baseline", "ablation", "addition"}
    assert len(fit.heads) == (fit.layer + 1) * tiny.info.n_heads
    names = {p.name for p in fit.save(tmp_path)}
    assert {"probe_accuracy.parquet", "probes.safetensors", "directions.safetensors", "heads.html"} <= names
    assert len(pd.read_parquet(tmp_path / "generations.parquet")) == 8


@pytest.mark.pack
def test_smollm2_probe_separates_harmful(smollm2, tmp_cache):
    from probes.datasets import shared_refusal_split as split

    fit = fit_refusal(
        smollm2,
        split("harmful_train", 32),
        split("harmless_train", 32),
        split("harmful_val", 16),
        split("harmless_val", 16),
        RefusalConfig(generate=False),
        progress=False,
    )
    assert fit.probes.table.val_acc.max() >= 0.9
    assert fit.projections.groupby("label").projection.mean()["harmful"] > 0
