"""The positional subspace: stacked write directions of the located heads, its effective dimension,
principal angles between heads, per-prompt coordinates, and crowding (decodability of list position
and the overlap of neighbouring positions against the model's accuracy there).

Coordinates are taken at END (each prompt's last token), where the movers read which item to copy; a
prompt's label is its answer's 0-based list ``position``. Pure maths on tensors and DataFrames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.linalg import subspace_angles
from scipy.stats import spearmanr
from torch import Tensor

from probes.errors import InputError

__all__ = [
    "coordinate_frame",
    "crowding",
    "crowding_correlation",
    "decodability",
    "effective_dimension",
    "head_angles",
    "subspace_basis",
]


def _unit_columns(V: Tensor) -> Tensor:
    if not isinstance(V, Tensor) or V.ndim != 2 or V.shape[1] < 1:
        raise InputError(f"write directions must be a tensor [d_model, m], got {getattr(V, 'shape', V)}.")
    n = V.double().norm(dim=0)
    if not torch.isfinite(V).all() or bool((n == 0).any()):
        raise InputError("write directions must be finite and non-zero.")
    return V.double() / n


def effective_dimension(V: Tensor) -> dict[str, float]:
    """Spectrum of the unit-normalised stacked directions ``V`` ``[d, m]``: ``k90``/``k95`` (directions
    holding 90 %/95 % of the energy), ``participation_ratio`` ``(Σσ²)²/Σσ⁴`` and the fractions.

    >>> V = torch.eye(6)[:, :3].repeat(1, 2)  # 3 directions, each twice
    >>> d = effective_dimension(V); d["k95"], round(d["participation_ratio"], 6)
    (3, 3.0)
    """
    s2 = torch.linalg.svdvals(_unit_columns(V)).pow(2)
    frac = (s2 / s2.sum()).cpu().numpy()
    cum = np.cumsum(frac)
    k = lambda q: int(np.searchsorted(cum, q - 1e-12) + 1)  # noqa: E731
    pr = float(s2.sum() ** 2 / s2.pow(2).sum())
    return {
        "m": V.shape[1],
        "k90": k(0.90),
        "k95": k(0.95),
        "participation_ratio": pr,
        "energy": frac.tolist(),
    }


def subspace_basis(V: Tensor, k: int | None = None, energy: float = 0.95) -> Tensor:
    """Orthonormal ``[d, k]`` basis of the top-``k`` left singular vectors of the unit columns of ``V``
    (``k=None``: the fewest holding ``energy`` of the energy). Float32."""
    U, s, _ = torch.linalg.svd(_unit_columns(V), full_matrices=False)
    if k is None:
        if not 0 < energy <= 1:
            raise InputError(f"energy must be in (0, 1], got {energy}.")
        cum = (s.pow(2).cumsum(0) / s.pow(2).sum()).cpu().numpy()
        k = int(np.searchsorted(cum, energy - 1e-12) + 1)
    if not (isinstance(k, int) and 1 <= k <= U.shape[1]):
        raise InputError(f"subspace dimension k must be 1..{U.shape[1]} (the stacked directions), got {k!r}.")
    return U[:, :k].float()


def head_angles(spaces: dict[str, Tensor]) -> pd.DataFrame:
    """Principal angles (degrees) between every pair of heads' write spaces (``name -> [d, m]``)."""
    names = list(spaces)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ang = np.degrees(subspace_angles(spaces[a].double().numpy(), spaces[b].double().numpy()))[::-1]
            rows.append({"head_a": a, "head_b": b, "min_angle": float(ang[0]), "max_angle": float(ang[-1]),
                         "angles": [float(x) for x in ang]})  # fmt: skip
    return pd.DataFrame(rows, columns=["head_a", "head_b", "min_angle", "max_angle", "angles"])


def coordinate_frame(
    x: Tensor, basis: Tensor, prompts: pd.DataFrame, correct: Sequence[bool]
) -> pd.DataFrame:
    """One row per prompt: ``n_items, position, correct`` and coordinates ``c0..c{k-1}`` of ``x`` ``[batch, d]``."""
    if x.shape[0] != len(prompts) or len(correct) != len(prompts):
        raise InputError(f"{x.shape[0]} activations, {len(correct)} scores for {len(prompts)} prompts.")
    c = (x.double() @ basis.double()).numpy()
    frame = pd.DataFrame(c, columns=[f"c{i}" for i in range(c.shape[1])])
    meta = prompts.reset_index(drop=True)[["n_items", "position"]].astype(int)
    return pd.concat([meta.assign(correct=np.asarray(correct, dtype=bool)), frame], axis=1)


