"""``run_alignment``: the 3D <-> text alignment experiment of Hadgi et al. on procedural shapes.

One pool of ``max(n_anchors) + n_query`` captioned shapes (``eval`` split, :func:`make_shapes`) is
encoded once per encoder. For every seed (seeded disjoint anchor / query split and candidate shuffle),
every anchor count and every method, the query shapes and query captions are scored against each other
and evaluated with top-1/top-5 retrieval in both directions and Hungarian matching
(:mod:`analysis.alignment.retrieval`). Subspace methods fit one CCA per (seed, anchor count) at the
largest ``d`` and use its leading ``d`` directions for each ``d`` of the sweep (canonical directions are
nested). The ``*_label`` columns count a hit when the retrieved item has the same captioned attributes
(:func:`~analysis.alignment.shapes.attribute_key`), since several queries may share a caption meaning.

>>> cfg = AlignmentConfig(encoders_text=["tfidf"], n_anchors=[60], n_query=20, dims=[2, 4],
...                       seeds=[0], n_semantic=0, n_points=128)
>>> df = run_alignment(cfg)
>>> sorted(df.method.unique())
['affine', 'cca', 'cca_affine', 'cca_local_cka', 'local_cka']
>>> len(df)
8
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator

from probes.config import Config
from probes.errors import InputError

from .align import FULL_METHODS, METHODS, SUBSPACE_METHODS, alignment_scores, fit_cca
from .encoders import ENCODERS_3D, ENCODERS_TEXT, encode_captions, encode_clouds
from .retrieval import caption_oracle_top1, label_chance, retrieval_metrics
from .shapes import FAMILIES, anchor_query_split, make_shapes

__all__ = [
    "AlignmentConfig",
    "SkippedDimsWarning",
    "AlignmentResults",
    "load_config",
    "run_alignment",
    "run_experiment",
    "summary_table",
]

Progress = Callable[[int, int, str], None]
"""``progress(done, total, message)``, called after each step."""


class SkippedDimsWarning(UserWarning):
    """Some subspace dimensions of the sweep could not be evaluated for some encoder pair or anchor count."""


METRIC_COLUMNS = ("t2s_top1", "t2s_top5", "s2t_top1", "s2t_top5", "matching")


class AlignmentConfig(Config):
    """Settings of :func:`run_alignment` (``sublens align run CONFIG.toml`` maps its keys onto these)."""

    seed: int = 0  # seed of the shape pool (the eval split)
    seeds: tuple[int, ...] = (0, 1, 2)  # split + candidate-shuffle seeds
    encoders_3d: tuple[str, ...] = ("pointnet",)  # of ENCODERS_3D
    encoders_text: tuple[str, ...] = ("minilm",)  # of ENCODERS_TEXT
    n_anchors: tuple[int, ...] = (1000, 4000, 16000)  # anchor-count sweep
    n_query: int = Field(500, ge=5)  # query pairs (shapes x captions to match / retrieve; >= 5 for top-5)
    dims: tuple[int, ...] = (4, 8, 16, 32, 64, 128)  # CCA subspace sweep
    methods: tuple[str, ...] = METHODS  # of align.METHODS
    n_points: int = Field(1024, ge=1)  # points per cloud
    families: tuple[str, ...] | None = None  # shape families (None: all)
    cca_reg: float = Field(
        1e-2, ge=0, allow_inf_nan=False
    )  # CCA ridge, relative to the mean covariance eigenvalue
    ridge: float = Field(
        1e-3, ge=0, allow_inf_nan=False
    )  # affine-map ridge, relative (0: plain least squares)
    n_semantic: int = Field(
        200, ge=0
    )  # query shapes for the semantics-vs-geometry check (0: skip; at most n_query)
    semantic_d: int | None = None  # subspace dimension of that check (None: best d for cca_affine)
    pointnet_weights: str | None = None  # stem of in-house PointNet weights (None: committed ones)
    modelnet_checkpoint: str | None = None  # ModelNet40 PointNet checkpoint (None: shared default)
    lm_model: str = "smollm2-135m-instruct"  # packaged LM of the 'smollm2' text encoder
    lm_layer: int | None = None  # its resid_post layer (None: middle)
    tfidf_dim: int = Field(128, ge=1)  # width of the 'tfidf' text encoder
    threads: int = Field(1, ge=1)  # torch threads during the run

    @field_validator("seeds", "n_anchors", "dims")
    @classmethod
    def _sweep(cls, values: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        """Sorted distinct values, each at least the field's minimum."""
        lo = {"seeds": 0, "n_anchors": 3, "dims": 1}[info.field_name]
        if not values:
            raise ValueError(f"must be a non-empty list of integers >= {lo}.")
        bad = [v for v in values if v < lo]
        if bad:
            raise ValueError(f"must hold integers >= {lo}, got {bad}.")
        return tuple(sorted(set(values)))

    @field_validator("encoders_3d", "encoders_text", "methods", "families")
    @classmethod
    def _known(cls, values: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        """Names from the field's vocabulary (``families``: None means all)."""
        allowed = {
            "encoders_3d": ENCODERS_3D,
            "encoders_text": ENCODERS_TEXT,
            "methods": METHODS,
            "families": tuple(FAMILIES),
        }[info.field_name]
        if values is None:
            return values
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise ValueError(f"unknown {bad or '(empty)'}; choose from {', '.join(allowed)}.")
        return values

    @field_validator("n_semantic")
    @classmethod
    def _semantic(cls, v: int) -> int:
        if 0 < v < 3:
            raise ValueError(f"must be 0 (skip) or >= 3, got {v}.")
        return v

    @model_validator(mode="after")
    def _dims_fit_anchors(self) -> AlignmentConfig:
        """A subspace dimension must fit the largest anchor set: ``d <= max(n_anchors) - 1``."""
        upper = max(self.n_anchors) - 1
        too_big = [d for d in self.dims if d > upper]
        if too_big and any(m in SUBSPACE_METHODS for m in self.methods):
            raise ValueError(
                f"dims: d = {too_big[0]} is larger than any anchor set supports: CCA on n anchors has at most "
                f"n - 1 = {upper} directions (largest n_anchors = {upper + 1}). Use dims <= {upper}, or more anchors."
            )
        return self

    @property
    def n_pool(self) -> int:
        """Shapes generated: the largest anchor count plus the queries."""
        return max(self.n_anchors) + self.n_query


def load_config(path: str | Path) -> AlignmentConfig:
    """Read an :class:`AlignmentConfig` from a TOML file (top-level keys = field names).

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "c.toml")
    >>> _ = open(f, "w").write("n_query = 50\\nn_anchors = [200, 100]\\n")
    >>> load_config(f).n_anchors
    (100, 200)
    """
    return AlignmentConfig.from_toml(path)


@dataclass
class AlignmentResults:
    """Tables of one run: ``results`` (one row per encoders x seed x anchors x method x d), ``diagnostics``
    (raw linear CKA and chance levels), ``semantics`` (semantics vs geometry), an example shape."""

    results: pd.DataFrame
    diagnostics: pd.DataFrame
    semantics: pd.DataFrame
    example_points: np.ndarray
    example_caption: str
    seconds: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"results": self.results, "diagnostics": self.diagnostics, "semantics": self.semantics}


