"""Receiver-specific null for component scores, z-scores and top-channel tables.

A component's score ``‖Rᵀ v‖ / ‖R‖_F`` depends only on its unit write direction ``v`` and the
receiver, so the natural null is the distribution of that score for uniformly random unit
directions (Haar on the sphere) against the *same* receiver and mode. It is exact, cheap and
aware of the receiver's spectrum: ``E[CS²] = 1/d_model`` for any receiver, but the spread grows
when the receiver's reading energy is concentrated in few directions.

If the writing weights are centred (``HeadWeights.writing_centered``), every write direction is
orthogonal to the all-ones vector, and the null directions are drawn from that same
``(d_model − 1)``-dimensional subspace by default.

``z = (score − null mean) / null std`` per ``(receiver_layer, receiver_head, mode)``; ``p`` is the
one-sided empirical p-value ``(1 + #{null ≥ score}) / (n_samples + 1)``.

**Memory.** The null holds ``n_samples`` directions (``n × d_model``) and ``n_modes × n × n_layers ×
n_heads`` scores; :func:`null_memory_bytes` estimates the peak and :func:`receiver_null` refuses, before
allocating anything, a null that needs more than :data:`NULL_MEMORY_FRACTION` of the available memory
(``psutil``; without it a fixed :data:`NULL_MEMORY_FALLBACK` bytes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.channels.scores import MODES, _check_modes, check_mode, direction_scores
from probes.errors import InputError
from probes.head_weights import HeadWeights

__all__ = [
    "NULL_MEMORY_FALLBACK",
    "NULL_MEMORY_FRACTION",
    "ReceiverNull",
    "add_z",
    "check_null_memory",
    "null_memory_bytes",
    "random_unit_directions",
    "receiver_null",
    "top_channels",
]

_KEYS = ["receiver_layer", "receiver_head", "mode"]

NULL_MEMORY_FRACTION = 0.5
"""A null may use at most this fraction of the memory available when it is drawn."""

NULL_MEMORY_FALLBACK = 8 * 2**30
"""The limit in bytes where ``psutil`` is not installed to tell the available memory."""


def null_memory_bytes(n_samples: int, d_model: int, n_layers: int, n_heads: int, n_modes: int = 3) -> int:
    """Peak bytes of a null: float64 draws plus their float32 copy (``12 n d_model``) and, per score, a
    float32 sorted copy, a float32 stacked copy and the float64 copy the z/p tables read (16 bytes).

    >>> null_memory_bytes(2000, 576, 30, 9, 3) / 2**20  # SmolLM2, the default --n-null
    37.90283203125
    """
    return 12 * n_samples * d_model + 16 * n_modes * n_samples * n_layers * n_heads


def _available_bytes() -> tuple[int, str]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil ships with the dev environment
        return NULL_MEMORY_FALLBACK, "a fixed cap (psutil is not installed)"
    return int(psutil.virtual_memory().available), "available memory"


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_null_memory(n_samples: int, d_model: int, n_layers: int, n_heads: int, n_modes: int = 3) -> None:
    """Raise :class:`InputError` (naming ``--n-null``) if the null would need more than its memory budget."""
    need = null_memory_bytes(n_samples, d_model, n_layers, n_heads, n_modes)
    have, what = _available_bytes()
    budget = NULL_MEMORY_FRACTION * have
    if need <= budget:
        return
    fits = int(n_samples * budget / need)
    nice = max(2, 10 ** (len(str(fits)) - 1) * (fits // 10 ** (len(str(fits)) - 1)))
    raise InputError(
        f"--n-null (n_null) = {n_samples:,} random directions needs about {_gib(need)} of memory for this model "
        f"({n_layers} layers x {n_heads} heads, d_model {d_model}, {n_modes} mode(s)), more than "
        f"{NULL_MEMORY_FRACTION:.0%} of {what} ({_gib(have)}). Use --n-null {nice:,} or fewer "
        f"(2,000 is the default; 10,000 resolves p-values down to 1e-4)."
    )


def random_unit_directions(
    n: int, d_model: int, seed: int = 0, centered: bool = False, dtype: torch.dtype = torch.float32
) -> Float[Tensor, "n d_model"]:
    """``n`` Haar-random unit vectors (normalised Gaussians) from a fixed seed.

    ``centered=True``: uniform on the unit sphere of the mean-zero subspace (orthogonal to ones).

    >>> v = random_unit_directions(3, 5, seed=1, centered=True)
    >>> bool(torch.allclose(v.norm(dim=1), torch.ones(3))), bool(v.sum(1).abs().max() < 1e-6)
    (True, True)
    """
    if isinstance(n, bool) or not (isinstance(n, int) and n >= 2):
        raise InputError(
            f"the null needs at least 2 random directions (--n-null / n_null), got {n!r}; 2000-10000 is typical."
        )
    if not (isinstance(d_model, int) and d_model >= 2):
        raise InputError(f"d_model must be an integer >= 2, got {d_model!r}.")
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n, d_model, generator=g, dtype=torch.float64)
    if centered:
        x = x - x.mean(dim=1, keepdim=True)
    return (x / x.norm(dim=1, keepdim=True)).to(dtype)


@dataclass(frozen=True, eq=False)
class ReceiverNull:
    """Null scores of random unit write directions for every receiver head and mode.

    ``samples``: ``[n_modes, n_samples, n_layers, n_heads]``, sorted along ``n_samples``.
    """

    samples: Float[Tensor, "n_modes n_samples n_layers n_heads"]
    modes: tuple[str, ...]
    seed: int
    centered: bool

    @property
    def n_samples(self) -> int:
        return self.samples.shape[1]

    def table(self) -> pd.DataFrame:
        """One row per (receiver_layer, receiver_head, mode): ``null_mean, null_std, null_p99, n_samples``."""
        s = self.samples.double().cpu()
        mean, std = s.mean(1), s.std(1)
        p99 = torch.quantile(s, 0.99, dim=1)
        _, _, L, H = s.shape
        rl, rh = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
        frames = [
            pd.DataFrame(
                {
                    "receiver_layer": rl.ravel(),
                    "receiver_head": rh.ravel(),
                    "mode": m,
                    "null_mean": mean[i].numpy().ravel(),
                    "null_std": std[i].numpy().ravel(),
                    "null_p99": p99[i].numpy().ravel(),
                    "n_samples": self.n_samples,
                }
            )
            for i, m in enumerate(self.modes)
        ]
        return pd.concat(frames, ignore_index=True)


def receiver_null(
    weights: HeadWeights,
    n_samples: int = 10_000,
    seed: int = 0,
    modes: str | Iterable[str] = MODES,
    centered: bool | None = None,
    qk_offsets: Sequence[int] | None = None,
    batch_size: int = 2048,
) -> ReceiverNull:
    """Scores of ``n_samples`` random unit directions against every receiver head, per mode.

    ``centered=None`` follows ``weights.writing_centered``. The same directions (fixed ``seed``)
    are used for every receiver and mode. Use the same ``qk_offsets`` as for the scores.

    >>> w = HeadWeights.random(2, 2, 32, 4)
    >>> null = receiver_null(w, n_samples=500, modes="Q")
    >>> null.samples.shape, round(float(null.samples.pow(2).mean()) * 32, 1)  # E[CS²] = 1/d_model
    (torch.Size([1, 500, 2, 2]), 1.0)
    """
    modes = _check_modes(modes)
    centered = weights.writing_centered if centered is None else bool(centered)
    if isinstance(n_samples, int) and not isinstance(n_samples, bool) and n_samples >= 2:
        check_null_memory(n_samples, weights.d_model, weights.n_layers, weights.n_heads, len(modes))
    v = random_unit_directions(n_samples, weights.d_model, seed, centered, dtype=weights.W_Q.dtype)
    out = []
    for mode in modes:
        chunks = [
            direction_scores(v[i : i + batch_size], weights, mode, qk_offsets)
            for i in range(0, len(v), batch_size)
        ]
        out.append(torch.cat(chunks).sort(dim=0).values)
    return ReceiverNull(torch.stack(out), modes, int(seed), centered)


def add_z(df: pd.DataFrame, null: ReceiverNull) -> pd.DataFrame:
    """Copy of a :func:`~analysis.channels.scores.component_scores` table with ``null_mean``, ``null_std``, ``z`` and ``p``.

    ``z = (score − null_mean) / null_std`` for the row's (receiver, mode); ``p`` is the one-sided
    empirical p-value ``(1 + #{null ≥ score}) / (n + 1)``.

    >>> from analysis.channels.scores import component_scores
    >>> w = HeadWeights.random(2, 2, 16, 4)
    >>> df = add_z(component_scores(w, "Q"), receiver_null(w, 200, modes="Q"))
    >>> list(df.columns[-4:])
    ['null_mean', 'null_std', 'z', 'p']
    """
    missing = [c for c in ["score", *_KEYS] if c not in df.columns]
    if missing:
        raise InputError(f"add_z needs a component_scores table; columns {missing} are missing.")
    absent = sorted(set(df["mode"].unique()) - set(null.modes))
    if absent:
        raise InputError(
            f"the null has no samples for mode(s) {absent}; build it with receiver_null(weights, modes={list(MODES)})."
        )
    L, H = null.samples.shape[2:]
    rl, rh = df["receiver_layer"].to_numpy(), df["receiver_head"].to_numpy()
    if len(df) and (rl.min() < 0 or rl.max() >= L or rh.min() < 0 or rh.max() >= H):
        raise InputError(f"receiver indices in the table exceed the null's model ({L} layers x {H} heads).")
    out = df.drop(columns=[c for c in ("null_mean", "null_std", "z", "p") if c in df.columns]).copy()
    stats = null.table()[[*_KEYS, "null_mean", "null_std"]]
    out = out.merge(stats, on=_KEYS, how="left", sort=False)
    out.index = df.index
    std = out["null_std"].to_numpy()
    out["z"] = (out["score"].to_numpy() - out["null_mean"].to_numpy()) / np.where(std > 0, std, np.nan)
    p = np.full(len(out), np.nan)
    samples = null.samples.double().cpu().numpy()
    score = out["score"].to_numpy()
    mode_index = {m: i for i, m in enumerate(null.modes)}
    for (layer, head, mode), rows in out.reset_index(drop=True).groupby(_KEYS, sort=False).indices.items():
        ref = samples[mode_index[mode], :, layer, head]
        n_ge = len(ref) - np.searchsorted(ref, score[rows], side="left")
        p[rows] = (1.0 + n_ge) / (len(ref) + 1.0)
    out["p"] = p
    return out


def top_channels(
    df: pd.DataFrame, n: int = 20, mode: str | None = None, min_z: float | None = None
) -> pd.DataFrame:
    """The ``n`` strongest (component, receiver, mode) rows: by ``z`` when present, else by ``score``.

    ``mode``: keep only ``"Q"``, ``"K"`` or ``"V"``; ``min_z``: keep rows with ``z >= min_z`` (needs
    :func:`add_z` first).

    >>> df = pd.DataFrame({"mode": ["Q", "K", "Q"], "score": [0.1, 0.9, 0.5], "z": [1.0, 9.0, 6.0]})
    >>> top_channels(df, 2, mode="Q")["z"].tolist()
    [6.0, 1.0]
    >>> len(top_channels(df, 5, min_z=5))
    2
    """
    if not (isinstance(n, int) and n >= 1):
        raise InputError(f"n must be a positive integer (how many channels to list), got {n!r}.")
    if "score" not in df.columns:
        raise InputError("top_channels needs a component_scores table (no 'score' column).")
    out = df
    if mode is not None:
        out = out[out["mode"] == check_mode(mode)]
    if min_z is not None:
        if "z" not in out.columns:
            raise InputError("min_z needs z-scores: call add_z(df, receiver_null(weights)) first.")
        out = out[out["z"] >= min_z]
    key = "z" if "z" in out.columns else "score"
    return (
        out.sort_values(key, ascending=False, kind="stable", na_position="last")
        .head(n)
        .reset_index(drop=True)
    )
