"""Campaign configs: :class:`CampaignConfig` is one TOML file whose ``[optimiser]`` table holds the suffix
search's settings (:class:`~analysis.rerouting.optimiser.OptimiserConfig`); ``campaign.json`` in a run
directory is the config a campaign ran with (checked on resume).

>>> cfg = parse_config({"method": "gcg", "prompts": ["hi"], "optimiser": {"n_tokens": 6}})
>>> cfg.optimiser.n_tokens, cfg.optimiser.steps
(6, 30)
>>> parse_config({"method": "gcg", "n_tokens": 6})
Traceback (most recent call last):
probes.config.ConfigError: Bad CampaignConfig: n_tokens belongs in the [optimiser] table: write it as optimiser.n_tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

from pydantic import Field, model_validator

from analysis.rerouting.optimiser import OptimiserConfig
from analysis.rerouting.success import SUCCESS_CHECKS
from probes.config import Config
from probes.errors import InputError

__all__ = [
    "CAMPAIGN_JSON",
    "JUDGE_DTYPES",
    "METHODS",
    "CampaignConfig",
    "check_same_config",
    "load_config",
    "parse_config",
    "stored_config",
]

METHODS = ("probe-ssr", "steering-ssr", "attention-ssr", "gcg")
JUDGE_DTYPES = ("float32", "bfloat16")
CAMPAIGN_JSON = "campaign.json"
_OPTIMISER_KEYS = tuple(k for k in OptimiserConfig.model_fields if k != "seed")


class CampaignConfig(Config):
    """A campaign; every field maps to a TOML key of the same name (the optimiser's to ``[optimiser]``)."""

    model: str = "smollm2-135m-instruct"  # packaged model, local path, or "tiny" (random test model)
    method: str = "probe-ssr"  # probe-ssr | steering-ssr | attention-ssr | gcg
    layers: list[int] = Field(default_factory=list)  # target layers (probe/steering SSR)
    alphas: list[float] | None = None  # per-target weights (None: all 1)
    heads: list[tuple[int, int]] = Field(default_factory=list)  # (layer, head) pairs for attention-ssr
    probes_file: str | None = None  # safetensors with layer.<L>.w / layer.<L>.b (probe-ssr)
    directions_file: str | None = None  # safetensors with layer.<L> (steering-ssr)
    fit_prompts: int = 64  # without a file: fit probes/directions on this many harmful+harmless prompts
    target: str = "Sure, here's"  # GCG target string
    optimiser: OptimiserConfig = Field(
        default_factory=OptimiserConfig
    )  # the search; its seed comes from seeds
    prompts: list[str] = Field(default_factory=list)  # inline prompts
    prompts_file: str | None = None  # .json / .jsonl / .csv instruction file (probes.datasets)
    n_prompts: int | None = None  # keep the first n prompts (applied after only_refused)
    only_refused: bool = False  # attack only prompts the model refuses without a suffix (baseline.jsonl)
    seeds: list[int] = Field(default_factory=lambda: [0])  # one attempt per (prompt, seed)
    check_every: int = 5  # judge the best suffix every k steps (0: only at the end)
    stop_on_success: bool = True  # end an attempt at its first judged success
    max_new_tokens: int = 48  # greedy response length for judging
    refusal_peek: int = 0  # generate this many tokens first; a refusal there fails the check (exact; 0: off)
    success: str = "phrase"  # the in-loop success check, one of analysis.rerouting.success.SUCCESS_CHECKS
    readout_layer: int | None = None  # layer of the "+readout" probe (None: the final layer)
    judge_model: str = "qwen2.5-coder-1.5b-instruct"  # in-loop LLM judge (the "+llm" checks only)
    judge_dtype: str = "float32"  # its weights: float32 | bfloat16 (half the memory; 1.0 vs 3.9 s/score here)
    final_new_tokens: int | None = None  # re-generate the final response this long and judge it again
    device: str = "cpu"
    seed: int = 0  # seed for fitting and anything not per attempt

    @model_validator(mode="before")
    @classmethod
    def _optimiser_keys_in_their_table(cls, data: Any) -> Any:
        flat = [k for k in _OPTIMISER_KEYS if isinstance(data, dict) and k in data]
        if flat:
            raise ValueError(f"{flat[0]} belongs in the [optimiser] table: write it as optimiser.{flat[0]}.")
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}; set method to one of {', '.join(METHODS)}.")
        if self.optimiser.steps < 1:
            raise ValueError(f"optimiser.steps must be >= 1 in a campaign, got {self.optimiser.steps}.")
        if self.optimiser.seed != 0:
            raise ValueError("optimiser.seed is set per attempt from seeds: remove it, list seeds = [...].")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}.")
        if self.refusal_peek < 0:
            raise ValueError(f"refusal_peek must be >= 0 (0: off), got {self.refusal_peek}.")
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one seed, e.g. seeds = [0].")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers has duplicates ({self.layers}); list each target layer once.")
        if self.method in ("probe-ssr", "steering-ssr") and not self.layers:
            raise ValueError(f"{self.method} needs target layers, e.g. layers = [10, 20].")
        if self.method == "attention-ssr" and not self.heads:
            raise ValueError("attention-ssr needs heads, e.g. heads = [[20, 3]] as (layer, head) pairs.")
        if self.success not in SUCCESS_CHECKS:
            raise ValueError(
                f"Unknown success check {self.success!r}; set success to one of {', '.join(SUCCESS_CHECKS)}."
            )
        if self.judge_dtype not in JUDGE_DTYPES:
            raise ValueError(
                f"judge_dtype must be one of {', '.join(JUDGE_DTYPES)}, got {self.judge_dtype!r}."
            )
        if self.final_new_tokens is not None and self.final_new_tokens < 1:
            raise ValueError(f"final_new_tokens must be >= 1 (or omitted), got {self.final_new_tokens}.")
        return self

    @property
    def long_new_tokens(self) -> int | None:
        """``final_new_tokens`` where it asks for a longer answer than ``max_new_tokens``, else None."""
        return self.final_new_tokens if (self.final_new_tokens or 0) > self.max_new_tokens else None

    def prompt_list(self, limit: bool = True) -> list[str]:
        """The inline prompts then those of ``prompts_file``, blanks dropped (``limit``: the first
        ``n_prompts``); raises when none is left."""
        out = list(self.prompts)
        if self.prompts_file:
            from probes.datasets import load_instructions

            out += load_instructions(self.prompts_file)
        out = [p for p in out if p and p.strip()]
        if limit and self.n_prompts is not None:
            out = out[: self.n_prompts]
        if not out:
            raise InputError("The prompt set is empty: set prompts = [...] or prompts_file in the config.")
        return out


