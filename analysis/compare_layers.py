"""Layer x layer representation similarity between two language models on the same prompts.

Each prompt is run through both models (:func:`probes.capture.capture`, sites ``resid_post.*`` by
default) and reduced to one vector per layer by a stated pooling:

* ``"last"``: the residual stream at the prompt's last token (with the chat template on, the last
  token of the generation prompt, i.e. where the model is about to answer);
* ``"mean"``: the mean over the prompt's real tokens (padding excluded using ``lengths``; template and
  special tokens included). Note that the first token's residual often has a huge norm in trained
  models (attention sink) and can dominate a mean.

Each model then gives ``[n_prompts, d_model]`` per layer, and every layer of model A is compared with
every layer of model B by :func:`analysis.similarity.similarity_grid` (linear CKA by default; widths
and depths may differ). Biased linear CKA is inflated when ``d_model`` is not much smaller than the
number of prompts (about d / (n + d) on unrelated data); pass ``metrics="debiased_cka"`` for small n.
Fewer than :data:`~analysis.similarity.MIN_CKA_SAMPLES_HARD` (4) prompts are refused and fewer than
:data:`~analysis.similarity.MIN_CKA_SAMPLES` (32) warn with a biased CKA metric
(:func:`check_prompt_count`, which the CLI calls before loading any model).

>>> from probes.testing import tiny_handle
>>> h = tiny_handle(seed=0)
>>> prompts = ["the cat sat", "a dog", "Mary gave the ball to John", "one two three"]
>>> res = compare_layers(h, h, prompts, metrics="debiased_cka", progress=False)
>>> res.grid[res.grid.layer_a == res.grid.layer_b].value.round(6).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.similarity import METRICS, check_cka_samples, similarity_grid, similarity_grid_figure
from probes.capture import Activations, capture
from probes.errors import InputError
from probes.handle import ModelHandle

__all__ = [
    "DEFAULT_PROMPTS",
    "POOLINGS",
    "LayerComparison",
    "best_matches",
    "check_prompt_count",
    "compare_layers",
    "pool_activations",
]

POOLINGS = ("last", "mean")

DEFAULT_PROMPTS = [
    "Write a short shopping list for a week of healthy dinners.",
    "How do I get a red wine stain out of a white shirt?",
    "Give me three ideas for a rainy Sunday afternoon with kids.",
    "Explain how to boil an egg so the yolk stays soft.",
    "Draft a polite email asking my landlord to fix the heating.",
    "What should I pack for a two-day hiking trip?",
    "Suggest a simple stretching routine for the morning.",
    "How often should I water a cactus?",
    "Summarise the rules of chess in three sentences.",
    "Plan a cheap birthday party for a ten-year-old.",
    "Translate 'where is the train station' into French.",
    "Write a thank-you note to a neighbour who fed my cat.",
    "How do I sort laundry before washing it?",
    "Recommend a good way to learn to touch type.",
    "What is a quick vegetarian lunch I can make in ten minutes?",
    "Help me write a reminder to pay the electricity bill.",
    "Explain how to change a flat bicycle tyre.",
    "Give me tips for sleeping better at night.",
    "Write a two-line poem about autumn leaves.",
    "How can I keep my houseplants alive while on holiday?",
    "List five things to check before a long car drive.",
    "What is the best way to store fresh herbs?",
    "Help me make a weekly cleaning schedule for a small flat.",
    "Explain compound interest with a simple example.",
    "Suggest a name for a friendly grey kitten.",
    "How do I politely decline a meeting invitation?",
    "Write a short packing checklist for a beach day.",
    "What are some easy ways to save money on groceries?",
    "Describe how to make a cup of pour-over coffee.",
    "Give me a ten-minute workout I can do at my desk.",
    "How do I remove rust from a kitchen knife?",
    "Write a short bedtime story about a brave snail.",
    "What should I do if my phone gets wet?",
    "Help me plan a picnic for four people.",
    "Explain why the sky looks blue during the day.",
    "How can I start a small vegetable garden on a balcony?",
    "Write a friendly message inviting friends to a board game night.",
    "How long should I rest pizza dough before baking?",
    "Give me a checklist for moving to a new apartment.",
    "What is a good routine for studying for an exam?",
]
"""Built-in everyday instructions (40), the default prompts of ``sublens compare layers``."""


@dataclass
class LayerComparison:
    """Result of :func:`compare_layers`.

    ``grid``: tidy ``layer_a, layer_b, metric, value`` plus ``index_a, index_b`` (layer numbers) and
    ``depth_a, depth_b`` (relative depth in [0, 1]); ``figure``: its plotly heatmap; ``pooled_a`` /
    ``pooled_b``: ``{site: [n_prompts, d_model]}`` pooled activations.
    """

    grid: pd.DataFrame
    figure: go.Figure
    pooled_a: dict[str, Tensor]
    pooled_b: dict[str, Tensor]
    pooling: str
    model_a: str
    model_b: str
    n_prompts: int


def pool_activations(acts: Activations, pooling: str) -> dict[str, Float[Tensor, "batch d"]]:
    """One ``[batch, d]`` matrix per site from captured activations.

    ``"last"`` needs ``mode="last"`` captures (returned as is) or ``mode="all"`` (the token at
    ``lengths - 1``); ``"mean"`` needs ``mode="all"`` and averages positions ``< lengths``.

    >>> import torch
    >>> from probes.capture import Activations
    >>> x = torch.tensor([[[1.0], [3.0], [0.0]], [[2.0], [0.0], [0.0]]])
    >>> a = Activations({"s": x}, torch.tensor([2, 1]), ["p", "q"], "all", "m")
    >>> pool_activations(a, "mean")["s"].tolist(), pool_activations(a, "last")["s"].tolist()
    ([[2.0], [2.0]], [[3.0], [2.0]])
    """
    if pooling not in POOLINGS:
        raise InputError(f"unknown pooling {pooling!r}; choose 'last' or 'mean'.")
    out = {}
    lengths = acts.lengths.long()
    for site, x in acts.acts.items():
        if acts.mode == "last":
            if pooling == "mean":
                raise InputError("mean pooling needs activations captured with mode='all'.")
            out[site] = x
            continue
        if x.ndim != 3:
            raise InputError(
                f"site {site}: pooling needs [batch, pos, d] activations, got shape {tuple(x.shape)}; "
                "use a residual/attn_out/mlp_out site."
            )
        if pooling == "last":
            out[site] = x[torch.arange(x.shape[0]), lengths - 1]
        else:
            mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
            out[site] = (x * mask[..., None]).sum(1) / lengths[:, None].to(x.dtype)
    return out


BIASED_CKA_METRICS = ("linear_cka", "rbf_cka")
"""Metrics of :data:`~analysis.similarity.METRICS` that use the biased HSIC (inflated at small n)."""


def _metric_names(metrics: str | Sequence[str]) -> list[str]:
    """``metrics`` as a list of known names (checked before any model runs)."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise InputError(f"no metrics given; choose from {', '.join(sorted(METRICS))} (--metrics).")
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise InputError(
            f"unknown metric {bad[0]!r}; choose from {', '.join(sorted(METRICS))} (--metrics, comma-separated)."
        )
    return names


