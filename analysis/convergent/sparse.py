"""Predicting net B's units at a layer from net A's: dense, sparse (lasso) and one-to-one maps.

Li et al. 2016 (§4) fit an L1-penalised linear map from all units of net A to each unit of net B and
sweep the penalty: if the error stays flat until the maps are very sparse, each unit is predictable
from one or a few units of the other net. Here every map is fitted on training samples and scored on
held-out samples. Inputs and targets are standardised with the training statistics; the error of one
target unit is its held-out **normalised squared error** ``sum (y - y_hat)^2 / sum (y - mean y)^2``
(= 1 - R^2; 0 is perfect, 1 is no better than the held-out mean), averaged over target units.

Rows of :func:`sparse_prediction` (``method``):

* ``dense``: ordinary least squares on all units of A;
* ``lasso``: scikit-learn ``Lasso(alpha)`` per target unit (objective
  ``||y - Xw||^2 / (2 n) + alpha ||w||_1`` on standardised data), one row per ``alpha``;
* ``one_to_one``: the unit's Hungarian partner in A (matched on training correlations), a
  univariate least-squares fit;
* ``best_single``: the single A unit with the largest training ``|corr|`` with it (many-to-one).

``nonzero`` is the mean number of non-zero weights per target unit.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = rng.normal(size=(400, 6))
>>> b = a[:, :3] @ rng.normal(size=(3, 4)) + 0.1 * rng.normal(size=(400, 4))
>>> df = sparse_prediction(a[:300], b[:300], a[300:], b[300:], alphas=[0.01])
>>> df.method.tolist()
['dense', 'lasso', 'one_to_one', 'best_single']
>>> bool(df.error.iloc[0] < 0.05), int(df.nonzero.iloc[0])
(True, 6)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float
from scipy.optimize import linear_sum_assignment

from analysis.arrays import check_int
from probes.errors import InputError

from .matching import _corr, live_units, unit_pair

__all__ = ["DEFAULT_ALPHAS", "lasso_map", "normalized_error", "sparse_prediction"]

DEFAULT_ALPHAS = (0.003, 0.01, 0.03, 0.1, 0.3)
"""Default lasso penalties (on standardised units)."""


def normalized_error(y: Float[np.ndarray, "n d"], y_hat: Float[np.ndarray, "n d"]) -> Float[np.ndarray, " d"]:
    """Per-column ``sum (y - y_hat)^2 / sum (y - mean y)^2`` (1 - R^2).

    >>> import numpy as np
    >>> y = np.array([[0.0], [1.0], [2.0]])
    >>> normalized_error(y, np.ones_like(y)).tolist(), normalized_error(y, y).tolist()
    ([1.0], [0.0])
    """
    sst = ((y - y.mean(0)) ** 2).sum(0)
    return ((y - y_hat) ** 2).sum(0) / np.where(sst > 0, sst, np.nan)


def standardize(
    x: Float[np.ndarray, "n d"], mean: np.ndarray | None = None, sd: np.ndarray | None = None
) -> tuple[Float[np.ndarray, "n d"], np.ndarray, np.ndarray]:
    """``(x - mean) / sd`` with column statistics of ``x`` unless given; returns ``(z, mean, sd)``."""
    if mean is None:
        mean = x.mean(axis=0)
    if sd is None:
        sd = x.std(axis=0)
    safe = np.where(sd > 0, sd, 1.0)
    return (x - mean) / safe, mean, sd


def lasso_map(
    a: Float[np.ndarray, "n d_a"], b: Float[np.ndarray, "n d_b"], alpha: float, *, max_iter: int = 5000
) -> Float[np.ndarray, "d_b d_a"]:
    """Lasso weights predicting each (standardised) unit of ``b`` from the (standardised) units of ``a``.

    Row j holds the weights of target unit j; dead units get all-zero rows/columns.

    >>> import numpy as np
    >>> a = np.random.default_rng(0).normal(size=(500, 4))
    >>> (lasso_map(a, a[:, [2]] + a[:, [3]], alpha=0.1) != 0).astype(int).tolist()
    [[0, 0, 1, 1]]
    """
    from sklearn.linear_model import Lasso

    alpha = _check_alphas([alpha])[0]
    x, y = unit_pair(a, b)
    la, lb = live_units(x), live_units(y)
    coef = np.zeros((y.shape[1], x.shape[1]))
    if la.any() and lb.any():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*did not converge.*")
            model = Lasso(alpha=alpha, max_iter=max_iter).fit(
                standardize(x[:, la])[0], standardize(y[:, lb])[0]
            )
        coef[np.ix_(lb, la)] = np.atleast_2d(model.coef_)
    return coef


def _check_alphas(alphas: Sequence[float]) -> list[float]:
    out = [float(a) for a in alphas]
    if not out or any(not np.isfinite(a) or a <= 0 for a in out):
        raise InputError(
            f"alphas must be a non-empty list of positive lasso penalties, got {list(alphas)!r}; "
            "the unpenalised fit is always reported as method 'dense'."
        )
    return out


def sparse_prediction(
    a_train: Float[np.ndarray, "n_train d_a"],
    b_train: Float[np.ndarray, "n_train d_b"],
    a_test: Float[np.ndarray, "n_test d_a"],
    b_test: Float[np.ndarray, "n_test d_b"],
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    max_iter: int = 5000,
    tol: float = 1e-4,
) -> pd.DataFrame:
    """Held-out error of dense, lasso, one-to-one and best-single maps from A's units to B's.

    Returns columns ``method, alpha, error, error_median, nonzero, n_targets`` (``alpha`` is NaN
    except for lasso rows). Units of A or B that are dead on the training samples are left out.
    """
    from sklearn.linear_model import Lasso, LinearRegression

    check_int(max_iter, "max_iter", 1)
    alphas = _check_alphas(alphas)
    xa, ya = unit_pair(a_train, b_train, names=("a_train", "b_train"))
    xb, yb = unit_pair(a_test, b_test, names=("a_test", "b_test"))
    if xa.shape[1] != xb.shape[1] or ya.shape[1] != yb.shape[1]:
        raise InputError(
            f"train and test must have the same units: a {xa.shape[1]} vs {xb.shape[1]}, "
            f"b {ya.shape[1]} vs {yb.shape[1]} columns."
        )
    la, lb = live_units(xa), live_units(ya)
    if not la.any() or not lb.any():
        raise InputError("every unit of a_train or b_train is constant (dead); nothing to predict.")
    xa, xb, ya, yb = xa[:, la], xb[:, la], ya[:, lb], yb[:, lb]
    za, mu, sd = standardize(xa)
    zb = standardize(xb, mu, sd)[0]
    ta, mu, sd = standardize(ya)
    tb = standardize(yb, mu, sd)[0]
    n_t = ta.shape[1]
    rows = []

    def add(method: str, alpha: float, pred: np.ndarray, nonzero: float) -> None:
        err = normalized_error(tb, pred)
        rows.append((method, alpha, float(np.nanmean(err)), float(np.nanmedian(err)), nonzero, n_t))

    dense = LinearRegression().fit(za, ta)
    add("dense", np.nan, dense.predict(zb), float(za.shape[1]))
    for alpha in alphas:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*did not converge.*")
            model = Lasso(alpha=alpha, max_iter=max_iter, tol=tol).fit(za, ta)
        coef = np.atleast_2d(model.coef_)
        add("lasso", alpha, model.predict(zb).reshape(tb.shape), float((coef != 0).sum(1).mean()))

    c = _corr(za, ta)  # [d_a, d_b] training correlations
    r, k = linear_sum_assignment(c, maximize=True)
    pred = np.full_like(tb, np.nan)
    pred[:, k] = zb[:, r] * c[r, k]  # standardised univariate least squares: slope = correlation
    keep = ~np.isnan(pred[0])
    err = normalized_error(tb[:, keep], pred[:, keep])
    rows.append(
        ("one_to_one", np.nan, float(np.nanmean(err)), float(np.nanmedian(err)), 1.0, int(keep.sum()))
    )
    best = np.abs(c).argmax(axis=0)
    add("best_single", np.nan, zb[:, best] * c[best, np.arange(n_t)], 1.0)
    return pd.DataFrame(rows, columns=["method", "alpha", "error", "error_median", "nonzero", "n_targets"])
