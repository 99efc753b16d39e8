"""What a campaign builds from its config: the model, the objective of ``cfg.method``, the readout probe,
the LLM judge and the success check that uses them.

Probes and refusal directions come from a file (``probes_file`` / ``directions_file``) or are fitted on
``fit_prompts`` shared train prompts per class (:mod:`analysis.refusal.probing`) and cached in the run
directory: ``probes.safetensors``, ``directions.safetensors``, ``readout_probe_<L>.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

from jaxtyping import Float
from torch import Tensor

from analysis.refusal.probing import refusal_directions, refusal_probes
from analysis.rerouting import judge as judges
from analysis.rerouting.config import CampaignConfig
from analysis.rerouting.losses import AttentionObjective, ProbeObjective, SteeringObjective, TargetObjective
from analysis.rerouting.optimiser import Objective
from analysis.rerouting.success import SUCCESS_CHECKS, SuccessCheck, success_check
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.linear import ProbeFit, load_directions

__all__ = [
    "build_objective",
    "campaign_check",
    "fit_sets",
    "load_handle",
    "load_llm_judge",
    "readout_probe",
]

Probe = tuple[Float[Tensor, " d_model"], Tensor]  # (w, b) with P(harmless) = sigmoid(x·w + b)


def load_handle(cfg: CampaignConfig) -> ModelHandle:
    """The campaign's model: ``"tiny"`` / ``"tiny-<n_layers>"`` (random test model) or a loaded one."""
    if cfg.model.startswith("tiny"):
        from probes.testing import tiny_handle

        n_layers = int(cfg.model.split("-")[1]) if "-" in cfg.model else 2
        return tiny_handle(seed=0, n_layers=n_layers)
    from probes.loading import load_model

    return load_model(cfg.model, backend="hf", device=cfg.device, progress=False)


def fit_sets(n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` shared harmful and harmless train prompts (what probes and directions fit on)."""
    from probes.datasets import shared_refusal_split

    return shared_refusal_split("harmful_train", limit=n), shared_refusal_split("harmless_train", limit=n)


def _cache(run_dir: Path | None, name: str) -> Path | None:
    return Path(run_dir) / name if run_dir else None


def _probes(handle: ModelHandle, cfg: CampaignConfig, layers: list[int], run_dir: Path | None) -> ProbeFit:
    if cfg.probes_file:
        return ProbeFit.load(cfg.probes_file)
    cached = _cache(run_dir, "probes.safetensors")
    if cached and cached.is_file():
        return ProbeFit.load(cached)
    fit = refusal_probes(handle, *fit_sets(cfg.fit_prompts), layers, seed=cfg.seed)
    if cached:
        fit.save(cached)
    return fit


def _directions(
    handle: ModelHandle, cfg: CampaignConfig, layers: list[int], run_dir: Path | None
) -> dict[int, Float[Tensor, " d_model"]]:
    if cfg.directions_file:
        return load_directions(cfg.directions_file)
    cached = _cache(run_dir, "directions.safetensors")
    if cached and cached.is_file():
        return load_directions(cached)
    dirs = refusal_directions(handle, *fit_sets(cfg.fit_prompts), layers)
    if cached:
        dirs.save(cached)
    return dict(zip(dirs.layers, dirs.unit, strict=True))


def build_objective(handle: ModelHandle, cfg: CampaignConfig, run_dir: Path | None = None) -> Objective:
    """The objective for ``cfg.method``; fitted probes/directions are cached in ``run_dir``."""
    layers = [handle.check_layer(layer) for layer in cfg.layers]  # negative layers count from the end
    if cfg.method == "gcg":
        return TargetObjective(handle, cfg.target)
    if cfg.method == "attention-ssr":
        obj = AttentionObjective(cfg.heads, cfg.alphas)
        obj.check(handle)
        return obj
    if cfg.method == "probe-ssr":
        fit = _probes(handle, cfg, layers, run_dir)
        missing = [k for k in layers if k not in fit.layers]
        if missing:
            raise InputError(
                f"No probe for layers {missing} in {cfg.probes_file}; it has {list(fit.layers)}."
            )
        return ProbeObjective({k: fit.probe(k, "harmless") for k in layers}, cfg.alphas)
    dirs = _directions(handle, cfg, layers, run_dir)
    missing = [k for k in layers if k not in dirs]
    if missing:
        raise InputError(
            f"No direction for layers {missing} in {cfg.directions_file}; it has {sorted(dirs)}."
        )
    return SteeringObjective({k: dirs[k] for k in layers}, cfg.alphas)


def readout_probe(
    handle: ModelHandle, cfg: CampaignConfig, run_dir: Path | None, layer: int | None = None
) -> tuple[int, Probe]:
    """``(layer, (w, b))``: the P(harmless) probe at ``layer`` (default ``cfg.readout_layer``, else the
    final layer), fitted on ``cfg.fit_prompts`` shared train prompts per class and cached in
    ``run_dir/readout_probe_<layer>.safetensors``."""
    if layer is None:
        layer = cfg.readout_layer if cfg.readout_layer is not None else handle.info.n_layers - 1
    layer = handle.check_layer(layer)
    cache = _cache(run_dir, f"readout_probe_{layer}.safetensors")
    if cache and cache.is_file():
        return layer, ProbeFit.load(cache).probe(layer, "harmless")
    fit = refusal_probes(handle, *fit_sets(cfg.fit_prompts), [layer], seed=cfg.seed)
    if cache:
        fit.save(cache)
    return layer, fit.probe(layer, "harmless")


def load_llm_judge(cfg: CampaignConfig) -> judges.LLMJudge:
    """The in-loop rubric judge of the ``+llm`` success checks: ``cfg.judge_model`` in ``cfg.judge_dtype``."""
    import torch

    from probes.loading import load_model

    dtype = getattr(torch, cfg.judge_dtype)
    return judges.LLMJudge(
        load_model(cfg.judge_model, backend="hf", device=cfg.device, dtype=dtype, progress=False)
    )


def campaign_check(
    handle: ModelHandle, cfg: CampaignConfig, run_dir: Path | None, llm: judges.LLMJudge | None = None
) -> SuccessCheck:
    """``cfg.success`` with what its stages need: the readout probe (:func:`readout_probe`) and the LLM
    judge (``llm``, else :func:`load_llm_judge`), each only when the check uses it."""
    stages = SUCCESS_CHECKS[cfg.success]
    return success_check(
        cfg.success,
        max_new_tokens=cfg.max_new_tokens,
        long_new_tokens=cfg.long_new_tokens,
        readout=readout_probe(handle, cfg, run_dir) if "readout" in stages else None,
        llm=(llm or load_llm_judge(cfg)) if "llm" in stages else None,
        peek=cfg.refusal_peek,
    )
