"""Aligners and metrics: exact checks on planted structure (affine, local CKA, CCA, retrieval, Hungarian)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from analysis.alignment.align import (
    METHODS,
    alignment_scores,
    cosine_scores,
    fit_affine,
    fit_cca,
    local_cka_naive,
    local_cka_scores,
)
from analysis.alignment.retrieval import (
    caption_oracle_top1,
    hungarian_accuracy,
    label_chance,
    retrieval_accuracy,
    retrieval_metrics,
    true_ranks,
)
from analysis.alignment.semantics import (
    attribute_distances,
    chamfer_distances,
    partial_spearman,
    semantics_vs_geometry,
)
from probes.errors import InputError


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------- affine
def test_affine_recovers_planted_map_exactly():
    r = rng()
    y = r.normal(size=(80, 6))
    w, b = r.normal(size=(6, 4)), r.normal(size=4)
    x = y @ w + b
    amap = fit_affine(y, x, ridge=0.0)
    np.testing.assert_allclose(amap.weight.numpy(), w, atol=1e-10)
    np.testing.assert_allclose(amap.bias.numpy(), b, atol=1e-10)
    yq = r.normal(size=(10, 6))
    np.testing.assert_allclose(amap(yq).numpy(), yq @ w + b, atol=1e-10)


def test_affine_scores_rank_true_pairs_first_when_map_is_exact():
    r = rng(1)
    ya, yq = r.normal(size=(60, 5)), r.normal(size=(20, 5))
    w = r.normal(size=(5, 5))
    s = alignment_scores("affine", ya @ w + 2, ya, yq @ w + 2, yq, ridge=0.0)
    assert true_ranks(s.numpy().T, seed=0).max() == 0


def test_ridge_shrinks_the_map():
    r = rng(2)
    y = r.normal(size=(50, 4))
    x = y @ r.normal(size=(4, 3)) + 0.1 * r.normal(size=(50, 3))
    n0 = fit_affine(y, x).weight.norm()
    n1 = fit_affine(y, x, ridge=10.0).weight.norm()
    assert n1 < 0.5 * n0


# ------------------------------------------------------------------------------------------- local CKA
def test_local_cka_rank_one_form_equals_naive():
    r = rng(3)
    xa, ya = r.normal(size=(30, 5)) + 3, r.normal(size=(30, 4)) - 1
    xq, yq = r.normal(size=(4, 5)), r.normal(size=(6, 4))
    fast = local_cka_scores(xa, ya, xq, yq).numpy()
    naive = np.array(
        [[local_cka_naive(xa, ya, xq[i : i + 1], yq[j : j + 1]) for j in range(6)] for i in range(4)]
    )
    np.testing.assert_allclose(fast, naive, atol=1e-12)


def test_local_cka_ranks_true_pair_first_under_rotation():
    r = rng(4)
    q, _ = np.linalg.qr(r.normal(size=(6, 6)))
    xa, xq = r.normal(size=(100, 6)), r.normal(size=(15, 6))
    s = local_cka_scores(xa, xa @ q, xq, xq @ q).numpy()
    assert (s.argmax(axis=1) == np.arange(15)).all()


# ------------------------------------------------------------------------------------------------- CCA
def test_cca_recovers_planted_shared_subspace():
    r = rng(5)
    n, k = 2000, 3
    z = r.normal(size=(n, k))  # shared signal
    x = np.hstack([z, 2.0 * r.normal(size=(n, 7))]) @ r.normal(size=(10, 10))  # mixed with nuisance
    y = np.hstack([z, 2.0 * r.normal(size=(n, 9))]) @ r.normal(size=(12, 12))
    proj = fit_cca(x, y, k, reg=0.0)
    assert proj.rho.min() > 0.999  # the shared directions are perfectly correlated
    assert fit_cca(x, y, k + 1, reg=0.0).rho[k] < 0.15  # the next is noise
    # the x-side projection spans exactly z (up to an invertible map): regressing z on it is exact
    px = proj.transform_x(x).numpy()
    coef, *_ = np.linalg.lstsq(px, z - z.mean(0), rcond=None)
    resid = (z - z.mean(0)) - px @ coef
    assert np.abs(resid).max() < 1e-2 * np.abs(z).max()


def test_cca_of_a_linear_copy_has_all_correlations_one():
    r = rng(6)
    x = r.normal(size=(300, 5))
    proj = fit_cca(x, x @ r.normal(size=(5, 5)), 5, reg=0.0)
    np.testing.assert_allclose(proj.rho.numpy(), 1.0, atol=1e-8)


def test_cca_clip_keeps_only_existing_directions():
    r = rng(10)
    x = r.normal(size=(50, 6))
    y = np.hstack([x[:, :2], x[:, :2] @ r.normal(size=(2, 4))])  # rank 2 in 6 columns
    with pytest.raises(InputError, match="numerical rank"):
        fit_cca(x, y, 4)
    proj = fit_cca(x, y, 4, clip=True)
    assert proj.d == 2 and proj.transform_y(y).shape == (50, 2)


def test_cca_guards():
    r = rng(7)
    with pytest.raises(InputError, match="larger than the subspace"):
        fit_cca(r.normal(size=(10, 20)), r.normal(size=(10, 20)), 12)
    with pytest.raises(InputError, match="paired one to one"):
        fit_cca(r.normal(size=(10, 3)), r.normal(size=(11, 3)), 2)
    with pytest.raises(InputError, match="NaN"):
        fit_cca(np.full((10, 3), np.nan), r.normal(size=(10, 3)), 2)


def test_subspace_beats_full_space_on_planted_semantics():
    """A small version of the reference note's E2: shared 4-d signal hidden under larger nuisance."""
    r = rng(8)
    n_a, n_q = 1500, 100
    z = r.normal(size=(n_a + n_q, 4))
    x = np.tanh(np.hstack([z, 3 * r.normal(size=(n_a + n_q, 12))]) @ r.normal(size=(16, 64)) / 4)
    y = np.tanh(np.hstack([z, 3 * r.normal(size=(n_a + n_q, 12))]) @ r.normal(size=(16, 96)) / 4)
    args = (x[:n_a], y[:n_a], x[n_a:], y[n_a:])
    top1 = {
        m: retrieval_accuracy(alignment_scores(m, *args, d=4).numpy().T, ks=(1,), seed=0)["top1"]
        for m in ("affine", "cca_affine", "cca_local_cka")
    }
    assert top1["cca_affine"] >= 3 * max(top1["affine"], 0.01)
    assert top1["cca_local_cka"] >= 3 * max(top1["affine"], 0.01)