def summary_table(results: pd.DataFrame, metrics: tuple[str, ...] = METRIC_COLUMNS) -> pd.DataFrame:
    """Mean and sd over seeds of each metric, per encoders x method x anchors x d (``d = 0``: full space).

    >>> df = pd.DataFrame({"encoder_3d": "p", "encoder_text": "t", "method": "affine", "n_anchors": 10,
    ...                    "d": None, "seed": [0, 1], "matching": [0.1, 0.3]})
    >>> summary_table(df, ("matching",))[["matching_mean", "matching_sd"]].round(4).values.tolist()
    [[0.2, 0.1414]]
    """
    keys = ["encoder_3d", "encoder_text", "method", "n_anchors", "d"]
    df = results.assign(d=results["d"].fillna(0).astype(int))
    g = df.groupby(keys, sort=False)
    out = g.size().rename("n_seeds").reset_index()
    for m in metrics:
        out[f"{m}_mean"] = g[m].mean().to_numpy()
        out[f"{m}_sd"] = g[m].std().fillna(0.0).to_numpy()
    return out


def _encode(
    cfg: AlignmentConfig, points: np.ndarray, captions: list[str], progress: Progress | None
) -> tuple[dict, dict]:
    names = [*cfg.encoders_3d, *cfg.encoders_text]
    xs, ys = {}, {}
    for i, name in enumerate(names):
        if progress:
            progress(
                i,
                len(names),
                f"encoding {len(points)} {'shapes' if name in cfg.encoders_3d else 'captions'} with {name}",
            )
        if name in cfg.encoders_3d:
            xs[name] = encode_clouds(
                name,
                points,
                pointnet_weights=cfg.pointnet_weights,
                modelnet_checkpoint=cfg.modelnet_checkpoint,
            )
        else:
            ys[name] = encode_captions(
                name, captions, lm_model=cfg.lm_model, lm_layer=cfg.lm_layer, dim=cfg.tfidf_dim
            )
    to_np = lambda d: {k: v.double().numpy() for k, v in d.items()}  # noqa: E731
    return to_np(xs), to_np(ys)


