"""Uni-modal 3D encoders: a small PointNet trained contrastively in this repo, and the ModelNet40 PointNet.

* :class:`PointNetEncoder` - shared per-point MLP (1x1 convs + BatchNorm + ReLU) and a max-pool to a
  global feature (256-d by default), plus a projection head used only for training.
  :func:`train_pointnet` trains it SimCLR-style: NT-Xent (InfoNCE) between two augmented views
  (:func:`analysis.alignment.geometry.augment`) of each shape of the ``train`` split - no captions, no
  labels. The committed weights (``weights/pointnet.safetensors`` + ``weights/pointnet.json``) come from
  ``python -m analysis.alignment.train_pointnet --out analysis/alignment/weights``;
  :func:`load_pointnet` reads them with safetensors only. With ``objective="autoencoder"`` the same
  encoder is trained instead to reconstruct one augmented view through an MLP decoder (Chamfer loss);
  its feature keeps pose and fine geometry, the other pretraining the reference note (E3) names
  (``weights/pointnet_ae.*``, ``--objective autoencoder --steps 1500 --name pointnet_ae``).
* :class:`ModelNetPointNet` - the feature extractor of a PointNet classifier trained on ModelNet40
  (learning3d, 1024-d max-pooled feature), read from a torch state dict with ``weights_only=True``.
  ModelNet is y-up, our shapes z-up: axes are swapped to (x, z, y) and each cloud is scaled to the unit
  sphere, as the checkpoint expects.

>>> import torch
>>> net = PointNetEncoder(widths=(16, 32), dim=8, proj_dim=4).eval()
>>> tuple(net(torch.zeros(2, 3, 50)).shape)
(2, 8)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from jaxtyping import Float
from pydantic import Field
from torch import Tensor, nn

from probes.config import Config
from probes.datasets import locate_data, where_looked
from probes.errors import InputError

__all__ = [
    "DEFAULT_AE_WEIGHTS",
    "DEFAULT_WEIGHTS",
    "MODELNET_CHECKPOINT_ENV",
    "OBJECTIVES",
    "ModelNetPointNet",
    "PointNetEncoder",
    "TrainConfig",
    "chamfer",
    "default_modelnet_checkpoint",
    "encode_points",
    "load_modelnet_pointnet",
    "load_pointnet",
    "nt_xent",
    "save_pointnet",
    "train_pointnet",
]

DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "pointnet"  # .safetensors + .json
DEFAULT_AE_WEIGHTS = Path(__file__).parent / "weights" / "pointnet_ae"  # the autoencoder-trained one
MODELNET_CHECKPOINT_ENV = "SUBLENS_MODELNET_POINTNET"
MODELNET_CHECKPOINT = "models/pointnet-modelnet40/best_model.t7"  # under the shared folder
Objective = Literal["contrastive", "autoencoder"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)


def _pointwise(widths: tuple[int, ...], c_in: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv1d(c_in, w, 1), nn.BatchNorm1d(w), nn.ReLU()]
        c_in = w
    return nn.Sequential(*layers)


class PointNetEncoder(nn.Module):
    """PointNet without T-nets: ``[b, 3, n]`` points -> per-point MLP -> max-pool -> ``[b, dim]``."""

    def __init__(self, widths: tuple[int, ...] = (64, 128), dim: int = 256, proj_dim: int = 128) -> None:
        super().__init__()
        self.widths, self.dim, self.proj_dim = tuple(widths), int(dim), int(proj_dim)
        self.point_mlp = _pointwise((*self.widths, self.dim))
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, proj_dim))

    def forward(self, x: Float[Tensor, "b 3 n"]) -> Float[Tensor, "b dim"]:
        return self.point_mlp(x).amax(dim=2)

    def project(self, feats: Float[Tensor, "b dim"]) -> Float[Tensor, "b proj"]:
        """Projection head (training only), L2-normalised."""
        return nn.functional.normalize(self.head(feats), dim=1)


class ModelNetPointNet(nn.Module):
    """The feature extractor of learning3d's ModelNet40 PointNet: 3->64->64->64->128->1024, max-pool."""

    def __init__(self) -> None:
        super().__init__()
        widths, c_in = (64, 64, 64, 128, 1024), 3
        for i, w in enumerate(widths, 1):
            setattr(self, f"conv{i}", nn.Conv1d(c_in, w, 1))
            setattr(self, f"bn{i}", nn.BatchNorm1d(w))
            c_in = w
        self.dim = 1024

    def forward(self, x: Float[Tensor, "b 3 n"]) -> Float[Tensor, "b 1024"]:
        for i in range(1, 6):
            x = torch.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return x.amax(dim=2)

    @staticmethod
    def prepare(points: Float[Tensor, "b n 3"]) -> Float[Tensor, "b 3 n"]:
        """z-up clouds -> y-up (x, z, y), centred, scaled into the unit sphere, channels first."""
        p = points[..., [0, 2, 1]]
        p = p - p.mean(dim=1, keepdim=True)
        p = p / p.norm(dim=2).amax(dim=1).clamp_min(1e-12)[:, None, None]
        return p.transpose(1, 2)