def test_every_method_returns_a_finite_square_matrix():
    r = rng(9)
    xa, ya, xq, yq = (
        r.normal(size=(50, 6)),
        r.normal(size=(50, 5)),
        r.normal(size=(8, 6)),
        r.normal(size=(8, 5)),
    )
    for m in METHODS:
        s = alignment_scores(m, xa, ya, xq, yq, d=3)
        assert s.shape == (8, 8) and torch.isfinite(s).all()
    with pytest.raises(InputError, match="needs the subspace dimension"):
        alignment_scores("cca_affine", xa, ya, xq, yq)
    with pytest.raises(InputError, match="unknown alignment method"):
        alignment_scores("procrustes", xa, ya, xq, yq)
    with pytest.raises(InputError, match="query widths"):
        alignment_scores("affine", xa, ya, xq[:, :3], yq)


def test_cosine_scores():
    s = cosine_scores([[3.0, 0.0], [1.0, 1.0]], [[1.0, 0.0]]).numpy()
    np.testing.assert_allclose(s, [[1.0], [np.sqrt(0.5)]])


# ------------------------------------------------------------------------------------------ retrieval
def test_perfect_scores_give_one_everywhere():
    m = retrieval_metrics(np.eye(50) + 0.01 * rng().normal(size=(50, 50)) * 0, seed=1, labels=list(range(50)))
    assert all(v == 1.0 for v in m.values())


def test_permuted_scores_give_expected_accuracy():
    n = 40
    perm = rng(1).permutation(n)
    s = np.eye(n)[:, perm]  # query i's best candidate is column where perm == i
    expected = float(np.mean(perm == np.arange(n)))
    m = retrieval_metrics(s, seed=0, ks=(1,))
    assert m["t2s_top1"] == m["s2t_top1"] == m["matching"] == expected
    # a fixed cyclic shift: top-1 and matching zero, top-2 one
    shift = np.roll(np.eye(n), 1, axis=1) + 0.5 * np.eye(n)
    acc = retrieval_accuracy(shift, ks=(1, 2), seed=0)
    assert acc == {"top1": 0.0, "top2": 1.0}
    assert hungarian_accuracy(shift, seed=0) == 0.0


