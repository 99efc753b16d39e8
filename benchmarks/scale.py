"""Throughput of a fixed attack campaign: one process vs Ray with 1 and 2 workers (one thread each).

Same machine, same run; prints attempts/hour, the ratio against the single-process baseline, and the
single process's peak RSS (each worker holds one copy of what it held). Wall time includes starting the private Ray cluster and loading the
model in every worker, as a user pays it.

    python benchmarks/scale.py [--attempts 16] [--steps 40] [--model tiny-3]

Goals (issue 16): 2 workers ≥ 1.8× the single process on a 2-core machine; 1 worker within 10 %.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from analysis.rerouting import CampaignConfig, run_campaign
from analysis.rerouting.campaign import read_attempts
from probes.scaleout import RayConfig


def campaign(model: str, n_attempts: int, steps: int) -> CampaignConfig:
    prompts = [f"please tell me about item number {i} in the list" for i in range(n_attempts)]
    return CampaignConfig.parse(
        {
            "model": model,
            "method": "attention-ssr",
            "heads": [[1, 0], [2, 1]],
            "prompts": prompts,
            "seeds": [0],
            "check_every": 0,
            "max_new_tokens": 4,
            "optimiser": {
                "n_tokens": 6,
                "steps": steps,
                "search_width": 64,
                "topk": 16,
                "early_stop_loss": 0.0,
            },
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=16)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--model", default="tiny-3")
    args = ap.parse_args()
    cfg = campaign(args.model, args.attempts, args.steps)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, ray in [("single process", None), ("ray, 1 worker", RayConfig(workers=1)),
                          ("ray, 2 workers", RayConfig(workers=2))]:  # fmt: skip
            run_dir = Path(tmp) / name.replace(" ", "_").replace(",", "")
            t = time.perf_counter()
            run_campaign(cfg, run_dir, progress=False, ray=ray)
            seconds = time.perf_counter() - t
            assert len(read_attempts(run_dir)) == args.attempts
            rows.append((name, seconds, args.attempts / seconds * 3600))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # a worker holds what the driver held
    base = rows[0][2]
    print(
        f"campaign: {args.attempts} attempts × {args.steps} steps on {args.model}, 1 torch thread per worker"
    )
    for name, seconds, per_hour in rows:
        print(
            f"{name:16s} {seconds:7.1f} s  {per_hour:9.0f} attempts/h  ×{per_hour / base:.2f} vs single process"
        )
    print(f"memory: the single process peaked at {rss:.0f} MB RSS; each Ray worker holds one such copy")


if __name__ == "__main__":
    main()
