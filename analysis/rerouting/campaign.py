"""Attack campaigns: one optimisation attempt per (prompt, seed), logged to ``attempts.jsonl``.

Every JSONL file of a run goes through :class:`probes.runs.JsonlLog` (one fsynced line per record), so a
campaign killed at any point resumes by skipping the (prompt, seed) keys already in the file; a torn
last line is cut off. With ``only_refused`` the campaign first records each prompt's unattacked response
(``baseline.jsonl``) and attacks only the refused ones. The config is kept in ``campaign.json``; a
resume with a different config is refused.
"""

from __future__ import annotations

from pathlib import Path

from analysis.rerouting import judge as judges
from analysis.rerouting.attempt import attempt_key, run_attempt
from analysis.rerouting.config import CAMPAIGN_JSON, CampaignConfig, check_same_config
from analysis.rerouting.objectives import build_objective, campaign_check, load_handle
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.runs import JsonlLog
from probes.scaleout import RayConfig

__all__ = ["ATTEMPTS", "BASELINE", "check_resume", "read_attempts", "refused_prompts", "run_campaign"]

ATTEMPTS = "attempts.jsonl"
BASELINE = "baseline.jsonl"
WEIGHTS = "weights.json"


def read_attempts(run_dir: str | Path) -> list[dict]:
    """The complete records of ``run_dir/attempts.jsonl`` (a torn last line is ignored)."""
    return JsonlLog(Path(run_dir) / ATTEMPTS).read()


def refused_prompts(
    handle: ModelHandle, cfg: CampaignConfig, run_dir: Path, prompts: list[str], progress: bool = False
) -> list[str]:
    """The prompts the model refuses with no suffix (greedy, ``cfg.max_new_tokens``, phrase matcher).

    Each baseline response is appended to ``run_dir/baseline.jsonl`` (resumable like the attempts);
    ``cfg.n_prompts`` then keeps the first n refused prompts (generation stops once that many are
    found, so ``baseline.jsonl`` covers a prefix of the prompts). Raises when none is refused.
    """
    log = JsonlLog(Path(run_dir) / BASELINE)
    log.repair()
    have = {r["prompt"]: r for r in log.read()}
    n_refused = sum(bool(have[p]["refused"]) for p in prompts if p in have)
    todo = [p for p in prompts if p not in have]
    it = todo
    if progress and todo:
        from tqdm.auto import tqdm

        it = tqdm(todo, desc="baseline refusals", unit="prompt")
    for p in it:
        if cfg.n_prompts is not None and n_refused >= cfg.n_prompts:
            break  # enough refused prompts: the rest need no baseline
        resp = handle.generate(p, max_new_tokens=cfg.max_new_tokens)
        rec = {"prompt": p, "response": resp, "refused": judges.is_refusal(resp)}
        log.append(rec)
        have[p] = rec
        n_refused += rec["refused"]
    out = [p for p in prompts if p in have and have[p]["refused"]]
    if not out:
        raise _none_refused(len(prompts))
    return out[: cfg.n_prompts] if cfg.n_prompts is not None else out


def _none_refused(n_prompts: int) -> InputError:
    return InputError(
        f"The model refuses none of the {n_prompts} prompts without a suffix: nothing to attack. "
        "Use prompts it refuses, or set only_refused = false."
    )


def run_campaign(
    config: CampaignConfig,
    run_dir: str | Path,
    progress: bool = True,
    handle: ModelHandle | None = None,
    llm_judge: judges.LLMJudge | None = None,
    ray: RayConfig | None = None,
) -> Path:
    """Run every (prompt, seed) attempt not yet in ``run_dir/attempts.jsonl``; returns ``run_dir``.

    ``handle`` / ``llm_judge``: an already loaded model / in-loop judge (else loaded from the config).
    ``ray``: run the attempts on Ray workers instead (:func:`run_campaign_on_ray`); same records."""
    import torch

    prompts = config.prompt_list(limit=not config.only_refused)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_same_config(run_dir, config)
    log = JsonlLog(run_dir / ATTEMPTS)
    log.repair()
    if ray is not None:
        return run_campaign_on_ray(config, run_dir, prompts, ray, progress=progress)
    handle = handle or load_handle(config)
    _record_weights(handle, run_dir)
    if config.only_refused:
        prompts = refused_prompts(handle, config, run_dir, prompts, progress=progress)
    done = log.read()
    keys = {r.get("key") for r in done}
    todo = [(p, s) for p in prompts for s in config.seeds if attempt_key(p, s) not in keys]
    torch.manual_seed(config.seed)
    objective = build_objective(handle, config, run_dir)
    check = campaign_check(handle, config, run_dir, llm_judge)
    n_total, n_succ = len(prompts) * len(config.seeds), sum(bool(r.get("success")) for r in done)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_total, initial=n_total - len(todo), desc=f"{config.method}", unit="attempt")
    try:
        for prompt, seed in todo:
            rec = run_attempt(handle, objective, config, prompt, seed, check)
            log.append(rec)
            n_succ += rec["success"]
            if bar is not None:
                bar.set_postfix(loss=f"{rec['final_loss']:.3f}", successes=n_succ)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return run_dir