def default_modelnet_checkpoint() -> Path | None:
    """The ModelNet40 checkpoint found by :func:`probes.datasets.locate_data`: ``$SUBLENS_MODELNET_POINTNET``,
    else ``shared/models/pointnet-modelnet40/best_model.t7`` beside the repository; None if neither exists."""
    return locate_data(None, MODELNET_CHECKPOINT_ENV, MODELNET_CHECKPOINT, "ModelNet40 PointNet checkpoint")


def load_modelnet_pointnet(path: str | Path | None = None) -> ModelNetPointNet:
    """Load the ModelNet40 PointNet feature extractor (``torch.load(..., weights_only=True)`` only)."""
    found = locate_data(path, MODELNET_CHECKPOINT_ENV, MODELNET_CHECKPOINT, "ModelNet40 PointNet checkpoint")
    if found is None or not found.is_file():
        raise InputError(
            f"ModelNet40 PointNet checkpoint not found ({where_looked(MODELNET_CHECKPOINT_ENV, MODELNET_CHECKPOINT)}). "
            "Point modelnet_checkpoint (or that variable) at learning3d's "
            "pretrained/exp_classifier/models/best_model.t7, or drop 'modelnet' from encoders_3d."
        )
    path = found
    state = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "feature_model."
    feats = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    net = ModelNetPointNet()
    net.load_state_dict(feats, strict=True)
    return net.eval()


class TrainConfig(Config):
    """Settings of :func:`train_pointnet` (the ``train_pointnet`` script flags map onto these)."""

    steps: int = Field(600, ge=1)  # optimiser steps
    batch_size: int = Field(64, ge=2)  # shapes per step (2 views each; NT-Xent needs negatives: >= 2)
    n_points: int = Field(256, ge=1)  # points per view during training
    n_shapes: int = Field(4096, ge=1)  # size of the generated train split
    widths: tuple[int, ...] = (64, 128)  # hidden widths of the per-point MLP
    dim: int = Field(256, ge=1)  # global feature width
    proj_dim: int = Field(128, ge=1)  # projection head output (training only)
    temperature: float = Field(0.1, gt=0, le=10)  # NT-Xent temperature (contrastive only)
    objective: Objective = (
        "contrastive"  # "contrastive" (NT-Xent between two views) or "autoencoder" (Chamfer)
    )
    lr: float = 2e-3  # Adam learning rate (cosine decay to 0)
    weight_decay: float = 1e-5
    seed: int = 0  # data, init and augmentation seed
    threads: int = Field(1, ge=1)  # torch threads
    extra: dict = {}  # recorded as-is in the JSON (e.g. timings)


def chamfer(a: Float[Tensor, "b n 3"], b: Float[Tensor, "b m 3"]) -> Float[Tensor, " b"]:
    """Symmetric squared Chamfer distance per cloud pair: mean nearest-neighbour squared distance both ways.

    >>> a = torch.rand(2, 5, 3)
    >>> float(chamfer(a, a.flip(1)).abs().max()), bool((chamfer(a, a + 0.1) > 0).all())
    (0.0, True)
    """
    d = torch.cdist(a, b).pow(2)
    return d.min(dim=2).values.mean(dim=1) + d.min(dim=1).values.mean(dim=1)


def point_decoder(dim: int, n_points: int, hidden: int = 512) -> nn.Sequential:
    """The autoencoder's decoder (training only): ``[b, dim]`` -> ``[b, n_points * 3]`` coordinates."""
    return nn.Sequential(
        nn.Linear(dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 2 * hidden),
        nn.ReLU(),
        nn.Linear(2 * hidden, 3 * n_points),
    )


def nt_xent(z1: Float[Tensor, "b k"], z2: Float[Tensor, "b k"], temperature: float = 0.1) -> Tensor:
    """NT-Xent / InfoNCE over ``2b`` L2-normalised embeddings; positives are ``(z1[i], z2[i])``.

    >>> z = torch.nn.functional.normalize(torch.eye(4), dim=1)
    >>> bool(nt_xent(z, z, 0.05) < nt_xent(z, z.roll(1, 0), 0.05))
    True
    """
    z = torch.cat([z1, z2])
    b = z1.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    return nn.functional.cross_entropy(sim, target)


