"""Cross-checks against rsatoolbox (reference note §5.1 item 5), to 1e-6 or better."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.similarity import compare_rdms, linear_cka, procrustes_similarity, rdm, rsa

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.rdm import calc_rdm, compare  # noqa: E402


def _reps(seed: int = 0, n: int = 30):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 7))
    y = np.tanh(x[:, :5] @ rng.normal(size=(5, 5))) + 0.4 * rng.normal(size=(n, 5))
    return x, y


def _square(r) -> np.ndarray:
    return r.get_matrices()[0]


@pytest.mark.parametrize("method,theirs", [("euclidean", "euclidean"), ("correlation", "correlation")])
def test_rdms_match(method, theirs):
    x, _ = _reps()
    ref = _square(calc_rdm(Dataset(x), method=theirs))
    if method == "euclidean":  # rsatoolbox: squared Euclidean distance divided by the number of channels
        ours = rdm(x, "sqeuclidean").numpy() / x.shape[1]
    else:
        ours = rdm(x, "correlation").numpy()
    assert np.allclose(ours, ref, atol=1e-10)


@pytest.mark.parametrize("ours,theirs", [("spearman", "spearman"), ("pearson", "corr"), ("kendall", "tau-b")])
def test_rdm_comparisons_match(ours, theirs):
    x, y = _reps(1)
    ra, rb = calc_rdm(Dataset(x), method="correlation"), calc_rdm(Dataset(y), method="correlation")
    ref = float(compare(ra, rb, method=theirs)[0, 0])
    assert rsa(x, y, method=ours) == pytest.approx(ref, abs=1e-10)
    assert compare_rdms(_square(ra), _square(rb), ours) == pytest.approx(ref, abs=1e-10)


def test_bures_similarity_is_procrustes_similarity():
    """rsatoolbox's Bures similarity of Euclidean RDMs = NBS = nuclear norm of X~^T Y~."""
    x, y = _reps(2)
    ra, rb = calc_rdm(Dataset(x), method="euclidean"), calc_rdm(Dataset(y), method="euclidean")
    ref = float(compare(ra, rb, method="bures")[0, 0])
    assert procrustes_similarity(x, y) == pytest.approx(ref, abs=1e-6)


def test_linear_cka_is_cosine_of_double_centred_grams_from_rdms():
    x, y = _reps(3)
    grams = []
    for m in (x, y):
        d = _square(calc_rdm(Dataset(m), method="euclidean")) * m.shape[1]  # undo the 1/channels scaling
        h = np.eye(len(d)) - 1.0 / len(d)
        grams.append(-0.5 * h @ d @ h)  # = centred linear Gram
    a, b = grams
    cosine = (a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b))
    assert linear_cka(x, y) == pytest.approx(cosine, abs=1e-12)
