"""Train the Talking-Heads model organism: a tiny GPT-2 on synthetic IOI + Laundry List prompts (CPU, minutes).

Run ``python -m analysis.tasks.train_organism [--out DIR] [--steps N] [--seed S]``; without ``--out`` it
rewrites the packaged weights in ``probes/organism/weights/``. The output folder gets
``model.safetensors``, ``config.json`` (HF ``GPT2LMHeadModel``), ``tokenizer.json`` and
``tokenizer_config.json`` (word-level), ``train_config.json`` (:class:`OrganismConfig` plus the
training log) and ``metrics.json`` (held-out IOI and Laundry List scores). Everything is written to a
temporary sibling folder first and moved into place with one rename, so a crash never leaves a
half-written model behind. The config, tokenizer and model builders live in
:mod:`analysis.tasks.organism_model` (re-exported here).

**Data.** Every prompt comes from the project's own generators (:func:`analysis.tasks.ioi.ioi_prompts`,
:func:`analysis.tasks.laundry.laundry_list_prompts`) run on the organism's word-level tokenizer, whose
vocabulary is exactly the words of the IOI and Laundry List templates, places, objects, the default
names and the default Laundry items (:func:`organism_vocab`). Each training sequence is
``<bos> prompt answer``. The training pool is fresh prompts, each seen once; the held-out
evaluation prompts (fixed seeds, :func:`heldout_prompts`) are removed from it by exact prompt text.

**Loss.** Cross-entropy on the answer token (IO for IOI, the missing item for Laundry List) plus
``lm_weight`` (default 1) times the mean next-token loss on the prompt's own tokens. The answer term is
what the organism is for. The LM term makes it read the whole prompt like a language model and adds
many signals for the same skills: predicting each re-mentioned Laundry item is "copy a list item not
yet re-mentioned" (inhibition of what was said), and predicting the repeated IOI subject is "copy a
name from context". (Not ablated: no run with ``lm_weight=0`` was compared.) Names and items are
random, so the LM term has an irreducible floor (about 1.0 nats).

**Determinism.** The seed fixes the weight init, the training pool (prompt generator seeds) and the
batch order; with the same ``threads`` setting two runs give bit-identical losses on CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from analysis.tasks.ioi import ioi_prompts
from analysis.tasks.laundry import laundry_list_prompts
from analysis.tasks.organism_model import (
    OrganismConfig,
    build_model,
    build_tokenizer,
    organism_vocab,
)
from analysis.tasks.scoring import accuracy_by_n, ioi_summary, laundry_accuracy, score_ioi, score_laundry
from probes.organism import ORGANISM_DIR

__all__ = [
    "EVAL_SEED",
    "OrganismConfig",
    "build_model",
    "build_tokenizer",
    "check_sample",
    "evaluate",
    "heldout_prompts",
    "main",
    "organism_vocab",
    "train",
]

EVAL_SEED = 1_000_003  # seed of the held-out prompts (fixed, independent of the training seed)
_CHECK_IOI = 64  # held-out IOI prompts in the small "check sample" that tests re-evaluate
_CHECK_PER_N = 16  # held-out Laundry prompts per N in the check sample


# -- data ---------------------------------------------------------------------------------------------
def heldout_prompts(tokenizer, cfg: OrganismConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The held-out evaluation prompts ``(ioi, laundry)`` (fixed seeds; never in the training pool).

    Laundry rows cover both item splits (``split`` column); each split's prompts are generated with
    its own fixed seed. ``cfg`` (default :class:`OrganismConfig`) gives the prompt counts and list lengths.
    """
    cfg = OrganismConfig() if cfg is None else cfg
    ioi = ioi_prompts(tokenizer, n_prompts=cfg.eval_ioi, seed=EVAL_SEED)
    laundry = pd.concat(
        [
            laundry_list_prompts(
                tokenizer, cfg.eval_laundry_n, cfg.eval_laundry_per_n, split=split, seed=EVAL_SEED + i + 1
            )
            for i, split in enumerate(("dev", "test"))
        ],
        ignore_index=True,
    )
    return ioi, laundry