def test_shuffling_candidates_does_not_change_accuracy_and_ties_do_not_leak():
    s = rng(2).normal(size=(30, 30))
    accs = {retrieval_accuracy(s, ks=(1, 5), seed=k)["top5"] for k in range(5)}
    assert len(accs) == 1
    assert len({hungarian_accuracy(s, seed=k) for k in range(5)}) == 1
    # all-equal scores: the diagonal must not win by position; chance ~ 1/n over seeds
    flat = np.zeros((200, 200))
    top1 = np.mean([retrieval_accuracy(flat, ks=(1,), seed=k)["top1"] for k in range(5)])
    assert top1 < 0.03


def test_random_scores_near_chance():
    n = 300
    r = rng(3)
    vals = [retrieval_metrics(r.normal(size=(n, n)), seed=k) for k in range(3)]
    t1 = np.mean([v["t2s_top1"] for v in vals])
    t5 = np.mean([v["t2s_top5"] for v in vals])
    assert t1 < 4 / n and 1 / n < t5 < 10 / n


def test_hungarian_matches_brute_force():
    s = rng(4).normal(size=(6, 6))
    best = max(itertools.permutations(range(6)), key=lambda p: sum(s[i, p[i]] for i in range(6)))
    expected = float(np.mean(np.array(best) == np.arange(6)))
    assert hungarian_accuracy(s, seed=3) == expected


def test_label_metrics():
    labels = ["a", "a", "b", "b"]
    s = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=float)  # swaps within labels
    m = retrieval_metrics(s, seed=0, labels=labels, ks=(1,))
    assert m["t2s_top1"] == 0.0 and m["t2s_top1_label"] == 1.0 and m["matching_label"] == 1.0
    assert label_chance(labels) == 0.5


def test_caption_oracle_is_what_a_perfect_caption_reader_scores():
    """Scores that know only caption meanings (1 for same label, 0 otherwise): top-1 over many candidate
    shuffles averages to ``caption_oracle_top1``, and such a reader is right at the label level every time."""
    labels = np.array(list("aaabbcdddd"))
    s = (labels[:, None] == labels[None, :]).astype(float)
    top1 = [retrieval_metrics(s, seed=k, labels=labels, ks=(1,))["t2s_top1"] for k in range(400)]
    want = (3 * (1 / 3) + 2 * (1 / 2) + 1 + 4 * (1 / 4)) / 10
    assert caption_oracle_top1(labels) == pytest.approx(want)
    assert np.mean(top1) == pytest.approx(want, abs=0.03)
    assert retrieval_metrics(s, seed=0, labels=labels, ks=(1,))["t2s_top1_label"] == 1.0


def test_retrieval_bad_input():
    with pytest.raises(InputError, match="square"):
        retrieval_accuracy(np.zeros((3, 4)))
    with pytest.raises(InputError, match="NaN"):
        hungarian_accuracy(np.full((3, 3), np.nan))
    with pytest.raises(InputError, match="one label per item"):
        retrieval_accuracy(np.eye(3), labels=["a"])


# ------------------------------------------------------------------------------------------ semantics
def test_chamfer_distance_known_value():
    a = np.zeros((1, 4, 3))
    b = np.zeros((1, 4, 3))
    b[..., 0] = 1.0  # every point of b at distance 1 from every point of a
    d = chamfer_distances(np.concatenate([a, b]), n_points=4)
    np.testing.assert_allclose(d, [[0, 2], [2, 0]])


def test_partial_spearman_removes_the_confounder():
    r = rng(5)
    z = r.normal(size=500)
    x, y = z + 0.1 * r.normal(size=500), z + 0.1 * r.normal(size=500)
    assert abs(partial_spearman(x, y, z)) < 0.2  # x and y agree only through z


def test_semantics_vs_geometry_separates_planted_spaces():
    import pandas as pd

    from analysis.alignment.shapes import make_shapes

    ds = make_shapes(40, seed=0, n_points=128)
    attr = attribute_distances(ds.attributes)
    # a "semantic" space: one-hot attributes; a "geometric" space: the flattened sorted point radii
    semantic = pd.get_dummies(ds.attributes[["family", "size", "aspect"]].astype(str)).to_numpy(float)
    geometric = np.sort(np.linalg.norm(ds.points, axis=2), axis=1)
    df = semantics_vs_geometry(ds.points, ds.attributes, {"sem": semantic, "geo": geometric}, n_points=64)
    sem, geo = df.set_index("space").loc["sem"], df.set_index("space").loc["geo"]
    assert sem.partial_attr > sem.partial_geom and geo.partial_geom > geo.partial_attr
    assert attr.shape == (40, 40) and (attr == attr.T).all()
