"""Activation-capture overhead on smollm2-135m-instruct: each backend vs a bare HF forward, one process.

For each repeat, in interleaved order: (a) bare HF forward over the same right-padded batches
(tokenisation included), on a pristine copy of the model, (b) ``capture`` of ``resid_post`` at every layer through TransformerLens,
(c) the same through nnsight; plus the truncated forward (``resid_post`` at layer L/2) vs the full one.
Prints medians and ratios; goal: capture/bare <= 1.15x.

    python benchmarks/capture.py [--prompts 32] [--repeats 5] [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from probes.capture import capture
from probes.loading import load_model

BASE = [
    "Explain how photosynthesis works.",
    "Write a haiku about the sea.",
    "What is 17 times 23?",
    "Summarise the plot of Hamlet in two sentences.",
    "Give three tips for learning a language.",
    "def quicksort(xs):",
    "Translate 'good morning' into French.",
    "Why is the sky blue?",
]


def bare_forward(h, prompts, batch_size):
    ids, lengths = h.tokenize(prompts)
    order = sorted(range(len(prompts)), key=lambda i: int(lengths[i]))
    with torch.no_grad():
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            h.hf(ids[idx, : int(lengths[idx].max())])


def timed(fn, *a, **k):
    t = time.perf_counter()
    fn(*a, **k)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    # The baseline gets its own pristine copy: building the TL view wraps the HF modules in place.
    pristine = load_model(args.model, backend="hf", progress=False)
    h = load_model(args.model, backend="tl", progress=False)
    _ = h.nnsight  # build both views up front
    prompts = [f"{BASE[i % len(BASE)]} ({i})" for i in range(args.prompts)]
    n = h.info.n_layers
    every = [f"resid_post.{i}" for i in range(n)]
    mid = [f"resid_post.{n // 2}"]
    kw = {"batch_size": args.batch_size, "progress": False}
    runs = {
        "bare HF forward": lambda: bare_forward(pristine, prompts, args.batch_size),
        "capture tl (all layers)": lambda: capture(h, prompts, every, backend="tl", truncate=False, **kw),
        "capture nnsight (all layers)": lambda: capture(
            h, prompts, every, backend="nnsight", truncate=False, **kw
        ),
        f"capture tl, layer {n // 2}, full forward": lambda: capture(h, prompts, mid, truncate=False, **kw),
        f"capture tl, layer {n // 2}, truncated": lambda: capture(h, prompts, mid, truncate=True, **kw),
        f"capture nnsight, layer {n // 2}, truncated": lambda: capture(
            h, prompts, mid, backend="nnsight", truncate=True, **kw
        ),
    }
    for fn in runs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            times[name].append(timed(fn))
    base = statistics.median(times["bare HF forward"])
    print(
        f"{args.model}, {args.prompts} prompts, batch {args.batch_size}, torch threads {torch.get_num_threads()}, "
        f"median of {args.repeats}"
    )
    print(f"{'run':45s} {'median s':>9s} {'vs bare':>8s}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:45s} {m:9.3f} {m / base:7.2f}x")
    full_mid = statistics.median(times[f"capture tl, layer {n // 2}, full forward"])
    trunc_mid = statistics.median(times[f"capture tl, layer {n // 2}, truncated"])
    print(f"truncation speed-up at layer {n // 2}/{n}: {full_mid / trunc_mid:.2f}x")


if __name__ == "__main__":
    main()