def check_prompt_count(n_prompts: int, metrics: str | Sequence[str] = "linear_cka") -> None:
    """Refuse too few prompts for a layer comparison and warn where biased CKA would read high.

    Applies :func:`~analysis.similarity.check_cka_samples` (hard minimum 4 prompts for every metric; the
    small-n warning only when a biased CKA metric is among ``metrics``). Call it before loading models.

    >>> check_prompt_count(40, ["linear_cka"])
    >>> check_prompt_count(3, "debiased_cka")
    Traceback (most recent call last):
    probes.errors.InputError: 3 prompts are too few for CKA: below 4 samples it is degenerate (with 2 it is 1.0 for any inputs, with 3 unrelated inputs score 0.4-1.0). Use at least 32 prompts.
    """
    names = _metric_names(metrics)
    check_cka_samples(n_prompts, "prompts", debiased=not any(m in BIASED_CKA_METRICS for m in names))


def _capture(handle: ModelHandle, prompts: list[str], sites, pooling: str, **kw) -> dict[str, Tensor]:
    acts = capture(handle, prompts, sites, mode="last" if pooling == "last" else "all", **kw)
    return pool_activations(acts, pooling)


def _index(site: str) -> int:
    return int(site.rpartition(".")[2])


def compare_layers(
    handle_a: ModelHandle,
    handle_b: ModelHandle,
    prompts: Sequence[str],
    *,
    pooling: str = "last",
    metrics: str | Sequence[str] = "linear_cka",
    sites: str | list[str] = "resid_post.*",
    chat: bool = True,
    backend: str = "tl",
    batch_size: int = 8,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> LayerComparison:
    """Layer x layer similarity of two models' pooled activations on the same prompts (module doc).

    ``handle_b`` may be ``handle_a`` itself (captured once; the diagonal is then exactly 1 for CKA).
    ``metrics``: names from :data:`analysis.similarity.METRICS`. ``chat``, ``backend``,
    ``batch_size``, ``dtype`` go to :func:`probes.capture.capture`; similarity is computed in float64.
    """
    if pooling not in POOLINGS:
        raise InputError(f"unknown pooling {pooling!r}; choose 'last' or 'mean'.")
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise InputError("prompts must be a list of strings, not a single string.")
    prompts = list(prompts)
    if not prompts:
        raise InputError(
            "prompts is empty; pass at least 32 prompts (e.g. analysis.compare_layers.DEFAULT_PROMPTS)."
        )
    check_prompt_count(len(prompts), metrics)
    for h, name in ((handle_a, "handle_a"), (handle_b, "handle_b")):
        if not isinstance(h, ModelHandle):
            raise InputError(
                f"{name} must be a ModelHandle (probes.loading.load_model), got {type(h).__name__}."
            )
    kw = {"chat": chat, "backend": backend, "batch_size": batch_size, "dtype": dtype, "progress": progress}
    pooled_a = _capture(handle_a, prompts, sites, pooling, **kw)
    pooled_b = pooled_a if handle_b is handle_a else _capture(handle_b, prompts, sites, pooling, **kw)
    grid = similarity_grid(pooled_a, pooled_b, metrics=metrics)
    n_a, n_b = handle_a.info.n_layers, handle_b.info.n_layers
    ia = grid.layer_a.map(_index)
    ib = grid.layer_b.map(_index)
    grid = grid.assign(index_a=ia, index_b=ib, depth_a=ia / max(n_a - 1, 1), depth_b=ib / max(n_b - 1, 1))
    title = f"{handle_a.name} vs {handle_b.name}: {pooling}-token pooling, {len(prompts)} prompts"
    fig = similarity_grid_figure(grid, title=title)
    fig.update_xaxes(title_text=f"layer of {handle_b.name}")
    fig.update_yaxes(title_text=f"layer of {handle_a.name}", col=1)
    return LayerComparison(
        grid=grid,
        figure=fig,
        pooled_a=pooled_a,
        pooled_b=pooled_b,
        pooling=pooling,
        model_a=handle_a.name,
        model_b=handle_b.name,
        n_prompts=len(prompts),
    )


def best_matches(grid: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """For each layer of model A, the most similar layer of model B: ``layer_a, best_b, value,
    depth_a, depth_b, diagonal`` (the value at the same index, NaN if B has no such layer).

    >>> import pandas as pd
    >>> g = pd.DataFrame({"layer_a": ["r.0", "r.0", "r.1", "r.1"], "layer_b": ["r.0", "r.1"] * 2,
    ...                   "metric": "m", "value": [0.9, 0.2, 0.3, 0.8]})
    >>> best_matches(g).best_b.tolist()
    ['r.0', 'r.1']
    """
    need = {"layer_a", "layer_b", "metric", "value"}
    if not isinstance(grid, pd.DataFrame) or not need <= set(grid.columns) or grid.empty:
        raise InputError(f"grid must be a non-empty DataFrame with columns {sorted(need)}.")
    metrics = list(dict.fromkeys(grid.metric))
    metric = metric or metrics[0]
    if metric not in metrics:
        raise InputError(f"metric {metric!r} is not in the grid; it holds {metrics}.")
    g = grid[grid.metric == metric]
    rows = []
    for layer, sub in g.groupby("layer_a", sort=False):
        best = sub.loc[sub.value.idxmax()]
        same = sub[sub.layer_b.map(_index) == _index(str(layer))].value
        rows.append(
            {
                "layer_a": layer,
                "best_b": best.layer_b,
                "value": float(best.value),
                "depth_a": float(best.get("depth_a", np.nan)),
                "depth_b": float(best.get("depth_b", np.nan)),
                "diagonal": float(same.iloc[0]) if len(same) else np.nan,
            }
        )
    return pd.DataFrame(rows)