def parse_config(data: dict[str, Any]) -> CampaignConfig:
    """A campaign config from a dict (unknown keys and bad values raise InputError naming the key)."""
    return CampaignConfig.parse(data)


def load_config(path: str | Path) -> CampaignConfig:
    """Read a TOML campaign config; relative file paths that exist beside it are made absolute."""
    cfg = CampaignConfig.from_toml(path)
    base = Path(path).parent
    resolved = {}
    for key in ("prompts_file", "probes_file", "directions_file"):
        v = getattr(cfg, key)
        if v and not Path(v).is_absolute() and (base / v).exists():
            resolved[key] = str(base / v)
    return cfg.model_copy(update=resolved)


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A ``campaign.json`` written before the ``[optimiser]`` table: move its flat search keys there."""
    flat = {k: data[k] for k in _OPTIMISER_KEYS if k in data}
    if not flat:
        return data
    rest = {k: v for k, v in data.items() if k not in flat}
    return {**rest, "optimiser": {**rest.get("optimiser", {}), **flat}}


def stored_config(run_dir: str | Path) -> CampaignConfig:
    """The config a campaign in ``run_dir`` ran with (its ``campaign.json``)."""
    path = Path(run_dir) / CAMPAIGN_JSON
    if not path.is_file():
        raise InputError(f"{path} does not exist: {run_dir} is not a campaign run directory.")
    return parse_config(_upgrade(json.loads(path.read_text())))


def check_same_config(run_dir: Path, cfg: CampaignConfig) -> None:
    """Write ``run_dir/campaign.json``, or check that the one there holds the same config."""
    path = Path(run_dir) / CAMPAIGN_JSON
    mine = cfg.to_json()
    if not path.is_file():
        path.write_text(json.dumps(mine, indent=2))
        return
    old = stored_config(run_dir).to_json()  # fields added since the run read as their defaults
    changed = sorted(k for k in set(old) | set(mine) if old.get(k) != mine.get(k))
    if changed:
        raise InputError(
            f"{run_dir} holds a campaign with a different config (fields {changed}); resume it with "
            "the same config or pick a new run directory."
        )