def check_sample(ioi: pd.DataFrame, laundry: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The small fixed subset of the held-out prompts that tests re-evaluate (first rows per group)."""
    small_laundry = laundry.groupby(["split", "n_items"], sort=True).head(_CHECK_PER_N)
    return ioi.head(_CHECK_IOI).reset_index(drop=True), small_laundry.reset_index(drop=True)


def _training_pool(tokenizer, cfg: OrganismConfig, exclude: set[str]) -> tuple[list[str], list[int]]:
    """``(prompts, answer_ids)`` for ``cfg.steps * cfg.batch_size`` sequences, shuffled with the seed."""
    need = cfg.steps * cfg.batch_size
    n_ioi = math.ceil(need * cfg.ioi_frac)
    per_n = math.ceil((need - n_ioi) / (len(cfg.laundry_n) * len(cfg.laundry_splits))) + 1
    frames = []
    if n_ioi:
        frames.append(ioi_prompts(tokenizer, n_prompts=n_ioi, seed=2 * cfg.seed)[["prompt", "answer_id"]])
    if need - n_ioi > 0:
        for i, split in enumerate(cfg.laundry_splits):
            df = laundry_list_prompts(
                tokenizer, cfg.laundry_n, per_n, split=split, seed=1000 * cfg.seed + i + 7
            )
            frames.append(df[["prompt", "answer_id"]])
    pool = pd.concat(frames, ignore_index=True)
    pool = pool[~pool["prompt"].isin(exclude)]
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(cfg.seed)).numpy()
    pool = pool.iloc[order]
    # top up by cycling if the exclusion (or rounding) left the pool short
    reps = math.ceil(need / max(len(pool), 1))
    prompts = (list(pool["prompt"]) * reps)[:need]
    answers = (list(pool["answer_id"].astype(int)) * reps)[:need]
    return prompts, answers


def _encode(tokenizer, prompts: list[str], answers: list[int] | None, n_positions: int):
    """Right-padded ``<bos> prompt [answer]`` ids ``[B, L]`` and lengths ``[B]`` (int64)."""
    seqs = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    if answers is not None:
        seqs = [s + [a] for s, a in zip(seqs, answers, strict=True)]
    lengths = torch.tensor([len(s) for s in seqs])
    if int(lengths.max()) > n_positions:
        raise ValueError(f"a sequence has {int(lengths.max())} tokens > n_positions={n_positions}.")
    ids = torch.full((len(seqs), int(lengths.max())), tokenizer.pad_token_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    return ids, lengths


# -- evaluation ---------------------------------------------------------------------------------------
@torch.no_grad()
def final_logits(model, tokenizer, prompts: list[str], batch_size: int = 256) -> torch.Tensor:
    """``[B, vocab]`` logits at each prompt's last token (``<bos>`` prepended, right padding)."""
    out = []
    for start in range(0, len(prompts), batch_size):
        ids, lengths = _encode(tokenizer, prompts[start : start + batch_size], None, 10**9)
        mask = (torch.arange(ids.shape[1])[None] < lengths[:, None]).long()
        logits = model(input_ids=ids, attention_mask=mask).logits
        out.append(logits[torch.arange(len(ids)), lengths - 1].float())
    return torch.cat(out)


def evaluate(model, tokenizer, ioi: pd.DataFrame, laundry: pd.DataFrame) -> dict:
    """IOI accuracy / logit difference and Laundry List accuracy by N (and by split) on the given prompts."""
    model.eval()
    scored_ioi = score_ioi(final_logits(model, tokenizer, list(ioi["prompt"])), ioi)
    scored_ll = score_laundry(final_logits(model, tokenizer, list(laundry["prompt"])), laundry)
    by_n = accuracy_by_n(scored_ll)
    by_split_n = laundry_accuracy(scored_ll, ["split", "n_items"])
    by_pattern = ioi_summary(scored_ioi)
    return {
        "ioi": {
            "n_prompts": len(scored_ioi),
            "accuracy": float(scored_ioi["correct"].mean()),
            "accuracy_vocab": float(scored_ioi["correct_vocab"].mean()),
            "mean_logit_diff": float(scored_ioi["logit_diff"].mean()),
            "by_pattern": {
                r.pattern: {"accuracy": float(r.accuracy), "mean_logit_diff": float(r.mean_logit_diff)}
                for r in by_pattern.itertuples()
            },
        },
        "laundry": {
            "n_prompts": len(scored_ll),
            "chance_items_by_n": {str(n): 1.0 / n for n in by_n["n_items"]},
            "accuracy_items_by_n": {str(r.n_items): float(r.accuracy_items) for r in by_n.itertuples()},
            "accuracy_vocab_by_n": {str(r.n_items): float(r.accuracy_vocab) for r in by_n.itertuples()},
            "mean_margin_by_n": {str(r.n_items): float(r.mean_margin) for r in by_n.itertuples()},
            "accuracy_items_by_split_n": {
                split: {str(r.n_items): float(r.accuracy_items) for r in g.itertuples()}
                for split, g in by_split_n.groupby("split")
            },
        },
    }


# -- training -----------------------------------------------------------------------------------------
def _lr_at(step: int, cfg: OrganismConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _loss(model, ids: torch.Tensor, lengths: torch.Tensor, lm_weight: float):
    pos = torch.arange(ids.shape[1])[None]
    # right padding: the mask only silences HF's padding warning (causal attention never sees the pads)
    mask = (pos < lengths[:, None]).long()
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = ids[:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    rows = torch.arange(len(ids))
    answer_pos = lengths - 2  # the last prompt token predicts the answer
    answer_loss = ce[rows, answer_pos].mean()
    prompt_mask = (pos[:, :-1] < answer_pos[:, None]).float()
    lm_loss = (ce * prompt_mask).sum() / prompt_mask.sum()
    return answer_loss + lm_weight * lm_loss, answer_loss.detach(), lm_loss.detach()


def _write_atomically(out: Path, write) -> None:
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def train(cfg: OrganismConfig, out: str | Path, progress: bool = True) -> dict:
    """Train with ``cfg``, evaluate on the held-out prompts and write the model folder ``out``.

    Returns ``{"log": [...], "metrics": {...}, "train_seconds": ...}`` (also written to the folder).
    """
    from tqdm.auto import tqdm

    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    tok_dir = Path(out).resolve().with_name(f".{Path(out).name}.tok-{os.getpid()}")
    try:
        tokenizer = build_tokenizer(tok_dir)
        ioi_eval, laundry_eval = heldout_prompts(tokenizer, cfg)
        exclude = set(ioi_eval["prompt"]) | set(laundry_eval["prompt"])
        prompts, answers = _training_pool(tokenizer, cfg, exclude)
        model = build_model(cfg, tokenizer)
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=(0.9, 0.98),
        )
        log = []
        model.train()
        bar = tqdm(range(cfg.steps), desc="organism", unit="step", disable=not progress)
        for step in bar:
            sl = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
            ids, lengths = _encode(tokenizer, prompts[sl], answers[sl], cfg.n_positions)
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg)
            loss, answer_loss, lm_loss = _loss(model, ids, lengths, cfg.lm_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if step % 50 == 0 or step == cfg.steps - 1:
                log.append(
                    {
                        "step": step,
                        "loss": float(loss.detach()),
                        "answer_loss": float(answer_loss),
                        "lm_loss": float(lm_loss),
                    }
                )
                bar.set_postfix(answer=f"{float(answer_loss):.3f}", lm=f"{float(lm_loss):.3f}")
        train_seconds = time.perf_counter() - t0
        metrics = {"heldout": evaluate(model, tokenizer, ioi_eval, laundry_eval)}
        metrics["check_sample"] = evaluate(model, tokenizer, *check_sample(ioi_eval, laundry_eval))
        metrics["train_seconds"] = round(train_seconds, 1)
        metrics["final_answer_loss"] = log[-1]["answer_loss"]
        record = {"config": cfg.to_json(), "log": log, "torch": torch.__version__}

        def write(tmp: Path) -> None:
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
            (tmp / "train_config.json").write_text(json.dumps(record, indent=1) + "\n")
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
            for p in tmp.iterdir():
                p.chmod(0o644)  # safetensors writes 0600; the folder is package data
            stray = [p.name for p in tmp.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
            if stray:
                raise RuntimeError(f"pickle files written next to the safetensors weights: {stray}")

        _write_atomically(Path(out), write)
    finally:
        shutil.rmtree(tok_dir, ignore_errors=True)
    return {"log": log, "metrics": metrics, "train_seconds": train_seconds}


def _summary(metrics: dict) -> str:
    ioi = metrics["heldout"]["ioi"]
    ll = metrics["heldout"]["laundry"]["accuracy_items_by_n"]
    by_n = "  ".join(f"N={n}:{a:.2f}" for n, a in ll.items())
    return (
        f"IOI accuracy {ioi['accuracy']:.3f}, mean logit diff {ioi['mean_logit_diff']:.2f}\n"
        f"Laundry accuracy (among list items) {by_n}\ntrain time {metrics['train_seconds']:.0f} s"
    )


def main(argv: list[str] | None = None) -> dict:
    defaults = OrganismConfig()
    parser = argparse.ArgumentParser(
        prog="python -m analysis.tasks.train_organism", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", default=str(ORGANISM_DIR), help="output folder (default: the packaged weights)"
    )
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--eval-per-n", type=int, default=defaults.eval_laundry_per_n,
                        help="held-out Laundry prompts per N and split (IOI gets 5x as many)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.eval_per_n < 1:
        parser.error("--steps and --eval-per-n must be >= 1")
    cfg = OrganismConfig(
        steps=args.steps,
        seed=args.seed,
        threads=args.threads,
        warmup=min(defaults.warmup, max(args.steps // 10, 1)),
        eval_laundry_per_n=args.eval_per_n,
        eval_ioi=5 * args.eval_per_n,
    )
    result = train(cfg, args.out, progress=not args.quiet)
    print(_summary(result["metrics"]))
    print(f"wrote {Path(args.out).resolve()}")
    return result


if __name__ == "__main__":
    main()
