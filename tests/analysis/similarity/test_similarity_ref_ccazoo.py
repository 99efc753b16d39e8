"""Cross-checks against cca-zoo's closed-form CCA and ridge CCA (reference note §5.1 item 6), to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.similarity import canonical_correlations

cca_zoo_linear = pytest.importorskip("cca_zoo.linear")


def _views(seed: int = 0, n: int = 150, dx: int = 6, dy: int = 4):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    x = z @ rng.normal(size=(3, dx)) + rng.normal(size=(n, dx))
    y = z @ rng.normal(size=(3, dy)) + rng.normal(size=(n, dy))
    return x, y


def _their_correlations(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    zx, zy = model.fit_transform([x, y])
    return np.array([abs(np.corrcoef(zx[:, i], zy[:, i])[0, 1]) for i in range(zx.shape[1])])


def test_cca_matches_cca_zoo():
    x, y = _views()
    ours = canonical_correlations(x, y)
    theirs = _their_correlations(cca_zoo_linear.CCA(n_components=4), x, y)
    assert np.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("reg", [0.1, 0.5])
def test_ridge_cca_matches_cca_zoo(reg):
    x, y = _views(1)
    ours = canonical_correlations(x, y, reg=reg)
    theirs = _their_correlations(cca_zoo_linear.RidgeCCA(n_components=4, shrinkage=reg), x, y)
    assert np.allclose(ours, theirs, atol=1e-6)


def test_ridge_cca_with_fewer_samples_than_features_matches_cca_zoo():
    x, y = _views(2, n=20, dx=30, dy=25)
    ours = canonical_correlations(x, y, reg=0.3)
    theirs = _their_correlations(cca_zoo_linear.RidgeCCA(n_components=len(ours), shrinkage=0.3), x, y)
    assert np.allclose(ours, theirs, atol=1e-6)