def _coord_cols(coords: pd.DataFrame) -> list[str]:
    cols = [c for c in coords.columns if c.startswith("c") and c[1:].isdigit()]
    if not cols or not {"n_items", "position"} <= set(coords.columns):
        raise InputError("coords must come from coordinate_frame (n_items, position, c0, c1, ...).")
    return cols


def decodability(coords: pd.DataFrame, n_splits: int = 5, seed: int = 0) -> pd.DataFrame:
    """Held-out accuracy of a logistic regression decoding ``position`` from the coordinates, per N
    (stratified ``n_splits``-fold), next to chance ``1/N``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cols = _coord_cols(coords)
    rows = []
    for n, g in coords.groupby("n_items"):
        folds = min(n_splits, int(g["position"].value_counts().min()))
        if folds < 2:
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        acc = cross_val_score(clf, g[cols].to_numpy(), g["position"].to_numpy(), cv=cv)
        rows.append({"n_items": int(n), "n_prompts": len(g), "decode_accuracy": float(acc.mean()),
                     "chance": 1.0 / n, "folds": folds})  # fmt: skip
    return pd.DataFrame(rows)


def _crowding_cells(n: np.ndarray, pos: np.ndarray, C: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Rows ``(N, position, n_prompts, overlap, accuracy)`` for prompt arrays (see :func:`crowding`)."""
    rows = []
    for N in np.unique(n):
        sel = n == N
        p, c, a = pos[sel], C[sel], ok[sel]
        ps = np.unique(p)
        mu = np.stack([c[p == q].mean(0) for q in ps])
        var = float(((c - mu[np.searchsorted(ps, p)]) ** 2).mean()) or 1e-12
        for i, q in enumerate(ps):
            nb = [j for j in (i - 1, i + 1) if 0 <= j < len(ps) and abs(ps[j] - q) == 1]
            d2 = np.array([((mu[i] - mu[j]) ** 2).sum() for j in nb])
            overlap = float(np.exp(-d2 / (2 * var)).mean()) if nb else np.nan
            m = p == q
            rows.append((N, q, m.sum(), overlap, a[m].mean()))
    return np.array(rows, dtype=float)


def _arrays(coords: pd.DataFrame) -> tuple[np.ndarray, ...]:
    cols = _coord_cols(coords)
    ok = coords["correct"].to_numpy(dtype=float) if "correct" in coords else np.full(len(coords), np.nan)
    return coords["n_items"].to_numpy(), coords["position"].to_numpy(), coords[cols].to_numpy(float), ok


def crowding(coords: pd.DataFrame) -> pd.DataFrame:
    """Per (N, position): model accuracy and the overlap with neighbouring positions,
    ``mean_{q = p ± 1} exp(−‖μ_p − μ_q‖² / (2 σ²))`` (``σ²``: pooled within-position variance per
    coordinate at that N); 1 = the same place, 0 = far apart."""
    cells = _crowding_cells(*_arrays(coords))
    out = pd.DataFrame(cells, columns=["n_items", "position", "n_prompts", "overlap", "accuracy"])
    return out.astype({"n_items": int, "position": int, "n_prompts": int})


def _rho(cells: np.ndarray) -> tuple[float, float]:
    """Spearman ρ(overlap, accuracy) over cells, pooled and within N (per-N means removed)."""
    t = cells[~np.isnan(cells[:, 3]) & ~np.isnan(cells[:, 4])]
    if len(t) <= 2:
        return np.nan, np.nan
    pooled = spearmanr(t[:, 3], t[:, 4]).statistic
    dm = t.copy()
    for N in np.unique(t[:, 0]):
        m = t[:, 0] == N
        dm[m, 3:5] -= t[m, 3:5].mean(0)
    return float(pooled), float(spearmanr(dm[:, 3], dm[:, 4]).statistic)


def crowding_correlation(coords: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Spearman ρ between a position's overlap and the model's accuracy there, pooled over (N, position)
    cells and within N (per-N means removed), with percentile bootstrap 95 % intervals (prompts
    resampled within each (N, position) cell)."""
    rng = np.random.default_rng(seed)
    n, pos, C, ok = _arrays(coords)
    pooled, within = _rho(_crowding_cells(n, pos, C, ok))
    groups = list(coords.reset_index(drop=True).groupby(["n_items", "position"]).indices.values())
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, len(g)) for g in groups])
        boots.append(_rho(_crowding_cells(n[idx], pos[idx], C[idx], ok[idx])))
    b = np.asarray(boots, dtype=float)
    rows = []
    for j, (name, rho) in enumerate((("pooled", pooled), ("within_n", within))):
        lo, hi = np.nanpercentile(b[:, j], [2.5, 97.5])
        rows.append({"correlation": name, "spearman_rho": rho, "ci_low": float(lo), "ci_high": float(hi),
                     "n_cells": len(groups), "n_boot": n_boot})  # fmt: skip
    return pd.DataFrame(rows)
