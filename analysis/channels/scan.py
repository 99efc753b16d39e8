"""A whole-model channel scan: component scores for every sender component × later receiver × mode,
z-scored against the receiver-specific null, plus a head-level summary for the dashboard grid.

The scan is weight-only maths on the :class:`~probes.head_weights.HeadWeights` it is given: folding the
norm gains or centring the writing weights is decided by whoever reads them
(:func:`probes.weights.head_weights`, ``fold_ln`` and ``center_writing``).

RoPE treatment (our packaged models are rotary): by default the static QK form is taken without
rotation, i.e. at relative offset 0; ``qk_offsets`` averages it over the given offsets instead
(exact for that set). V composition does not involve positions and is exact either way.

>>> from probes.head_weights import HeadWeights
>>> df = scan_channels(HeadWeights.random(2, 2, 16, 4), ScanConfig(modes="QV", n_null=200))
>>> sorted(df["mode"].unique()), bool(df["z"].notna().all())
(['Q', 'V'], True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from analysis.channels.null import add_z, check_null_memory, receiver_null
from analysis.channels.scores import component_scores
from probes.config import Config
from probes.head_weights import HeadWeights


class ScanConfig(Config):
    """What a scan scores and how its null is drawn (the weights arrive already folded or not)."""

    modes: str = "QKV"  # which composition modes to score (any of Q, K, V)
    n_null: int = Field(2000, ge=2)  # random unit write directions per receiver for the null (--n-null)
    seed: int = 0  # seed of the null directions
    qk_offsets: tuple[int, ...] | None = None  # RoPE: average QK over these offsets (None: offset 0)


def scan_channels(weights: HeadWeights, config: ScanConfig | None = None) -> pd.DataFrame:
    """Tidy component-level table with ``z`` and ``p`` (compact dtypes: int16 indices, float32 values).

    Columns: ``sender_layer, sender_head, component, singular_value, receiver_layer, receiver_head, mode,
    score, z, p``.
    """
    config = ScanConfig() if config is None else config
    offsets = list(config.qk_offsets) if config.qk_offsets else None
    check_null_memory(
        config.n_null, weights.d_model, weights.n_layers, weights.n_heads, len(set(config.modes))
    )
    df = component_scores(weights, config.modes, qk_offsets=offsets)
    null = receiver_null(weights, config.n_null, seed=config.seed, modes=config.modes, qk_offsets=offsets)
    df = add_z(df, null).drop(columns=["null_mean", "null_std"])
    ints = ["sender_layer", "sender_head", "component", "receiver_layer", "receiver_head"]
    return df.astype(
        {
            **dict.fromkeys(ints, np.int16),
            "singular_value": np.float32,
            "score": np.float32,
            "z": np.float32,
            "p": np.float32,
            "mode": "category",
        }
    )


def head_pair_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Strongest component per (sender head, receiver head, mode): the head×head grid the app draws."""
    idx = df.groupby(
        ["mode", "sender_layer", "sender_head", "receiver_layer", "receiver_head"], observed=True
    )["z"].idxmax()
    return df.loc[idx.to_numpy()].reset_index(drop=True)
