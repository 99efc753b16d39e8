"""End-to-end refusal-subspace fit: probes and difference-of-means directions per layer, the chosen
layer's direction checked by ablation (harmful prompts) and addition (harmless prompts), and safety heads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from pydantic import Field

from analysis.refusal.checks import (
    ablation_check,
    addition_check,
    baseline_check,
    head_attribution,
    projection_table,
)
from analysis.refusal.figures import head_figure, probe_accuracy_figure, projection_figure
from analysis.refusal.probing import REFUSAL_CLASSES
from probes.capture import capture
from probes.config import Config
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.linear import MeanDirections, ProbeFit, diff_of_means, fit_linear_probes, stack_layers

__all__ = ["RefusalConfig", "RefusalFit", "choose_layer", "fit_refusal"]


class RefusalConfig(Config):
    """Settings of :func:`fit_refusal` (the prompt counts say how many prompts the caller loads)."""

    n_train: int = Field(100, ge=2)  # prompts per class for fitting
    n_val: int = Field(39, ge=1)  # prompts per class for validation and the generation checks
    layer: int | None = None  # direction layer; None: best separation in the middle layers
    max_new_tokens: int = 24  # greedy tokens per completion for the refusal matcher
    generate: bool = True  # run the baseline / ablation / addition generation checks
    C: float = Field(1.0, gt=0)  # logistic-regression inverse regularisation
    batch_size: int = Field(8, ge=1)  # capture batch size
    seed: int = 0  # seed of the logistic-regression probes


@dataclass
class RefusalFit:
    config: RefusalConfig
    model: str
    probes: ProbeFit
    directions: MeanDirections
    layer: int
    projections: pd.DataFrame  # label, projection (validation prompts, chosen layer)
    heads: pd.DataFrame  # layer, head, harmful, harmless, diff, rank
    generations: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # condition, set, prompt, completion, refused
    timings: dict = field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame:
        """condition, set, n, refusal_rate."""
        if self.generations.empty:
            return pd.DataFrame(columns=["condition", "set", "n", "refusal_rate"])
        g = self.generations.groupby(["condition", "set"], sort=False)["refused"]
        return g.agg(n="size", refusal_rate="mean").reset_index()

    def save(self, run_dir: str | Path) -> list[Path]:
        from probes.runs import write_table

        d = Path(run_dir)
        out = [
            write_table(self.probes.table, d / "probe_accuracy.parquet"),
            write_table(self.directions.table(), d / "directions.parquet"),
            write_table(self.projections, d / "projections.parquet"),
            write_table(self.heads, d / "heads.parquet"),
            self.probes.save(d / "probes.safetensors"),
            self.directions.save(d / "directions.safetensors"),
        ]
        if not self.generations.empty:
            out += [
                write_table(self.generations, d / "generations.parquet"),
                write_table(self.summary, d / "refusal_summary.parquet"),
            ]
        figs = {
            "probe_accuracy.html": probe_accuracy_figure(
                self.probes.table, f"Probe accuracy by layer ({self.model})"
            ),
            "projections.html": projection_figure(self.projections, self.layer),
            "heads.html": head_figure(self.heads),
        }
        for name, fig in figs.items():
            fig.write_html(d / name, include_plotlyjs="cdn")
            out.append(d / name)
        return out


def choose_layer(x_val: torch.Tensor, y_val: torch.Tensor, directions: MeanDirections) -> int:
    """Layer in ``[L/4, 0.8 L)`` whose direction best separates validation projections (Cohen's d)."""
    n_layers = directions.unit.shape[0]
    lo, hi = n_layers // 4, max(n_layers // 4 + 1, int(0.8 * n_layers))
    best, best_d = lo, -float("inf")
    for layer in range(lo, hi):
        p = x_val[:, layer] @ directions.unit[layer]
        a, b = p[y_val == 1], p[y_val == 0]
        pooled = ((a.var() + b.var()) / 2).sqrt().clamp_min(1e-8)
        d = float((a.mean() - b.mean()) / pooled)
        if d > best_d:
            best, best_d = layer, d
    return best


def fit_refusal(
    handle: ModelHandle,
    harmful_train: list[str],
    harmless_train: list[str],
    harmful_val: list[str],
    harmless_val: list[str],
    config: RefusalConfig | None = None,
    progress: bool = True,
) -> RefusalFit:
    """Probes + directions on the train prompts; projections, heads and generation checks on val prompts."""
    cfg = config or RefusalConfig()
    for name, lst in (("harmful_train", harmful_train), ("harmless_train", harmless_train)):
        if len(lst) < 2:
            raise InputError(f"{name} needs at least 2 prompts, got {len(lst)}.")
    for name, lst in (("harmful_val", harmful_val), ("harmless_val", harmless_val)):
        if len(lst) < 1:
            raise InputError(f"{name} needs at least 1 prompt, got 0.")
    t0 = time.time()
    timings = {}
    kw = dict(
        mode="last", chat=True, backend="nnsight", batch_size=cfg.batch_size, cache=True, progress=progress
    )
    train = capture(handle, harmful_train + harmless_train, ["resid_post.*"], **kw)
    val = capture(handle, harmful_val + harmless_val, ["resid_post.*"], **kw)
    timings["capture_s"] = time.time() - t0
    x_tr, x_va = stack_layers(train), stack_layers(val)
    y_tr = torch.tensor([1] * len(harmful_train) + [0] * len(harmless_train))
    y_va = torch.tensor([1] * len(harmful_val) + [0] * len(harmless_val))
    t1 = time.time()
    probes = fit_linear_probes(x_tr, y_tr, x_va, y_va, C=cfg.C, seed=cfg.seed, classes=REFUSAL_CLASSES)
    dirs = diff_of_means(x_tr, y_tr, classes=REFUSAL_CLASSES)
    timings["fit_s"] = time.time() - t1
    layer = handle.check_layer(cfg.layer) if cfg.layer is not None else choose_layer(x_va, y_va, dirs)
    r = dirs.unit[layer]
    proj = projection_table(x_va[y_va == 1, layer], x_va[y_va == 0, layer], r)

    t2 = time.time()
    head_sites = [f"head_out.{i}" for i in range(layer + 1)]
    hv = capture(handle, harmful_val + harmless_val, head_sites, **kw)
    n_h = len(harmful_val)
    heads = head_attribution(
        {i: hv[f"head_out.{i}"][:n_h] for i in range(layer + 1)},
        {i: hv[f"head_out.{i}"][n_h:] for i in range(layer + 1)},
        r,
    )
    timings["heads_s"] = time.time() - t2

    gens = pd.DataFrame()
    if cfg.generate:
        t3 = time.time()
        n = cfg.max_new_tokens
        parts = [
            baseline_check(handle, harmful_val, n).assign(set="harmful_val"),
            ablation_check(handle, harmful_val, r, n).assign(set="harmful_val"),
            baseline_check(handle, harmless_val, n).assign(set="harmless_val"),
            addition_check(handle, harmless_val, r, layer, float(dirs.norm[layer]), n).assign(
                set="harmless_val"
            ),
        ]
        gens = pd.concat(parts, ignore_index=True)
        timings["generate_s"] = time.time() - t3
    timings["total_s"] = time.time() - t0
    return RefusalFit(cfg, handle.name, probes, dirs, layer, proj, heads, gens, timings)
