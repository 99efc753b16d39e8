"""Train the in-house PointNet contrastively and write ``pointnet.safetensors`` + ``pointnet.json``.

Usage: ``python -m analysis.alignment.train_pointnet --out analysis/alignment/weights [--steps 600]``
(a few CPU minutes on one thread). See :func:`analysis.alignment.pointnet.train_pointnet`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .pointnet import OBJECTIVES, TrainConfig, save_pointnet, train_pointnet

_INT_FLAGS = ("steps", "batch_size", "n_points", "n_shapes", "seed", "threads")


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    ap = argparse.ArgumentParser(prog="python -m analysis.alignment.train_pointnet", description=__doc__)
    ap.add_argument("--out", required=True, help="folder for pointnet.safetensors and pointnet.json")
    for name in _INT_FLAGS:  # --steps N etc.: TrainConfig fields
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    ap.add_argument("--objective", choices=OBJECTIVES, default=defaults.objective)
    ap.add_argument("--name", default="pointnet", help="file stem inside --out (default: pointnet)")
    args = vars(ap.parse_args(argv))
    cfg = TrainConfig(**{k: v for k, v in args.items() if k in TrainConfig.model_fields})
    net, cfg = train_pointnet(cfg, log=lambda s, loss: print(f"step {s:5d}  loss {loss:.4f}", flush=True))
    weights, meta = save_pointnet(net, cfg, Path(args["out"]) / args["name"])
    print(
        f"wrote {weights} ({weights.stat().st_size / 1e3:.0f} kB) and {meta}; {cfg.extra['train_seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