def train_pointnet(
    config: TrainConfig | None = None, *, log: Callable[[int, float], None] | None = None
) -> tuple[PointNetEncoder, TrainConfig]:
    """Train :class:`PointNetEncoder` contrastively on the ``train`` split; returns (eval-mode net, config).

    The config's ``extra`` records the wall time, final loss and the loss curve (every 50 steps).
    """
    from .geometry import augment
    from .shapes import make_shapes

    cfg = config or TrainConfig()
    old = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng([cfg.seed, 11])
        t0 = time.time()
        data = make_shapes(cfg.n_shapes, seed=cfg.seed, split="train", n_points=1024)
        t_data = time.time() - t0
        net = PointNetEncoder(cfg.widths, cfg.dim, cfg.proj_dim)
        autoencoder = cfg.objective == "autoencoder"
        decoder = point_decoder(cfg.dim, cfg.n_points) if autoencoder else None
        params = list(net.parameters()) + (list(decoder.parameters()) if autoencoder else [])
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / cfg.steps))
        )
        net.train()
        curve, running = [], []
        for step in range(cfg.steps):
            idx = rng.choice(len(data), size=cfg.batch_size, replace=False)
            v1 = torch.from_numpy(np.stack([augment(data.points[i], rng, n=cfg.n_points) for i in idx]))
            if autoencoder:  # reconstruct the posed view itself: the feature keeps pose and geometry
                recon = decoder(net(v1.transpose(1, 2))).view(cfg.batch_size, cfg.n_points, 3)
                loss = chamfer(recon, v1).mean()
            else:
                v2 = torch.from_numpy(np.stack([augment(data.points[i], rng, n=cfg.n_points) for i in idx]))
                z = net.project(net(torch.cat([v1, v2]).transpose(1, 2)))
                loss = nt_xent(z[: cfg.batch_size], z[cfg.batch_size :], cfg.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            running.append(float(loss.detach()))
            if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
                curve.append([step + 1, float(np.mean(running))])
                running = []
                if log:
                    log(step + 1, curve[-1][1])
        extra = {
            "train_seconds": round(time.time() - t0, 1),
            "data_seconds": round(t_data, 1),
            "final_loss": curve[-1][1],
            "loss_curve": curve,
            "torch": torch.__version__,
        }
    finally:
        torch.set_num_threads(old)
    return net.eval(), cfg.model_copy(update={"extra": extra})


def save_pointnet(net: PointNetEncoder, config: TrainConfig, stem: str | Path) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` (encoder weights, no projection head) and ``<stem>.json`` (config)."""
    from safetensors.torch import save_file

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items() if k.startswith("point_mlp.")}
    weights, meta = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    save_file(state, str(weights))
    meta.write_text(json.dumps(config.to_json(), indent=2) + "\n")
    return weights, meta


def load_pointnet(stem: str | Path | None = None) -> PointNetEncoder:
    """Load a saved :class:`PointNetEncoder` (default: the committed weights), in eval mode, via safetensors."""
    from safetensors.torch import load_file

    stem = Path(stem) if stem else DEFAULT_WEIGHTS
    weights, meta = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if not (weights.is_file() and meta.is_file()):
        raise InputError(
            f"PointNet weights {str(weights)!r} / {str(meta)!r} not found. Train them with "
            f"`python -m analysis.alignment.train_pointnet --out {stem.parent}`."
        )
    cfg = TrainConfig.parse(json.loads(meta.read_text()))
    net = PointNetEncoder(cfg.widths, cfg.dim, cfg.proj_dim)
    missing, unexpected = net.load_state_dict(load_file(str(weights)), strict=False)
    if unexpected or any(k.startswith("point_mlp.") for k in missing):
        raise InputError(f"{weights}: weights do not match the config in {meta} ({missing or unexpected}).")
    return net.eval()


@torch.no_grad()
def encode_points(
    net: nn.Module, points: Float[np.ndarray, "n m 3"] | Tensor, *, batch_size: int = 128
) -> Float[Tensor, "n dim"]:
    """Global features ``[n, dim]`` (float32) of ``[n, m, 3]`` clouds with an eval-mode encoder.

    A :class:`ModelNetPointNet` gets its own preparation (axis swap, unit sphere); others see the raw
    (centred, z-up) coordinates.
    """
    x = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    if x.ndim != 3 or x.shape[-1] != 3 or x.shape[0] == 0:
        raise InputError(f"points must be a non-empty [n, m, 3] array, got shape {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        raise InputError("points contain NaN/inf.")
    net.eval()
    out = []
    for i in range(0, len(x), batch_size):
        b = x[i : i + batch_size]
        b = ModelNetPointNet.prepare(b) if isinstance(net, ModelNetPointNet) else b.transpose(1, 2)
        out.append(net(b))
    return torch.cat(out)
