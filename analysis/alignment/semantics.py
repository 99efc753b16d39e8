"""Semantics vs geometry: do distances in a space track the captions' attributes or the shapes' geometry?

For ``n`` shapes and every pair ``i < j`` three distances are compared:

* **attribute distance** - the number of captioned attributes (family, size, aspect, count, hole) on
  which the two captions differ (0-5; "not applicable" equals "not applicable");
* **geometric distance** - the symmetric Chamfer distance of the two point clouds as the encoders see
  them (posed, centred): ``mean_p min_q |p - q|^2 + mean_q min_p |q - p|^2`` on ``n_points`` points each;
* **embedding distance** - cosine distance ``1 - cos`` between the two rows of a space (centred).

For each space :func:`semantics_vs_geometry` reports Spearman correlations with attribute and Chamfer
distance, and **partial** Spearman correlations (Pearson on ranks, controlling for the other distance),
since attribute and Chamfer distances are themselves correlated. "Semantic" space: ``partial_attr >
partial_geom``; "geometric" space: the reverse (Hadgi et al.: the CCA subspace is semantic, the raw 3D
space geometric).

>>> import numpy as np
>>> partial_spearman(np.arange(10.0), np.arange(10.0) ** 2, np.zeros(10) + np.arange(10) % 2)
1.0
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from scipy.stats import rankdata

from analysis.arrays import as_array
from probes.errors import InputError

from .shapes import ATTRIBUTES

__all__ = [
    "attribute_distances",
    "chamfer_distances",
    "cosine_distances",
    "partial_spearman",
    "semantics_vs_geometry",
]


def chamfer_distances(
    points: Float[np.ndarray, "n m 3"], *, n_points: int = 128, seed: int = 0
) -> Float[np.ndarray, "n n"]:
    """Symmetric Chamfer distances ``[n, n]`` between clouds, each subsampled to ``n_points`` (seeded).

    >>> p = np.random.default_rng(0).normal(size=(3, 50, 3))
    >>> d = chamfer_distances(p, n_points=50)
    >>> bool(np.allclose(np.diag(d), 0) and np.allclose(d, d.T))
    True
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[2] != 3 or len(pts) < 2:
        raise InputError(f"points must be [n >= 2, m, 3], got shape {pts.shape}.")
    m = min(n_points, pts.shape[1])
    rng = np.random.default_rng([int(seed), 5])
    sub = np.stack([p[rng.choice(len(p), size=m, replace=False)] for p in pts])
    t = torch.from_numpy(sub)  # [n, m, 3]
    n = len(t)
    flat = t.reshape(n * m, 3)
    sq = (flat * flat).sum(1)  # [n * m]
    nn_mean = torch.empty(n, n, dtype=torch.float64)  # nn_mean[i, j] = mean_{p in i} min_{q in j} |p-q|^2
    for i in range(n):
        d2 = sq[i * m : (i + 1) * m, None] + sq[None, :] - 2.0 * t[i] @ flat.T  # [m, n * m]
        nn_mean[i] = d2.reshape(m, n, m).amin(dim=2).clamp_min(0.0).mean(dim=0)
    out = (nn_mean + nn_mean.T).numpy()
    np.fill_diagonal(out, 0.0)
    return out


def attribute_distances(attributes: pd.DataFrame) -> Float[np.ndarray, "n n"]:
    """Number of captioned attributes (:data:`~analysis.alignment.shapes.ATTRIBUTES`) on which pairs differ.

    >>> df = pd.DataFrame({"family": ["box", "box"], "size": ["small", "large"], "aspect": ["tall"] * 2,
    ...                    "count": [None, None], "hole": [True, False]})
    >>> attribute_distances(df).tolist()
    [[0.0, 2.0], [2.0, 0.0]]
    """
    missing = [a for a in ATTRIBUTES if a not in attributes.columns]
    if missing:
        raise InputError(f"attributes lacks columns {missing}; expected {list(ATTRIBUTES)}.")
    n = len(attributes)
    out = np.zeros((n, n))
    for a in ATTRIBUTES:
        codes = pd.Series(
            attributes[a].astype(object).where(attributes[a].notna(), "<na>").astype(str)
        ).to_numpy()
        out += codes[:, None] != codes[None, :]
    return out


def cosine_distances(x: Float[np.ndarray, "n d"]) -> Float[np.ndarray, "n n"]:
    """``1 - cos`` between rows of ``x`` after centring on the row mean."""
    a = as_array(x, "embeddings", min_samples=1)
    a = a - a.mean(0)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-300)
    return 1.0 - a @ a.T


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Spearman correlation of ``x`` and ``y`` controlling for ``z`` (partial Pearson on average ranks)."""
    rx, ry, rz = (rankdata(np.asarray(v, dtype=np.float64)) for v in (x, y, z))
    rxy, rxz, ryz = _pearson(rx, ry), _pearson(rx, rz), _pearson(ry, rz)
    den = np.sqrt(max(1 - rxz**2, 0.0) * max(1 - ryz**2, 0.0))
    return float((rxy - rxz * ryz) / den) if den > 0 else float("nan")


def semantics_vs_geometry(
    points: Float[np.ndarray, "n m 3"],
    attributes: pd.DataFrame,
    spaces: dict[str, np.ndarray],
    *,
    n_points: int = 128,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per space: ``rho_attr``, ``rho_geom``, ``partial_attr``, ``partial_geom``, ``n_pairs``.

    A first row ``space="attribute_vs_chamfer"`` gives the Spearman correlation of the two reference
    distances themselves (in ``rho_geom``).
    """
    n = len(points)
    if len(attributes) != n:
        raise InputError(f"attributes has {len(attributes)} rows but there are {n} point clouds.")
    iu = np.triu_indices(n, k=1)
    attr = attribute_distances(attributes.reset_index(drop=True))[iu]
    geom = chamfer_distances(points, n_points=n_points, seed=seed)[iu]
    rows = [
        {
            "space": "attribute_vs_chamfer",
            "rho_attr": 1.0,
            "rho_geom": _pearson(rankdata(attr), rankdata(geom)),
            "partial_attr": float("nan"),
            "partial_geom": float("nan"),
            "n_pairs": len(attr),
        }
    ]
    for name, emb in spaces.items():
        if len(emb) != n:
            raise InputError(f"space {name!r} has {len(emb)} rows but there are {n} point clouds.")
        e = cosine_distances(emb)[iu]
        re = rankdata(e)
        rows.append(
            {
                "space": name,
                "rho_attr": _pearson(re, rankdata(attr)),
                "rho_geom": _pearson(re, rankdata(geom)),
                "partial_attr": partial_spearman(e, attr, geom),
                "partial_geom": partial_spearman(e, geom, attr),
                "n_pairs": len(attr),
            }
        )
    return pd.DataFrame(rows)
