"""The refusal-hardened organism, end to end: evaluate refusal on val prompts and held-out LM loss
(:func:`evaluate_organism`), and train + save + evaluate an adapter in a run folder (:func:`harden`).

The refusal judge is the project's one matcher (:func:`analysis.refusal.checks.is_refusal`) on a greedy
``max_new_tokens`` answer, as in the attack campaigns' ``phrase`` check.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from analysis.refusal.checks import is_refusal
from analysis.refusal.harden import HardenConfig, base_answers, train_adapter, train_examples
from probes.handle import ModelHandle

__all__ = ["evaluate_organism", "harden", "refusal_table"]


def refusal_table(
    handle: ModelHandle, prompts: dict[str, list[str]], max_new_tokens: int = 32
) -> pd.DataFrame:
    """One row per (split, prompt): the greedy answer and whether the matcher calls it a refusal."""
    from probes.generation import generate_batch

    rows = []
    for split, ps in prompts.items():
        for p, a in zip(ps, generate_batch(handle, ps, max_new_tokens, batch_size=16), strict=True):
            rows.append({"split": split, "prompt": p, "response": a, "refused": is_refusal(a)})
    return pd.DataFrame(rows)


def evaluate_organism(
    handle: ModelHandle, n_harmful: int | None = None, n_harmless: int = 100, max_new_tokens: int = 32
) -> tuple[dict, pd.DataFrame]:
    """Refusal rates on harmful_val (first ``n_harmful``, default all 39) and the first ``n_harmless``
    harmless_val prompts, and the held-out LM loss; returns ``(summary, per-prompt table)``."""
    from analysis.tasks.heldout import heldout_texts
    from probes.datasets import shared_refusal_split
    from probes.lm_loss import lm_loss

    prompts = {
        "harmful_val": shared_refusal_split("harmful_val", limit=n_harmful),
        "harmless_val": shared_refusal_split("harmless_val", limit=n_harmless),
    }
    table = refusal_table(handle, prompts, max_new_tokens)
    rates = table.groupby("split")["refused"].mean()
    summary = {
        "refused_harmful_val": float(rates["harmful_val"]),
        "refused_harmless_val": float(rates["harmless_val"]),
        "n": {k: len(v) for k, v in prompts.items()},
        "heldout_lm_loss": lm_loss(handle, heldout_texts()),
    }
    return summary, table


def harden(cfg: HardenConfig, out: Path, run=None, eval_harmless: int = 100, eval_base: bool = False) -> dict:
    """Train the adapter of ``cfg`` into ``out/adapter/``, evaluate the hardened model (and the base model's
    refusals with ``eval_base``; its held-out LM loss always), and write ``out/harden.json`` (hashes,
    numbers) plus ``train_loss.parquet`` and ``val_answers.parquet``."""
    from analysis.tasks.heldout import heldout_texts
    from probes.adapters import adapter_file_hashes
    from probes.datasets import shared_refusal_split
    from probes.lm_loss import lm_loss
    from probes.loading import load_model
    from probes.packs import cache_root
    from probes.runs import write_json, write_table

    out = Path(out)
    handle = load_model(cfg.model, backend="hf", progress=False)
    t0 = time.time()
    if eval_base:
        base, base_table = evaluate_organism(handle, n_harmless=eval_harmless)
    else:
        base, base_table = {"heldout_lm_loss": lm_loss(handle, heldout_texts())}, pd.DataFrame()
    harmful = shared_refusal_split("harmful_train", limit=cfg.n_harmful)
    harmless = shared_refusal_split("harmless_train", limit=cfg.n_harmless)
    answers = base_answers(handle, harmless, cfg.answer_tokens, cache_root() / "harden")
    examples = train_examples(handle, cfg, harmful, harmless, answers)
    t1 = time.time()
    model, losses = train_adapter(handle, cfg, examples)
    t2 = time.time()
    model.save_pretrained(str(out / "adapter"))
    handle.hf = model.merge_and_unload().eval()
    hard, hard_table = evaluate_organism(handle, n_harmless=eval_harmless)
    result = {
        "config": cfg.to_json(),
        "adapter_files": adapter_file_hashes(out / "adapter"),
        "base": base,
        "hardened": hard,
        "lm_loss_change": hard["heldout_lm_loss"] / base["heldout_lm_loss"] - 1,
        "n_examples": len(examples),
        "seconds": {"prepare": t1 - t0, "train": t2 - t1, "evaluate": time.time() - t2},
    }
    write_json(result, out / "harden.json")
    write_table(pd.DataFrame({"step": range(len(losses)), "loss": losses}), out / "train_loss.parquet")
    both = pd.concat([base_table.assign(model="base"), hard_table.assign(model="hardened")])
    write_table(both, out / "val_answers.parquet")
    if run is not None:
        run.record(model=cfg.model, pack_sha256=handle.pack_sha256, harden=result)
    return result
