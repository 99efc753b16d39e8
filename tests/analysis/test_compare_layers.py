"""Layer x layer CKA between two language models (tiny random models; the packaged SmolLM2)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from analysis.compare_layers import DEFAULT_PROMPTS, best_matches, compare_layers, pool_activations
from analysis.similarity import SmallSampleWarning
from probes.capture import capture
from probes.errors import InputError
from probes.testing import tiny_handle

PROMPTS = [
    "the cat sat on the mat",
    "a dog went to the store",
    "Mary gave the ball to John",
    "he bought a hat",
    "Anna put the shirt in the laundry",
    "then they went",
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny1():
    return tiny_handle(seed=1)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_model_with_itself_has_unit_diagonal(tiny, pooling):
    res = compare_layers(tiny, tiny, PROMPTS, pooling=pooling, progress=False)
    g = res.grid
    assert list(g.columns[:4]) == ["layer_a", "layer_b", "metric", "value"] and len(g) == 4
    np.testing.assert_allclose(g[g.index_a == g.index_b].value, 1.0, atol=1e-12)
    np.testing.assert_allclose(g.depth_a.unique(), [0.0, 1.0])
    assert res.pooled_a is res.pooled_b and res.pooled_a["resid_post.1"].shape == (len(PROMPTS), 32)
    assert isinstance(res.figure, go.Figure) and res.figure.data[0].type == "heatmap"
    bm = best_matches(g)
    assert bm.best_b.tolist() == ["resid_post.0", "resid_post.1"] and (bm.diagonal == 1.0).all()


def test_two_different_models(tiny, tiny1):
    res = compare_layers(
        tiny, tiny1, PROMPTS, pooling="mean", metrics=["linear_cka", "debiased_cka"], progress=False
    )
    g = res.grid
    assert len(g) == 2 * 2 * 2 and set(g.metric) == {"linear_cka", "debiased_cka"}
    lin = g[g.metric == "linear_cka"].value
    assert np.isfinite(g.value).all() and (lin > 0).all() and (lin < 0.99).all()
    assert res.model_a == "tiny-llama-s0" and res.model_b == "tiny-llama-s1"
    # symmetric: swapping the models transposes the grid
    back = compare_layers(tiny1, tiny, PROMPTS, pooling="mean", progress=False).grid
    fwd = g[g.metric == "linear_cka"].set_index(["layer_a", "layer_b"]).value
    rev = back.set_index(["layer_b", "layer_a"]).value
    np.testing.assert_allclose(fwd.sort_index(), rev.sort_index().to_numpy(), atol=1e-10)


def test_mean_pooling_excludes_padding_and_last_matches_capture(tiny):
    res = compare_layers(tiny, tiny, PROMPTS, pooling="mean", progress=False)
    for i, p in enumerate(PROMPTS):  # alone in its batch: no padding at all
        alone = capture(tiny, [p], "resid_post.1", mode="all", progress=False)
        np.testing.assert_allclose(
            res.pooled_a["resid_post.1"][i], alone["resid_post.1"][0].mean(0), atol=1e-5
        )
    last = compare_layers(tiny, tiny, PROMPTS, pooling="last", progress=False)
    ref = capture(tiny, PROMPTS, "resid_post.*", mode="last", progress=False)
    torch.testing.assert_close(last.pooled_a["resid_post.0"], ref["resid_post.0"])
    allpos = capture(tiny, PROMPTS, "resid_post.0", mode="all", progress=False)
    torch.testing.assert_close(pool_activations(allpos, "last")["resid_post.0"], ref["resid_post.0"])


def test_bad_input(tiny):
    with pytest.raises(InputError, match="empty"):
        compare_layers(tiny, tiny, [], progress=False)
    with pytest.raises(InputError, match=r"3 prompts are too few for CKA.*at least 32 prompts"):
        compare_layers(tiny, tiny, PROMPTS[:3], progress=False)
    with pytest.warns(SmallSampleWarning, match=r"6 prompts is biased high.*debiased_cka"):
        compare_layers(tiny, tiny, PROMPTS, progress=False)
    with pytest.raises(InputError, match="single string"):
        compare_layers(tiny, tiny, "the cat sat", progress=False)
    with pytest.raises(InputError, match="unknown pooling 'max'"):
        compare_layers(tiny, tiny, PROMPTS, pooling="max", progress=False)
    with pytest.raises(InputError, match="unknown metric"):
        compare_layers(tiny, tiny, PROMPTS, metrics="cka9", progress=False)
    with pytest.raises(InputError, match="ModelHandle"):
        compare_layers(tiny, "tiny", PROMPTS, progress=False)
    acts = capture(tiny, PROMPTS, "resid_post.0", mode="last", progress=False)
    with pytest.raises(InputError, match="mode='all'"):
        pool_activations(acts, "mean")


def test_default_prompts_are_everyday_instructions():
    assert len(DEFAULT_PROMPTS) == 40 and len(set(DEFAULT_PROMPTS)) == 40
    assert all(isinstance(p, str) and len(p) > 10 for p in DEFAULT_PROMPTS)


@pytest.mark.pack
def test_smollm2_with_itself_and_with_a_tiny_model(smollm2, tiny):
    res = compare_layers(
        smollm2, smollm2, DEFAULT_PROMPTS[:8], pooling="mean", backend="nnsight", progress=False
    )
    g = res.grid.set_index(["index_a", "index_b"]).value
    assert len(g) == 30 * 30
    np.testing.assert_allclose([g[(i, i)] for i in range(30)], 1.0, atol=1e-9)
    assert g[(0, 1)] > g[(0, 29)] and g[(14, 15)] > g[(1, 28)]  # neighbouring layers are most alike
    cross = compare_layers(
        smollm2, tiny, DEFAULT_PROMPTS[:8], pooling="last", backend="nnsight", progress=False
    )
    assert len(cross.grid) == 30 * 2 and cross.grid.depth_b.max() == 1.0
    assert np.isfinite(cross.grid.value).all()