def run_experiment(
    config: AlignmentConfig | None = None,
    *,
    progress: Progress | None = None,
    features: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None,
) -> AlignmentResults:
    """Generate, encode, align and evaluate; see the module docstring. ``features`` = precomputed
    ``({name: X [n_pool, p]}, {name: Y [n_pool, q]})`` skips the encoders (for tests and reuse)."""
    from analysis.similarity import linear_cka

    from .semantics import semantics_vs_geometry

    cfg = config or AlignmentConfig()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    seconds: dict[str, float] = {}
    try:
        t0 = time.time()
        pool = make_shapes(
            cfg.n_pool, seed=cfg.seed, split="eval", n_points=cfg.n_points, families=cfg.families
        )
        seconds["shapes"] = time.time() - t0
        t0 = time.time()
        if features is None:
            xs, ys = _encode(cfg, pool.points, pool.captions, progress)
        else:
            xs, ys = ({k: np.asarray(v, dtype=np.float64) for k, v in f.items()} for f in features)
            for name, arr in (*xs.items(), *ys.items()):
                if arr.ndim != 2 or len(arr) != cfg.n_pool:
                    raise InputError(
                        f"features {name!r} have shape {arr.shape}; need [{cfg.n_pool}, dim] (one row per pool shape)."
                    )
        seconds["encode"] = time.time() - t0
        if any(m in SUBSPACE_METHODS for m in cfg.methods):
            _check_dims(cfg, xs, ys)
        labels = pool.attributes["key"].to_numpy()
        skipped: list[str] = []
        pairs = [(a, b) for a in xs for b in ys]
        n_steps = len(pairs) * len(cfg.seeds) * len(cfg.n_anchors)
        done = 0
        rows, diag = [], []
        t0 = time.time()
        for e3, et in pairs:
            x_all, y_all = xs[e3], ys[et]
            upper = min(x_all.shape[1], y_all.shape[1])
            dims = [d for d in cfg.dims if d <= upper]
            for seed in cfg.seeds:
                for n_a in cfg.n_anchors:
                    anchors, queries = anchor_query_split(cfg.n_pool, cfg.n_query, n_a, seed=seed)
                    xa, ya, xq, yq = x_all[anchors], y_all[anchors], x_all[queries], y_all[queries]
                    lab = labels[queries]
                    base = {"encoder_3d": e3, "encoder_text": et, "seed": seed, "n_anchors": n_a}
                    diag.append(
                        {
                            **base,
                            "raw_linear_cka": linear_cka(xq, yq),
                            "chance_top1": 1 / cfg.n_query,
                            "chance_top5": 5 / cfg.n_query,
                            "chance_label": label_chance(lab),
                            "oracle_top1": caption_oracle_top1(lab),
                        }
                    )
                    for method in (m for m in cfg.methods if m in FULL_METHODS):
                        s = alignment_scores(method, xa, ya, xq, yq, ridge=cfg.ridge)
                        rows.append(
                            {
                                **base,
                                "method": method,
                                "d": None,
                                **retrieval_metrics(s, seed=seed, labels=lab),
                            }
                        )
                    sub = [m for m in cfg.methods if m in SUBSPACE_METHODS]
                    d_ok = [d for d in dims if d <= n_a - 1]
                    if sub and d_ok:
                        full = fit_cca(xa, ya, max(d_ok), reg=cfg.cca_reg, clip=True)
                        cut = [d for d in cfg.dims if d not in d_ok or d > full.d]
                        if cut:
                            skipped.append(f"{e3} x {et}, seed {seed}, {n_a} anchors: d = {cut}")
                        for d in (d for d in d_ok if d <= full.d):  # dims above the numerical rank: skipped
                            proj = type(full)(
                                full.mean_x, full.mean_y, full.w_x[:, :d], full.w_y[:, :d], full.rho[:d]
                            )
                            for method in sub:
                                s = alignment_scores(method, xa, ya, xq, yq, projection=proj, ridge=cfg.ridge)
                                rows.append(
                                    {
                                        **base,
                                        "method": method,
                                        "d": d,
                                        **retrieval_metrics(s, seed=seed, labels=lab),
                                    }
                                )
                    elif sub:
                        skipped.append(
                            f"{e3} x {et}, seed {seed}, {n_a} anchors: every d (no {', '.join(sub)})"
                        )
                    done += 1
                    if progress:
                        progress(done, n_steps, f"{e3} x {et}: seed {seed}, {n_a} anchors")
        seconds["align"] = time.time() - t0
        if skipped:
            warnings.warn(
                "some subspace dimensions were not evaluated: d must be at most min(p, q, n_anchors - 1) and "
                f"the numerical rank of the anchors; skipped: {'; '.join(skipped[:6])}"
                f"{f' (and {len(skipped) - 6} more)' if len(skipped) > 6 else ''}. Their rows are missing from "
                "the results; use smaller dims or more anchors to get them.",
                SkippedDimsWarning,
                stacklevel=2,
            )
        if not rows:
            raise InputError(
                f"nothing to evaluate: every d in {cfg.dims} exceeds what the features/anchors support "
                "(min(p, q, n_anchors - 1)); add smaller dims or a full-space method."
            )
        results = pd.DataFrame(rows)
        results["d"] = results["d"].astype("Int64")
        t0 = time.time()
        sem = (
            _semantics(cfg, pool, xs, ys, results, semantics_vs_geometry)
            if cfg.n_semantic
            else pd.DataFrame()
        )
        seconds["semantics"] = time.time() - t0
    finally:
        torch.set_num_threads(old_threads)
    return AlignmentResults(results, pd.DataFrame(diag), sem, pool.points[0], pool.captions[0], seconds)


