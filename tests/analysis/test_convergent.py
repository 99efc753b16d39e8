"""Convergent learning (Li et al. 2016) on digits CNNs: exact unit tests of matching, sparse prediction,
clustering and layer identification, and the qualitative findings on nets trained with 3 seeds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from analysis.convergent import (
    ConvergentConfig,
    cka_grid,
    correlation_matrix,
    joint_clusters,
    lasso_map,
    layer_activations,
    layer_identification,
    load_digits_split,
    match_units,
    matching_summary,
    run_convergent,
    same_assignment,
    sparse_prediction,
    train_digits_net,
)
from probes.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")


def _relu_acts(seed: int, n: int = 400, d: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=(n, d)) @ rng.normal(size=(d, d)), 0.0)


# -- matching ---------------------------------------------------------------------------------------


def test_hungarian_recovers_a_permutation_with_correlation_one():
    a = _relu_acts(0)
    perm = np.random.default_rng(1).permutation(a.shape[1])
    b = a[:, perm]  # unit j of b is unit perm[j] of a
    for method in ("hungarian", "semi"):
        df = match_units(a, b, method=method)
        assert df.unit_a.tolist() == list(range(a.shape[1]))
        np.testing.assert_array_equal(perm[df.unit_b.to_numpy()], df.unit_a.to_numpy())
        np.testing.assert_allclose(df.correlation, 1.0, atol=1e-12)
    summary = matching_summary(a, b, n_random=20).set_index("method")
    assert summary.loc["hungarian", "mean_corr"] == pytest.approx(1.0, abs=1e-12)
    assert summary.loc["semi", "mean_corr"] == pytest.approx(1.0, abs=1e-12)
    assert summary.loc["random", "mean_corr"] < 0.9
    assert same_assignment(a, b) == 1.0


def test_semi_matching_bounds_hungarian_and_hungarian_is_optimal():
    for seed in range(5):
        a = _relu_acts(seed)
        b = np.maximum(a @ np.random.default_rng(seed + 10).normal(size=(12, 12)), 0.0)
        s = matching_summary(a, b, n_random=10).set_index("method").mean_corr
        assert s["semi"] >= s["hungarian"] - 1e-12
    c = np.random.default_rng(0).normal(size=(6, 6))
    r, k = linear_sum_assignment(c, maximize=True)
    brute = max(sum(c[i, p[i]] for i in range(6)) for p in itertools.permutations(range(6)))
    assert c[r, k].sum() == pytest.approx(brute, abs=1e-12)


def test_correlation_matrix_and_dead_units():
    a = _relu_acts(2)
    np.testing.assert_allclose(correlation_matrix(a, a[:, :3]), np.corrcoef(a.T)[:, :3], atol=1e-12)
    a[:, 4] = 0.0  # a dead ReLU unit
    c = correlation_matrix(a, a)
    assert np.isfinite(c).all() and (c[4] == 0).all()
    df = match_units(a, a)
    assert 4 not in df.unit_a.tolist() and len(df) == 11
    s = matching_summary(a, a, n_random=5)
    assert (s.n_dead_a == 1).all() and (s.n_matched == 11).all()


# -- sparse prediction ------------------------------------------------------------------------------


def test_lasso_recovers_a_planted_sparse_mapping():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1500, 20))
    support = np.zeros((8, 20), bool)
    for j in range(8):
        support[j, rng.choice(20, size=2, replace=False)] = True
    w = np.where(
        support, rng.uniform(1.0, 2.0, size=support.shape) * rng.choice([-1, 1], size=support.shape), 0
    )
    b = a @ w.T + 0.05 * rng.normal(size=(1500, 8))
    coef = lasso_map(a[:1000], b[:1000], alpha=0.1)
    np.testing.assert_array_equal(coef != 0, support)
    df = sparse_prediction(a[:1000], b[:1000], a[1000:], b[1000:], alphas=[0.01, 0.1]).set_index(
        ["method", "alpha"]
    )
    assert df.loc[("lasso", 0.1), "nonzero"] == 2.0
    assert df.loc[("dense", np.nan), "error"] < 0.01
    assert df.loc[("lasso", 0.1), "error"] < 0.05
    # one unit of A explains only part of a two-source target
    assert df.loc[("one_to_one", np.nan), "error"] > 0.2


def test_one_to_one_is_exact_for_a_scaled_permuted_copy():
    a = _relu_acts(3)
    b = 3.0 * a[:, ::-1] + 1.0
    df = sparse_prediction(a[:300], b[:300], a[300:], b[300:], alphas=[0.001]).set_index("method")
    assert df.loc["one_to_one", "error"] == pytest.approx(0.0, abs=1e-12)
    assert df.loc["best_single", "error"] == pytest.approx(0.0, abs=1e-12)


# -- clustering -------------------------------------------------------------------------------------


def test_spectral_clustering_recovers_planted_blocks():
    rng = np.random.default_rng(0)
    n, k, per = 600, 4, 3
    z = rng.normal(size=(n, k))
    labels = np.repeat(np.arange(k), per)  # unit -> planted factor

    def net(seed: int) -> tuple[np.ndarray, np.ndarray]:
        r = np.random.default_rng(seed)
        perm = r.permutation(k * per)
        x = z[:, labels[perm]] * r.uniform(0.5, 2.0, k * per) + 0.3 * r.normal(size=(n, k * per))
        return x, labels[perm]

    (a, la), (b, lb) = net(1), net(2)
    res = joint_clusters(a, b, n_clusters=k, seed=0)
    truth = np.r_[la, lb]
    assert adjusted_rand_score(truth, res.units.cluster) == 1.0
    assert res.composition.mixed.all() and (res.composition.n_a == per).all()
    s = res.summary()
    assert s["frac_mixed"] == 1.0 and s["between_abs_corr"] > 0.7 > s["between_abs_corr_random"] + 0.3


# -- layer identification ---------------------------------------------------------------------------


def test_layer_identification_on_synthetic_layers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 10))
    layers = {"l1": x, "l2": np.tanh(x @ rng.normal(size=(10, 10))), "l3": rng.normal(size=(200, 6))}
    other = {k: v @ np.linalg.qr(rng.normal(size=(v.shape[1],) * 2))[0] for k, v in layers.items()}
    grid = cka_grid(layers, other)
    assert set(grid.metric) == {"linear_cka"} and len(grid) == 9
    lid = layer_identification(grid)
    assert lid.correct.all() and len(lid) == 6
    np.testing.assert_allclose(lid.same_layer_value, 1.0, atol=1e-12)  # CKA is rotation invariant


# -- bad input --------------------------------------------------------------------------------------


def test_bad_input_gives_clear_errors():
    a = _relu_acts(0)
    with pytest.raises(InputError, match="same number of samples"):
        match_units(a, a[:-1])
    with pytest.raises(InputError, match="same number of samples"):
        correlation_matrix(a, a[:-5])
    with pytest.raises(InputError, match="same number of samples"):
        sparse_prediction(a, a[:-1], a, a)
    with pytest.raises(InputError, match="same number of samples"):
        joint_clusters(a, a[:10], n_clusters=2)
    with pytest.raises(InputError, match="NaN"):
        match_units(np.where(a > 1, np.nan, a), a)
    with pytest.raises(InputError, match="2-D"):
        matching_summary(a[:, 0], a)
    with pytest.raises(InputError, match="unknown matching method"):
        match_units(a, a, method="greedy")
    with pytest.raises(InputError, match="n_clusters"):
        joint_clusters(a, a, n_clusters=100)
    with pytest.raises(InputError, match="positive"):
        sparse_prediction(a, a, a, a, alphas=[0.0])
    with pytest.raises(InputError, match="unknown layer 'conv3'"):
        ConvergentConfig(layers=["conv3"])
    with pytest.raises(InputError, match="two distinct"):
        ConvergentConfig(seeds=[1])
    with pytest.raises(InputError, match="same layers"):
        cka_grid({"conv1": a}, {"fc1": a})
    net = train_digits_net(0, epochs=1)
    with pytest.raises(InputError, match="unknown layer 'fc9'"):
        layer_activations(net, load_digits_split().x_test[:4], ["fc9"])
    with pytest.raises(InputError, match=r"\[n, 1, 8, 8\]"):
        layer_activations(net, torch.zeros(4, 64))


# -- the digits nets --------------------------------------------------------------------------------


def test_training_is_deterministic_per_seed_and_capture_modes():
    data = load_digits_split()
    n1, n2, n3 = (train_digits_net(s, data, epochs=2) for s in (0, 0, 1))
    for p, q in zip(n1.model.parameters(), n2.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(n1.model.conv1.weight, n3.model.conv1.weight)
    x = data.x_test[:5]
    pos = layer_activations(n1, x, ["conv1", "conv2", "fc1"], conv="positions")
    mean = layer_activations(n1, x, ["conv1"], conv="mean")
    flat = layer_activations(n1, x, ["conv1"], conv="flatten")
    assert pos["conv1"].shape == (5 * 64, 16) and pos["conv2"].shape == (5 * 16, 32)
    assert pos["fc1"].shape == (5, 64) and mean["conv1"].shape == (5, 16) and flat["conv1"].shape == (5, 1024)
    np.testing.assert_allclose(pos["conv1"].reshape(5, 64, 16).mean(1), mean["conv1"], atol=1e-12)


@pytest.fixture(scope="module")
def digits_run():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = ConvergentConfig(seeds=[0, 1, 2], epochs=15, lasso_alphas=[0.01, 0.1], n_random=20)
        return run_convergent(cfg)
    finally:
        torch.set_num_threads(old)


def test_digits_nets_are_accurate(digits_run):
    assert (digits_run.accuracy.test_accuracy >= 0.95).all()
    assert len(digits_run.accuracy) == 3


def test_matched_units_correlate_far_above_random_and_hungarian_below_semi(digits_run):
    m = digits_run.matching
    assert set(m.layer) == {"conv1", "conv2", "fc1"} and len(m) == 3 * 3 * 3
    wide = m.pivot_table(index=["layer", "seed_a", "seed_b"], columns="method", values="mean_corr")
    assert (wide.hungarian <= wide.semi + 1e-12).all()
    assert (wide.hungarian > 0.45).all()
    assert (wide.hungarian > wide.random + 0.3).all()
    ov = digits_run.matching_overview().set_index("layer")
    assert (ov.same_assignment > 0.2).all() and (ov.same_assignment < 1.0).all()


def test_sparse_prediction_orders_dense_sparse_one_to_one(digits_run):
    sp = digits_run.sparse_overview()
    for layer, g in sp.groupby("layer"):
        dense = g[g.method == "dense"].error.item()
        sparse = g[(g.method == "lasso") & (g.alpha == 0.1)].error.item()
        one = g[g.method == "one_to_one"].error.item()
        assert dense < sparse < one < 1.0, layer
        nz = g[g.method == "lasso"].sort_values("alpha").nonzero.to_numpy()
        assert nz[0] > nz[1] > 1.0  # stronger penalty, sparser maps


def test_clusters_mix_both_nets_and_layers_are_identified(digits_run):
    cs = digits_run.cluster_summary
    assert (cs.frac_mixed > 0.5).all()
    assert (cs.between_abs_corr > cs.between_abs_corr_random).all()
    assert digits_run.layer_id_accuracy() >= 0.8
    tables = digits_run.tables()
    assert {"seed_a", "seed_b"} <= set(tables["cka"].columns) and len(tables["cka"]) == 3 * 9
