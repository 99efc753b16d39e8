"""``run_convergent``: train several digits CNNs with different seeds and compare them layer by layer.

For every pair of seeds and every layer in ``config.layers`` it measures, on held-out activations:
one-to-one unit matching (Hungarian, semi-matching, random baseline), sparse prediction (dense,
lasso sweep, one-to-one; maps fitted on training activations), spectral clustering of both nets'
units, and a layer x layer CKA grid with layer identification.

>>> cfg = ConvergentConfig(seeds=[0, 1], epochs=1, layers=["fc1"], lasso_alphas=[0.1], n_random=5)
>>> res = run_convergent(cfg)
>>> sorted(res.tables())
['accuracy', 'cka', 'cluster_summary', 'clusters', 'layer_id', 'matching', 'sparse']
>>> res.matching.method.tolist()
['hungarian', 'semi', 'random']
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from probes.config import Config
from probes.errors import InputError

from .clustering import joint_clusters
from .layers import cka_grid, layer_identification
from .matching import matching_summary, same_assignment
from .nets import check_layers, layer_activations, limit_threads, load_digits_split, train_digits_net
from .sparse import DEFAULT_ALPHAS, sparse_prediction

__all__ = ["ConvergentConfig", "ConvergentResults", "run_convergent"]

Progress = Callable[[int, int, str], None]
"""``progress(done, total, message)``, called after each step."""


class ConvergentConfig(Config):
    """Settings of :func:`run_convergent` (the ``sublens compare nets`` flags map onto these)."""

    seeds: tuple[int, ...] = (0, 1, 2)  # one net per seed (init + batch order)
    epochs: int = Field(15, ge=1)  # training epochs per net
    batch_size: int = Field(32, ge=1)  # mini-batch size
    lr: float = Field(3e-3, gt=0, lt=1)  # Adam learning rate
    widths: tuple[int, int, int] = (16, 32, 64)  # conv1 channels, conv2 channels, fc1 units
    layers: tuple[str, ...] = ("conv1", "conv2", "fc1")  # layers to compare
    conv_units: Literal["positions", "mean"] = "positions"  # conv maps for matching/sparse/clusters:
    # every (image, position) a sample (Li et al.) or spatial means
    cka_conv: Literal["mean", "flatten"] = "mean"  # conv maps for CKA: [n, C] spatial means or [n, C*H*W]
    cka_metric: str = "linear_cka"  # any analysis.similarity.METRICS name
    lasso_alphas: tuple[float, ...] = DEFAULT_ALPHAS  # lasso penalties
    max_fit_samples: int = Field(
        20000, ge=1
    )  # training rows used to fit the sparse maps (random subset if more)
    n_clusters: int | None = Field(None, ge=2)  # spectral clusters per layer; None: max(2, units // 4)
    n_random: int = Field(100, ge=1)  # random draws for the matching and clustering baselines
    test_size: float = 0.3  # held-out fraction of the 1,797 digits (0.3 -> 540 images)
    split_seed: int = 0  # train/test split
    seed: int = 0  # random baselines, subsampling and spectral clustering
    threads: int = Field(1, ge=1)  # torch and BLAS threads during the run (tiny fits: 1 is fastest)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: tuple[int, ...]) -> tuple[int, ...]:
        if len(seeds) < 2 or len(set(seeds)) != len(seeds):
            raise ValueError(f"must hold at least two distinct integers, got {list(seeds)}.")
        return seeds

    @field_validator("layers")
    @classmethod
    def _layers(cls, layers: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_layers(layers))  # InputError is a ValueError: pydantic reports it under "layers"

    @field_validator("widths")
    @classmethod
    def _widths(cls, widths: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(widths) < 1:
            raise ValueError(f"must be three positive integers (conv1, conv2, fc1), got {list(widths)}.")
        return widths

    @field_validator("cka_metric")
    @classmethod
    def _metric(cls, name: str) -> str:
        from analysis.similarity import METRICS

        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; choose from {sorted(METRICS)}.")
        return name

    @field_validator("lasso_alphas")
    @classmethod
    def _alphas(cls, alphas: tuple[float, ...]) -> tuple[float, ...]:
        if not alphas or any(not math.isfinite(a) or a <= 0 for a in alphas):
            raise ValueError(f"must be positive numbers, got {list(alphas)}.")
        return alphas


@dataclass
class ConvergentResults:
    """Tidy tables of a :func:`run_convergent` run; every per-pair table has ``seed_a, seed_b`` columns."""

    config: ConvergentConfig
    accuracy: pd.DataFrame  # seed, train_accuracy, test_accuracy
    matching: pd.DataFrame  # layer, seed_a, seed_b, method, mean_corr, median_corr, ..., same_assignment
    sparse: pd.DataFrame  # layer, seed_a, seed_b, method, alpha, error, error_median, nonzero, n_targets
    clusters: pd.DataFrame  # layer, seed_a, seed_b, cluster, n_a, n_b, mixed, between_abs_corr
    cluster_summary: pd.DataFrame  # layer, seed_a, seed_b, n_clusters, frac_mixed, between_abs_corr(_random)
    cka: pd.DataFrame  # seed_a, seed_b, layer_a, layer_b, metric, value
    layer_id: pd.DataFrame  # seed_a, seed_b, direction, layer, best, value, same_layer_value, correct

    def tables(self) -> dict[str, pd.DataFrame]:
        """All tables by name (what ``sublens compare nets`` writes as parquet)."""
        names = ("accuracy", "matching", "sparse", "clusters", "cluster_summary", "cka", "layer_id")
        return {n: getattr(self, n) for n in names}

    def matching_overview(self) -> pd.DataFrame:
        """Mean matched correlation per layer and method over seed pairs (wide), plus same-assignment."""
        wide = self.matching.pivot_table(index="layer", columns="method", values="mean_corr", aggfunc="mean")
        same = self.matching[self.matching.method == "hungarian"].groupby("layer").same_assignment.mean()
        out = wide.reindex(columns=["hungarian", "semi", "random"]).assign(same_assignment=same)
        return out.reindex(list(self.config.layers)).reset_index()

    def sparse_overview(self) -> pd.DataFrame:
        """Mean held-out error and non-zero weights per layer, method and alpha over seed pairs."""
        df = self.sparse.assign(alpha=self.sparse.alpha.fillna(0.0))
        out = df.groupby(["layer", "method", "alpha"], sort=False)[["error", "nonzero"]].mean().reset_index()
        return out.assign(alpha=out.alpha.replace(0.0, np.nan))

    def layer_id_accuracy(self) -> float:
        """Fraction of (pair, direction, layer) lookups whose most similar layer is the same layer."""
        return float(self.layer_id.correct.mean())


def run_convergent(
    config: ConvergentConfig | None = None, *, progress: Progress | None = None
) -> ConvergentResults:
    """Train one net per seed and compare every pair (see the module doc); seconds to a minute on a CPU."""
    cfg = config or ConvergentConfig()
    if not isinstance(cfg, ConvergentConfig):
        raise InputError(f"config must be a ConvergentConfig, got {type(cfg).__name__}.")
    with limit_threads(cfg.threads):
        return _run(cfg, progress)


def _run(cfg: ConvergentConfig, progress: Progress | None) -> ConvergentResults:
    pairs = list(itertools.combinations(cfg.seeds, 2))
    total = len(cfg.seeds) + len(pairs) * (len(cfg.layers) + 1)
    done = 0

    def step(msg: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, msg)

    data = load_digits_split(cfg.test_size, cfg.split_seed)
    nets, acc = {}, []
    for s in cfg.seeds:
        net = train_digits_net(
            s,
            data,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            widths=cfg.widths,
            threads=cfg.threads,
        )
        nets[s] = net
        acc.append((s, net.train_accuracy, net.test_accuracy))
        step(f"trained seed {s}: test accuracy {net.test_accuracy:.3f}")

    def acts(seed: int, x, conv: str) -> dict[str, np.ndarray]:
        return layer_activations(nets[seed], x, cfg.layers, conv=conv, threads=cfg.threads)

    test = {s: acts(s, data.x_test, cfg.conv_units) for s in cfg.seeds}
    train = {s: acts(s, data.x_train, cfg.conv_units) for s in cfg.seeds}
    cka_test = {s: acts(s, data.x_test, cfg.cka_conv) for s in cfg.seeds}
    rng = np.random.default_rng(cfg.seed)

    matching, sparse, clusters, csum, cka, lid = [], [], [], [], [], []
    for sa, sb in pairs:
        keys = {"seed_a": sa, "seed_b": sb}
        for layer in cfg.layers:
            a, b = test[sa][layer], test[sb][layer]
            m = matching_summary(a, b, n_random=cfg.n_random, seed=cfg.seed)
            same = same_assignment(a, b)
            m = m.assign(same_assignment=np.where(m.method == "hungarian", same, np.nan))
            matching.append(m.assign(layer=layer, **keys))
            xa, xb = train[sa][layer], train[sb][layer]
            if xa.shape[0] > cfg.max_fit_samples:
                idx = np.sort(rng.choice(xa.shape[0], cfg.max_fit_samples, replace=False))
                xa, xb = xa[idx], xb[idx]
            sp = sparse_prediction(xa, xb, a, b, alphas=cfg.lasso_alphas)
            sparse.append(sp.assign(layer=layer, **keys))
            k = cfg.n_clusters or max(2, a.shape[1] // 4)
            jc = joint_clusters(a, b, n_clusters=k, seed=cfg.seed, n_random=cfg.n_random)
            clusters.append(jc.composition.assign(layer=layer, **keys))
            csum.append({"layer": layer, **keys, **jc.summary()})
            step(f"seeds {sa} vs {sb}, {layer}: hungarian {m.mean_corr.iloc[0]:.3f}")
        grid = cka_grid(cka_test[sa], cka_test[sb], metric=cfg.cka_metric)
        cka.append(grid.assign(**keys))
        lid.append(layer_identification(grid).assign(**keys))
        step(f"seeds {sa} vs {sb}: CKA grid")

    def tidy(frames: list[pd.DataFrame], first: list[str]) -> pd.DataFrame:
        df = pd.concat(frames, ignore_index=True)
        return df[first + [c for c in df.columns if c not in first]]

    per_layer = ["layer", "seed_a", "seed_b"]
    return ConvergentResults(
        config=cfg,
        accuracy=pd.DataFrame(acc, columns=["seed", "train_accuracy", "test_accuracy"]),
        matching=tidy(matching, per_layer),
        sparse=tidy(sparse, per_layer),
        clusters=tidy(clusters, per_layer),
        cluster_summary=pd.DataFrame(csum),
        cka=tidy(cka, ["seed_a", "seed_b"]),
        layer_id=tidy(lid, ["seed_a", "seed_b"]),
    )