def _check_dims(cfg: AlignmentConfig, xs: dict[str, np.ndarray], ys: dict[str, np.ndarray]) -> None:
    """Refuse a ``d`` that no encoder pair supports (``d <= min(p, q, n_anchors - 1)``), before aligning."""
    limits = {
        f"{a} ({xs[a].shape[1]}-d) x {b} ({ys[b].shape[1]}-d)": min(
            xs[a].shape[1], ys[b].shape[1], max(cfg.n_anchors) - 1
        )
        for a in xs
        for b in ys
    }
    upper = max(limits.values())
    too_big = [d for d in cfg.dims if d > upper]
    if too_big:
        where = ", ".join(f"{k}: {v}" for k, v in limits.items())
        raise InputError(
            f"dims: d = {too_big[0]} is larger than any encoder pair supports: d <= min(p, q, n_anchors - 1) "
            f"({where}). Use dims <= {upper}; a larger d would drop the subspace methods "
            f"({', '.join(m for m in cfg.methods if m in SUBSPACE_METHODS)})."
        )


def _semantics(cfg, pool, xs, ys, results, semantics_vs_geometry) -> pd.DataFrame:
    """Semantics vs geometry on the first ``n_semantic`` queries of the first seed, largest anchor count."""
    seed, n_a = cfg.seeds[0], max(cfg.n_anchors)
    anchors, queries = anchor_query_split(cfg.n_pool, cfg.n_query, n_a, seed=seed)
    q = queries[: cfg.n_semantic]
    frames = []
    for e3 in xs:
        for et in ys:
            spaces = {f"raw {e3}": xs[e3][q], f"raw {et}": ys[et][q]}
            d = cfg.semantic_d
            if d is None:
                r = results[
                    (results.encoder_3d == e3)
                    & (results.encoder_text == et)
                    & (results.method == "cca_affine")
                ]
                d = int(r.groupby("d")["t2s_top1"].mean().idxmax()) if len(r) else min(cfg.dims)
            d = min(d, xs[e3].shape[1], ys[et].shape[1], n_a - 1)
            proj = fit_cca(xs[e3][anchors], ys[et][anchors], d, reg=cfg.cca_reg, clip=True)
            d = proj.d
            spaces[f"cca{d} {e3}"] = proj.transform_x(xs[e3][q]).numpy()
            spaces[f"cca{d} {et}"] = proj.transform_y(ys[et][q]).numpy()
            df = semantics_vs_geometry(pool.points[q], pool.attributes.iloc[q], spaces, seed=seed)
            frames.append(df.assign(encoder_3d=e3, encoder_text=et, d=d))
    return pd.concat(frames, ignore_index=True)


def run_alignment(config: AlignmentConfig | None = None, *, progress: Progress | None = None) -> pd.DataFrame:
    """The tidy results table of :func:`run_experiment` (columns: encoders, seed, n_anchors, method, d,
    ``t2s_top1/top5``, ``s2t_top1/top5``, ``matching`` and their ``*_label`` variants)."""
    return run_experiment(config, progress=progress).results
