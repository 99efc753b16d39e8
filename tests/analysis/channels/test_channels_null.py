"""Receiver-specific null, z-scores, top channels and the planted-channel acceptance test (U6)."""

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.channels import (
    add_z,
    component_scores,
    direction_scores,
    head_composition_scores,
    random_unit_directions,
    receiver_null,
    top_channels,
)
from probes.errors import InputError
from probes.head_weights import HeadWeights


def planted_weights(seed=0, d_model=128, d_head=16, n_heads=4, alpha=3.0):
    """Random 2-layer weights plus one rank-1 channel: sender 0.1's top OV component writes exactly
    along ``ch`` and receiver 1.2's W_Q reads ``ch`` strongly (Q-composition)."""
    g = torch.Generator().manual_seed(seed)
    w = HeadWeights.random(2, n_heads, d_model, d_head, generator=g)
    W_V, W_O, W_Q = w.W_V.clone(), w.W_O.clone(), w.W_Q.clone()
    ch = torch.randn(d_model, generator=g)
    ch /= ch.norm()
    reads, _ = torch.linalg.qr(torch.randn(d_model, d_head, generator=g))
    rest = torch.randn(d_model, d_head - 1, generator=g)
    writes, _ = torch.linalg.qr(torch.cat([ch[:, None], rest - ch[:, None] * (ch @ rest)], dim=1))
    s = torch.linspace(1.0, 0.3, d_head)
    s[0] = 1.2  # the channel is the top component
    W_V[0, 1], W_O[0, 1] = reads * s, writes.T  # W_OV = reads diag(s) writesᵀ, writes[:, 0] = ±ch
    W_Q[1, 2, :, 0] += alpha * ch
    return HeadWeights(W_Q, w.W_K, W_V, W_O), ch


@pytest.fixture(scope="module")
def small():
    return HeadWeights.random(2, 3, 24, 4, generator=torch.Generator().manual_seed(1))


def test_null_is_deterministic_and_seeded(small):
    a = receiver_null(small, 300, seed=5)
    b = receiver_null(small, 300, seed=5)
    c = receiver_null(small, 300, seed=6)
    assert torch.equal(a.samples, b.samples)
    assert not torch.equal(a.samples, c.samples)
    assert a.samples.shape == (3, 300, 2, 3) and a.modes == ("Q", "K", "V")
    assert torch.all(a.samples[:, 1:] >= a.samples[:, :-1])  # sorted
    assert torch.equal(random_unit_directions(4, 9, seed=2), random_unit_directions(4, 9, seed=2))


def test_null_second_moment_is_one_over_d_model():
    """E[CS²] = 1/d_model for Haar-random directions, whatever the receiver."""
    w = HeadWeights.random(1, 4, 64, 8, generator=torch.Generator().manual_seed(2))
    null = receiver_null(w, 4000, seed=0)
    m2 = null.samples.double().pow(2).mean(1)  # [modes, L, H]
    assert torch.allclose(m2, torch.full_like(m2, 1 / 64), rtol=0.08)


def test_null_batches_do_not_change_result(small):
    a = receiver_null(small, 250, seed=3, modes="K", batch_size=64)
    b = receiver_null(small, 250, seed=3, modes="K", batch_size=1000)
    assert torch.allclose(a.samples, b.samples)


def test_centered_null_follows_weights(small):
    v = random_unit_directions(50, 24, seed=0, centered=True)
    assert v.sum(1).abs().max() < 1e-5
    assert receiver_null(small.center_writing_weights(), 50).centered
    assert not receiver_null(small, 50).centered
    null = receiver_null(small, 50, modes="Q", centered=True)
    expected = direction_scores(v, small, "Q").sort(dim=0).values
    assert torch.allclose(null.samples[0], expected)


def test_null_table_and_add_z(small):
    null = receiver_null(small, 400, seed=0)
    table = null.table()
    assert len(table) == 3 * 2 * 3
    assert {"null_mean", "null_std", "null_p99", "n_samples"} <= set(table.columns)
    df = component_scores(small)
    z = add_z(df, null)
    assert len(z) == len(df) and list(z.columns[: len(df.columns)]) == list(df.columns)
    row = z.iloc[17]
    ref = null.samples[["Q", "K", "V"].index(row["mode"]), :, row.receiver_layer, row.receiver_head].double()
    assert row["z"] == pytest.approx((row["score"] - ref.mean().item()) / ref.std().item(), rel=1e-6)
    assert row["p"] == pytest.approx((1 + int((ref >= row["score"]).sum())) / (len(ref) + 1))
    assert z["p"].between(0, 1).all()
    assert abs(z["z"].mean()) < 0.5 and 0.5 < z["z"].std() < 1.5  # random weights look like the null
    assert add_z(z, null)["z"].equals(z["z"])  # re-running replaces, does not duplicate


def test_add_z_and_top_channels_errors(small):
    df = component_scores(small, "QK")
    with pytest.raises(InputError, match="mode"):
        add_z(df, receiver_null(small, 20, modes="Q"))
    with pytest.raises(InputError, match="missing"):
        add_z(df.drop(columns="score"), receiver_null(small, 20))
    with pytest.raises(InputError, match="add_z"):
        top_channels(df, 5, min_z=3)
    with pytest.raises(InputError, match="mode"):
        top_channels(df, 5, mode="W")
    with pytest.raises(InputError, match="positive"):
        top_channels(df, 0)


def test_top_channels_orders_and_filters():
    df = pd.DataFrame(
        {"mode": ["Q", "K", "V", "Q"], "score": [0.2, 0.9, 0.5, 0.3], "z": [2.0, 8.0, np.nan, 11.0]}
    )
    assert top_channels(df, 4)["z"].tolist()[:3] == [11.0, 8.0, 2.0]
    assert top_channels(df, 4)["z"].isna().tolist()[-1]
    assert top_channels(df, 1, mode="k")["score"].tolist() == [0.9]
    assert top_channels(df, 10, min_z=5)["z"].tolist() == [11.0, 8.0]
    assert top_channels(df.drop(columns="z"), 2)["score"].tolist() == [0.9, 0.5]


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_channel_ranks_first_with_high_z(seed):
    """U6: the planted component (sender 0.1, component 0) → receiver 1.2 in Q mode is the top channel, z > 10."""
    w, ch = planted_weights(seed)
    assert abs(float(w.ov_svd.V[0, 1, :, 0] @ ch)) > 1 - 1e-5  # the top write direction is the channel
    df = add_z(component_scores(w), receiver_null(w, 3000, seed=seed))
    top = top_channels(df, 2)
    first = top.iloc[0]
    assert (first.sender_layer, first.sender_head, first.component) == (0, 1, 0)
    assert (first.receiver_layer, first.receiver_head, first["mode"]) == (1, 2, "Q")
    assert first["z"] > 10 and top.iloc[1]["z"] < 6
    assert first["p"] == pytest.approx(1 / 3001)
    # the head-level score dilutes the channel over the sender's 16 components
    assert head_composition_scores(w, "Q")[0, 1, 1, 2] < 0.6 * first["score"]
    # removing the component removes the channel
    ablated = w.remove_ov_component(0, 1, 0)
    df2 = add_z(component_scores(ablated), receiver_null(ablated, 3000, seed=seed))
    assert top_channels(df2, 1).iloc[0]["z"] < 6
    sender = df2[(df2.sender_layer == 0) & (df2.sender_head == 1)]
    assert sender["component"].max() == 14  # the zeroed component is not listed
