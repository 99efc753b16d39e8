"""Layer identification across nets (Kornblith et al. 2019's sanity check): for every layer of net A,
is the most similar layer of net B (argmax of a layer x layer CKA grid) the same layer?

The grid comes from :func:`analysis.similarity.similarity_grid` (tidy ``layer_a, layer_b, metric,
value``). Both directions count: A's layers looked up among B's (row argmax) and B's among A's
(column argmax).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(100, 8))
>>> acts = {"l1": x, "l2": np.tanh(x @ rng.normal(size=(8, 8))), "l3": rng.normal(size=(100, 8))}
>>> noisy = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in acts.items()}
>>> layer_identification(cka_grid(acts, noisy)).correct.tolist()
[True, True, True, True, True, True]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from jaxtyping import Float

from analysis.similarity import similarity_grid
from probes.errors import InputError

__all__ = ["cka_grid", "layer_identification"]


def cka_grid(
    acts_a: Mapping[str, Float[np.ndarray, "n d"]],
    acts_b: Mapping[str, Float[np.ndarray, "n d"]],
    *,
    metric: str = "linear_cka",
) -> pd.DataFrame:
    """Layer x layer similarity (default linear CKA) between two nets' ``{layer: [n, d]}`` activations.

    Both nets must share the layer names (for identification) and the n samples.
    """
    if not isinstance(acts_a, Mapping) or not isinstance(acts_b, Mapping):
        raise InputError("acts_a and acts_b must be dicts layer name -> [n, d] activations.")
    if list(acts_a) != list(acts_b):
        raise InputError(
            f"both nets need the same layers in the same order, got {list(acts_a)} and {list(acts_b)}."
        )
    return similarity_grid(dict(acts_a), dict(acts_b), metrics=metric)


def layer_identification(grid: pd.DataFrame, *, metric: str | None = None) -> pd.DataFrame:
    """For each layer, the best-matching layer of the other net in both directions.

    Returns columns ``direction`` ("a->b": A's layer found among B's; "b->a"), ``layer``, ``best``,
    ``value`` (the best similarity), ``same_layer_value`` and ``correct`` (``best == layer``). The
    accuracy is ``df.correct.mean()``. ``metric`` picks one metric when the grid holds several.
    """
    need = {"layer_a", "layer_b", "metric", "value"}
    if not isinstance(grid, pd.DataFrame) or not need <= set(grid.columns):
        raise InputError(f"grid must be a DataFrame with columns {sorted(need)} (from cka_grid).")
    metrics = list(dict.fromkeys(grid.metric))
    if metric is None:
        if len(metrics) != 1:
            raise InputError(f"the grid holds several metrics {metrics}; pick one with metric=.")
        metric = metrics[0]
    elif metric not in metrics:
        raise InputError(f"metric {metric!r} is not in the grid; it holds {metrics}.")
    m = grid[grid.metric == metric].pivot(index="layer_a", columns="layer_b", values="value")
    order = list(dict.fromkeys(grid.layer_a))
    m = m.reindex(index=order, columns=list(dict.fromkeys(grid.layer_b)))
    if list(m.index) != list(m.columns):
        raise InputError(
            f"layer identification needs the same layers on both axes, got {list(m.index)} and "
            f"{list(m.columns)}."
        )
    v = m.to_numpy()
    rows = []
    for direction, mat in (("a->b", v), ("b->a", v.T)):
        for i, layer in enumerate(order):
            j = int(np.argmax(mat[i]))
            rows.append((direction, layer, order[j], float(mat[i, j]), float(mat[i, i]), j == i))
    return pd.DataFrame(rows, columns=["direction", "layer", "best", "value", "same_layer_value", "correct"])
