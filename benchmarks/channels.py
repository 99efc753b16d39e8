"""Channel scan vs TransformerLens head-level composition scores, same model, same process.

Ours: every (sender head, SVD component) × later receiver head × {Q, K, V} with the receiver null
(``analysis.channels.scan_channels``). Baseline: TransformerLens 4.x ``bridge.all_composition_scores(m)``
for m in Q, K, V (head level only: d_head× fewer scores). Prints times, score counts and the ratio; then
the scan's time and peak RSS on each model given with ``--all``.

    python benchmarks/channels.py [--model smollm2-135m-instruct] [--all] [--threads 1] [--skip-tl]

Memory warning: TransformerLens 4.3's ``all_composition_scores`` materialises every head pair's product;
on SmolLM2 one mode peaks at ~23.5 GB RSS (measured), i.e. all of a 24 GB machine. Run the baseline only
on an otherwise idle machine, or use ``--skip-tl``.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import torch

from analysis.channels import ScanConfig, scan_channels
from probes.loading import load_model
from probes.packs import PACKS
from probes.weights import head_weights


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def ours(handle, n_null: int) -> tuple[float, int]:
    t = time.perf_counter()
    df = scan_channels(head_weights(handle), ScanConfig(n_null=n_null))
    return time.perf_counter() - t, len(df)


def tl_baseline(handle) -> tuple[float, int]:
    bridge = handle.tl
    t = time.perf_counter()
    n = 0
    for mode in "QKV":
        scores = bridge.all_composition_scores(mode)
        n += int((scores.scores != 0).sum()) if hasattr(scores, "scores") else int((scores != 0).sum())
        print(
            f"  TL {mode}: {time.perf_counter() - t:.1f} s cumulative, peak RSS {rss_gb():.1f} GB", flush=True
        )
        del scores
        gc.collect()
    return time.perf_counter() - t, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n-null", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    ap.add_argument("--all", action="store_true", help="also time the scan on every packaged model")
    ap.add_argument("--skip-tl", action="store_true", help="skip the TransformerLens baseline (memory)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    h = load_model(args.model, backend="tl", progress=False)
    print(f"{args.model}, torch threads {torch.get_num_threads()}", flush=True)
    t_ours, n_ours = ours(h, args.n_null)
    print(
        f"  ours (component level, Q/K/V, {args.n_null}-direction null): {t_ours:7.2f} s, {n_ours:,} scores, "
        f"peak RSS so far {rss_gb():.1f} GB",
        flush=True,
    )
    if not args.skip_tl:
        t_tl, n_tl = tl_baseline(h)
        print(f"  TransformerLens all_composition_scores Q/K/V (head level): {t_tl:7.2f} s, {n_tl:,} scores")
        print(f"  time ratio ours/TL = {t_ours / t_tl:.3f}x for {n_ours / max(n_tl, 1):.0f}x more scores")
    if args.all:
        del h
        gc.collect()
        for name in PACKS:
            h = load_model(name, backend="hf", progress=False)
            before = rss_gb()
            t, n = ours(h, args.n_null)
            print(
                f"  scan {name:30s} {t:7.1f} s  {n:>12,} scores  peak RSS {rss_gb():.1f} GB "
                f"(model loaded: {before:.1f} GB)"
            )
            del h
            gc.collect()


if __name__ == "__main__":
    main()
