"""Train the in-house PointNet contrastively and write ``pointnet.safetensors`` + ``pointnet.json``.

Usage: ``python -m analysis.alignment.train_pointnet --out analysis/alignment/weights [--steps 600]``
(a few CPU minutes on one thread). See :func:`analysis.alignment.pointnet.train_pointnet`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .pointnet import OBJECTIVES, TrainConfig, save_pointnet, train_pointnet


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    ap = argparse.ArgumentParser(prog="python -m analysis.alignment.train_pointnet", description=__doc__)
    ap.add_argument("--out", required=True, help="folder for pointnet.safetensors and pointnet.json")
    ap.add_argument("--steps", type=int, default=defaults.steps)
    ap.add_argument("--batch-size", type=int, default=defaults.batch_size)
    ap.add_argument("--n-points", type=int, default=defaults.n_points)
    ap.add_argument("--n-shapes", type=int, default=defaults.n_shapes)
    ap.add_argument("--seed", type=int, default=defaults.seed)
    ap.add_argument("--objective", choices=OBJECTIVES, default=defaults.objective)
    ap.add_argument("--name", default="pointnet", help="file stem inside --out (default: pointnet)")
    ap.add_argument("--threads", type=int, default=defaults.threads)
    args = ap.parse_args(argv)
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        n_points=args.n_points,
        n_shapes=args.n_shapes,
        seed=args.seed,
        threads=args.threads,
        objective=args.objective,
    )
    net, cfg = train_pointnet(cfg, log=lambda s, loss: print(f"step {s:5d}  loss {loss:.4f}", flush=True))
    weights, meta = save_pointnet(net, cfg, Path(args.out) / args.name)
    print(
        f"wrote {weights} ({weights.stat().st_size / 1e3:.0f} kB) and {meta}; {cfg.extra['train_seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