def _record_weights(handle: ModelHandle, run_dir: Path) -> None:
    """``run_dir/weights.json``: which weights the campaign attacked (base pack and adapter SHA-256)."""
    from probes.adapters import model_hashes
    from probes.runs import write_json

    write_json({"model": handle.name, **model_hashes(handle)}, run_dir / WEIGHTS)


def _campaign_worker(shared: tuple[CampaignConfig, str]):
    """A Ray worker's state: the model, objective and success check, built once (see probes.scaleout)."""
    import torch

    config, run_dir = shared
    torch.manual_seed(config.seed)  # as run_campaign does before its first attempt
    handle = load_handle(config)
    objective = build_objective(handle, config, Path(run_dir))  # the first worker fits and caches probes
    check = campaign_check(handle, config, Path(run_dir))

    def work(task: tuple[str, str, int]) -> dict:
        kind, prompt, seed = task
        if kind == "baseline":
            resp = handle.generate(prompt, max_new_tokens=config.max_new_tokens)
            return {"prompt": prompt, "response": resp, "refused": judges.is_refusal(resp)}
        return run_attempt(handle, objective, config, prompt, seed, check)

    return work


def run_campaign_on_ray(
    config: CampaignConfig, run_dir: Path, prompts: list[str], ray: RayConfig, progress: bool = True
) -> Path:
    """The campaign on Ray workers that each load the model once; the driver alone writes the logs.

    With ``only_refused`` every prompt's baseline is generated first (in parallel, not stopping at
    ``n_prompts``), then the first ``n_prompts`` refused ones are attacked: the same attempts as
    :func:`run_campaign` in one process, keyed the same way, so either can resume the other's run.
    """
    from probes.scaleout import cluster, run_keyed

    shared = (config, str(run_dir))
    with cluster(ray):
        if config.only_refused:
            base = JsonlLog(run_dir / BASELINE)
            have = {r["prompt"] for r in base.read()}
            tasks = [(p, ("baseline", p, 0)) for p in prompts if p not in have]
            run_keyed(tasks, _campaign_worker, base, ray, shared=shared, progress=progress, desc="baselines")
            refused = {r["prompt"] for r in base.read() if r["refused"]}
            asked = prompts
            prompts = [p for p in prompts if p in refused][: config.n_prompts]
            if not prompts:
                raise _none_refused(len(asked))
        tasks = [(attempt_key(p, s), ("attempt", p, s)) for p in prompts for s in config.seeds]
        stats = run_keyed(
            tasks,
            _campaign_worker,
            JsonlLog(run_dir / ATTEMPTS),
            ray,
            shared=shared,
            progress=progress,
            desc=config.method,
        )
    if stats.failed:
        raise InputError(
            f"{len(stats.failed)} attempts lost their worker more than {ray.max_retries} times; the rest "
            "are saved. Resume the run to retry them."
        )
    return run_dir


def check_resume(run_dir: str | Path, config: CampaignConfig, flag: str = "--run-dir") -> None:
    """Refuse to resume ``run_dir`` with a config other than the one it holds; writes nothing.

    A folder without ``campaign.json`` (new or empty) passes; ``flag`` names the option in the error."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise InputError(f"{flag} {run_dir} is a file; pass a campaign folder (new or to resume).")
    if (run_dir / CAMPAIGN_JSON).is_file():
        check_same_config(run_dir, config)  # only reads when the file exists
