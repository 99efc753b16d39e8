"""One attack attempt: optimise a suffix for one (prompt, seed), judging the best suffix every
``check_every`` steps, and return the record that goes into ``attempts.jsonl``.

Timing: ``time_to_first_success_s`` is wall-clock from the attempt's start to the first judged success;
``attack_s_to_first_success`` is the same less the in-loop judging (the attacker's own compute);
``judge_s`` is all in-loop judging of the attempt.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from analysis.rerouting import judge as judges
from analysis.rerouting.config import CampaignConfig
from analysis.rerouting.optimiser import Objective, OptimiseResult, optimise
from analysis.rerouting.success import SuccessCheck, Verdict
from probes.handle import ModelHandle

__all__ = ["Attempt", "attempt_key", "run_attempt"]


def attempt_key(prompt: str, seed: int) -> str:
    """The attempt's id in ``attempts.jsonl`` (what a resumed campaign skips)."""
    return hashlib.sha256(f"{seed}\x00{prompt}".encode()).hexdigest()[:16]


@dataclass
class Attempt:
    """The judging and timing state of one attempt: verdicts per suffix (each judged once) and the
    first success."""

    handle: ModelHandle
    prompt: str
    check: SuccessCheck
    check_every: int = 0  # judge every k steps in the loop (0: only at the end)
    stop_on_success: bool = True
    started: float = field(default_factory=time.perf_counter)
    judge_s: float = 0.0  # time spent judging (generation, readout, LLM judge) inside the loop
    first_success_s: float | None = None
    first_success_step: int | None = None
    first_success_judge_s: float | None = None  # judging time spent until the first success
    verdicts: dict[tuple[int, ...], Verdict] = field(default_factory=dict)

    def text(self, ids: list[int]) -> str:
        """The attacked instruction as the model sees it: prompt followed by the suffix text."""
        return self.prompt + self.handle.tokenizer.decode(ids)

    def verdict(self, ids: list[int]) -> Verdict:
        """The success check on suffix ``ids`` (cached; its time counts as judging)."""
        key = tuple(ids)
        if key not in self.verdicts:
            t = time.perf_counter()
            self.verdicts[key] = self.check(self.handle, self.prompt, self.handle.tokenizer.decode(ids))
            self.judge_s += time.perf_counter() - t
        return self.verdicts[key]

    def succeeded(self, step: int) -> None:
        """Record the first success at ``step`` (now)."""
        self.first_success_s = time.perf_counter() - self.started
        self.first_success_step = step
        self.first_success_judge_s = self.judge_s

    def forget_success(self) -> None:
        """Undo the first success (the final answer refused after all)."""
        self.first_success_s = self.first_success_step = self.first_success_judge_s = None

    def callback(self, step: int, loss: float, ids: list[int]) -> bool:
        """The optimiser's callback: judge every ``check_every`` steps until a success; True stops."""
        if self.check_every and step % self.check_every == 0 and self.first_success_s is None:
            if self.verdict(ids).success:
                self.succeeded(step)
                return self.stop_on_success
        return False

    @property
    def attack_s_to_first_success(self) -> float | None:
        if self.first_success_s is None:
            return None
        return self.first_success_s - self.first_success_judge_s


def run_attempt(
    handle: ModelHandle,
    objective: Objective,
    cfg: CampaignConfig,
    prompt: str,
    seed: int,
    check: SuccessCheck,
) -> dict:
    """One optimisation attempt on ``prompt`` with ``cfg.optimiser`` and ``seed``, judged by ``check``
    (e.g. :func:`~analysis.rerouting.objectives.campaign_check`); returns the ``attempts.jsonl`` record.

    The final suffix is judged once more; with ``cfg.final_new_tokens`` a longer final answer is generated
    (when the check did not already) and a refusal there undoes the success.
    """
    at = Attempt(handle, prompt, check, cfg.check_every, cfg.stop_on_success)
    res = optimise(
        handle, prompt, objective, cfg.optimiser.model_copy(update={"seed": seed}), callback=at.callback
    )
    verdict = at.verdict(res.best_ids)
    response, success = verdict.response, verdict.success
    if success and at.first_success_s is None:
        at.succeeded(res.steps)
    if cfg.long_new_tokens and not verdict.long:
        response = handle.generate(at.text(res.best_ids), max_new_tokens=cfg.long_new_tokens)
        if success and not judges.judge(response):  # the longer answer turns into a refusal
            success = False
            at.forget_success()
    elif response is None or verdict.peeked:  # not generated in full: record the whole answer, for review
        response = handle.generate(at.text(res.best_ids), max_new_tokens=cfg.max_new_tokens)
    return _record(cfg, prompt, seed, res, at, verdict, response, success)


def _record(
    cfg: CampaignConfig,
    prompt: str,
    seed: int,
    res: OptimiseResult,
    at: Attempt,
    verdict: Verdict,
    response: str,
    success: bool,
) -> dict:
    curve = res.losses
    return {
        "key": attempt_key(prompt, seed),
        "prompt": prompt,
        "seed": seed,
        "method": cfg.method,
        "model": cfg.model,
        "initial_loss": res.initial_loss,
        "final_loss": res.best_loss,
        "loss_curve": {
            "n": len(curve),
            "first": curve[0] if curve else None,
            "min": min(curve) if curve else None,
            "every": [round(v, 5) for v in curve[:: max(1, len(curve) // 20)]],
        },
        "suffix": res.best_suffix,
        "suffix_ids": res.best_ids,
        "steps": res.steps,
        "stopped": res.stopped,
        "optimise_s": res.elapsed_s,
        "total_s": time.perf_counter() - at.started,
        "time_to_first_success_s": at.first_success_s,
        "first_success_step": at.first_success_step,
        "attack_s_to_first_success": at.attack_s_to_first_success,
        "judge_s": at.judge_s,  # all in-loop judging of this attempt
        "success": bool(success),
        "success_check": cfg.success,
        "loop_readout": verdict.readout,  # readout P(harmless) of the final suffix (with the readout)
        "loop_llm": verdict.llm,  # in-loop LLM judge P(YES) of the final response (with +llm)
        "loop_non_answer": verdict.non_answer,  # why the final answer is a non-answer (with +content)
        "response": response,
    }
