"""Subspace rerouting (SSR) and GCG: a GCG-style suffix optimiser with losses on internal activations,
and resumable attack campaigns around it.

The search:

- :mod:`.optimiser`: prompt slots, candidate sampling and filters, the truncated forward over the slots
  (:class:`SlotForward`), :func:`gcg_step` (one step) and :func:`optimise` (the loop), :class:`OptimiserConfig`;
- :mod:`.losses`: Probe-/Steering-/Attention-SSR and GCG target losses and their objectives.

Judging and defence:

- :mod:`.judge`: the refusal-phrase judge (the project's one matcher), the probe readout judge, the
  non-answer rules and a rubric LLM judge on a local model;
- :mod:`.success`: the in-loop success check, a chain of those judges named by ``success``;
- :mod:`.defence`: per-layer probe monitors at a fixed false-positive rate: do they catch the attacks?

Campaigns (probes and refusal directions come from :mod:`analysis.refusal.probing`):

- :mod:`.config`: :class:`CampaignConfig` (TOML, the search in its ``[optimiser]`` table);
- :mod:`.objectives`: the model, objective, readout probe, LLM judge and success check a config asks for;
- :mod:`.attempt`: one attempt on one (prompt, seed) and its ``attempts.jsonl`` record;
- :mod:`.campaign`: :func:`run_campaign` (resumable) and the baseline refusal filter;
- :mod:`.results`: :func:`report`, :func:`strict_judge`, :func:`campaign_defence`, :func:`baseline_summary`.
"""

from analysis.rerouting.attempt import attempt_key, run_attempt
from analysis.rerouting.campaign import ATTEMPTS, BASELINE, read_attempts, refused_prompts, run_campaign
from analysis.rerouting.config import (
    JUDGE_DTYPES,
    METHODS,
    CampaignConfig,
    load_config,
    parse_config,
    stored_config,
)
from analysis.rerouting.defence import defence_view, detection_table, thresholds_at_fpr
from analysis.rerouting.judge import LLMJudge, is_refusal, llm_judge, non_answer_reason, readout_judge
from analysis.rerouting.losses import (
    AttentionObjective,
    ProbeObjective,
    SteeringObjective,
    TargetObjective,
    attention_ssr_loss,
    gcg_target_loss,
    probe_readout,
    probe_ssr_loss,
    steering_ssr_loss,
)
from analysis.rerouting.objectives import (
    build_objective,
    campaign_check,
    load_handle,
    load_llm_judge,
    readout_probe,
)
from analysis.rerouting.optimiser import (
    Objective,
    OptimiserConfig,
    OptimiseResult,
    PromptSlots,
    SlotForward,
    allowed_tokens,
    evaluate,
    gcg_step,
    optimise,
    prompt_slots,
    random_suffix,
    token_gradient,
)
from analysis.rerouting.results import (
    JUDGED,
    attacked_text,
    baseline_summary,
    campaign_defence,
    report,
    strict_judge,
)
from analysis.rerouting.success import SUCCESS_CHECKS, SuccessCheck, Verdict, success_check

__all__ = [
    "ATTEMPTS",
    "BASELINE",
    "JUDGED",
    "JUDGE_DTYPES",
    "METHODS",
    "SUCCESS_CHECKS",
    "AttentionObjective",
    "CampaignConfig",
    "LLMJudge",
    "Objective",
    "OptimiseResult",
    "OptimiserConfig",
    "ProbeObjective",
    "PromptSlots",
    "SlotForward",
    "SteeringObjective",
    "SuccessCheck",
    "TargetObjective",
    "Verdict",
    "allowed_tokens",
    "attacked_text",
    "attempt_key",
    "attention_ssr_loss",
    "baseline_summary",
    "build_objective",
    "campaign_check",
    "campaign_defence",
    "defence_view",
    "detection_table",
    "evaluate",
    "gcg_step",
    "gcg_target_loss",
    "is_refusal",
    "llm_judge",
    "load_config",
    "load_handle",
    "load_llm_judge",
    "non_answer_reason",
    "optimise",
    "parse_config",
    "probe_readout",
    "probe_ssr_loss",
    "prompt_slots",
    "random_suffix",
    "read_attempts",
    "readout_judge",
    "readout_probe",
    "refused_prompts",
    "report",
    "run_attempt",
    "run_campaign",
    "steering_ssr_loss",
    "stored_config",
    "strict_judge",
    "success_check",
    "thresholds_at_fpr",
    "token_gradient",
]
