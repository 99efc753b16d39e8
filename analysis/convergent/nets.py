"""Small CNNs trained on scikit-learn's 8x8 digits with different seeds, and their per-layer activations.

Architecture (:class:`DigitsCNN`, default widths)::

    image [1, 8, 8] (pixel values / 16)
    conv1: 3x3 conv, 16 channels, ReLU          -> [16, 8, 8]   then 2x2 max-pool -> [16, 4, 4]
    conv2: 3x3 conv, 32 channels, ReLU          -> [32, 4, 4]   then 2x2 max-pool -> [32, 2, 2]
    fc1:   dense 128 -> 64, ReLU                -> [64]
    logits: dense 64 -> 10                      -> [10]

Activations are taken after each ReLU (before pooling). Conv layers are turned into ``[n, units]``
matrices in one of three stated ways (``conv=``):

* ``"positions"`` (Li et al. 2016): every (image, position) pair is a sample, units are channels:
  ``[n_images * H * W, C]``, rows image-major then row-major positions;
* ``"mean"``: spatial average per channel, ``[n_images, C]``;
* ``"flatten"``: every (channel, position) is a feature, ``[n_images, C * H * W]`` (used for CKA).

Training is deterministic per seed (the seed sets the initialisation and the mini-batch order; the
train/test split is fixed by ``split_seed``) and takes seconds on a CPU.

>>> data = load_digits_split()
>>> tuple(data.x_train.shape), tuple(data.x_test.shape)
((1257, 1, 8, 8), (540, 1, 8, 8))
>>> net = DigitsCNN()
>>> {k: tuple(v.shape) for k, v in net.forward_layers(data.x_test[:2]).items()}
{'conv1': (2, 16, 8, 8), 'conv2': (2, 32, 4, 4), 'fc1': (2, 64), 'logits': (2, 10)}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from analysis.arrays import check_int
from probes.errors import InputError

LAYERS = ("conv1", "conv2", "fc1", "logits")
"""Layers whose activations :func:`layer_activations` returns, input to output."""
CONV_LAYERS = ("conv1", "conv2")
CONV_MODES = ("positions", "mean", "flatten")
ConvMode = Literal["positions", "mean", "flatten"]

__all__ = [
    "CONV_LAYERS",
    "CONV_MODES",
    "LAYERS",
    "DigitsCNN",
    "DigitsData",
    "TrainedNet",
    "check_layers",
    "layer_activations",
    "limit_threads",
    "load_digits_split",
    "train_digits_net",
]


@contextmanager
def limit_threads(n: int | None) -> Iterator[None]:
    """Temporarily run torch and the BLAS/OpenMP pools (threadpoolctl) on ``n`` threads (``None``: leave
    as is), restoring them after.

    These nets and fits are tiny: on a busy 2-core machine one thread is 10-100x faster than two
    contending ones.
    """
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(check_int(n, "threads", 1))
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(old)


@dataclass(frozen=True)
class DigitsData:
    """The fixed digits split: images ``[n, 1, 8, 8]`` scaled to [0, 1] and integer labels ``[n]``."""

    x_train: Float[Tensor, "n_train 1 8 8"]
    y_train: Int[Tensor, " n_train"]
    x_test: Float[Tensor, "n_test 1 8 8"]
    y_test: Int[Tensor, " n_test"]


def load_digits_split(test_size: float = 0.3, split_seed: int = 0) -> DigitsData:
    """scikit-learn's 1,797 digits (offline), split stratified into train / held-out test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.05 <= test_size <= 0.9:
        raise InputError(f"test_size must be in [0.05, 0.9], got {test_size}.")
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=split_seed, stratify=y)

    def img(a: np.ndarray) -> Tensor:
        return torch.tensor(a / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)

    return DigitsData(img(x_tr), torch.tensor(y_tr), img(x_te), torch.tensor(y_te))


class DigitsCNN(nn.Module):
    """Two 3x3 conv layers (each followed by 2x2 max-pooling) and two dense layers for 8x8 digits."""

    def __init__(self, conv1: int = 16, conv2: int = 32, hidden: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1, 3, padding=1)
        self.conv2 = nn.Conv2d(conv1, conv2, 3, padding=1)
        self.fc1 = nn.Linear(conv2 * 2 * 2, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward_layers(self, x: Float[Tensor, "n 1 8 8"]) -> dict[str, Tensor]:
        """Post-ReLU activations of conv1 ``[n, C1, 8, 8]``, conv2 ``[n, C2, 4, 4]``, fc1 ``[n, H]``
        and the logits ``[n, 10]``."""
        h1 = torch.relu(self.conv1(x))
        h2 = torch.relu(self.conv2(nn.functional.max_pool2d(h1, 2)))
        h3 = torch.relu(self.fc1(nn.functional.max_pool2d(h2, 2).flatten(1)))
        return {"conv1": h1, "conv2": h2, "fc1": h3, "logits": self.fc2(h3)}

    def forward(self, x: Float[Tensor, "n 1 8 8"]) -> Float[Tensor, "n 10"]:
        return self.forward_layers(x)["logits"]


@dataclass
class TrainedNet:
    """A trained :class:`DigitsCNN` with its seed and accuracies."""

    seed: int
    model: DigitsCNN
    train_accuracy: float
    test_accuracy: float


@torch.no_grad()
def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((model(x).argmax(1) == y).double().mean())


def train_digits_net(
    seed: int,
    data: DigitsData | None = None,
    *,
    epochs: int = 15,
    batch_size: int = 32,
    lr: float = 3e-3,
    widths: Sequence[int] = (16, 32, 64),
    threads: int | None = 1,
    callback: Callable[[int, float], None] | None = None,
) -> TrainedNet:
    """Train one :class:`DigitsCNN` with Adam; ``seed`` fixes the initialisation and batch order.

    ``callback(epoch, mean_loss)`` is called after each epoch. The global torch RNG is left untouched;
    ``threads`` torch threads are used while training (see :func:`limit_threads`).
    """
    check_int(epochs, "epochs", 1)
    check_int(batch_size, "batch_size", 1)
    if len(widths) != 3:
        raise InputError(f"widths must be (conv1, conv2, hidden), got {tuple(widths)}.")
    data = data or load_digits_split()
    with limit_threads(threads):
        return _train(seed, data, epochs, batch_size, lr, widths, callback)


def _train(seed, data, epochs, batch_size, lr, widths, callback) -> TrainedNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsCNN(*(check_int(w, "width", 1) for w in widths))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = data.x_train.shape[0]
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if callback is not None:
            callback(epoch, total / n)
    model.eval()
    return TrainedNet(
        seed=seed,
        model=model,
        train_accuracy=_accuracy(model, data.x_train, data.y_train),
        test_accuracy=_accuracy(model, data.x_test, data.y_test),
    )


def check_layers(layers: str | Sequence[str]) -> list[str]:
    """Validate layer names against :data:`LAYERS` (order kept, duplicates dropped)."""
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise InputError(f"no layers given; choose from {list(LAYERS)}.")
    for name in names:
        if name not in LAYERS:
            raise InputError(f"unknown layer {name!r}; choose from {list(LAYERS)}.")
    return list(dict.fromkeys(names))


@torch.no_grad()
def layer_activations(
    model: DigitsCNN | TrainedNet,
    x: Float[Tensor, "n 1 8 8"],
    layers: str | Sequence[str] = LAYERS,
    *,
    conv: ConvMode = "positions",
    threads: int | None = 1,
) -> dict[str, Float[np.ndarray, "rows units"]]:
    """Activations per layer as float64 ``[rows, units]`` matrices (see the module doc for ``conv``).

    Dense layers give ``[n, units]``; conv layers ``[n*H*W, C]`` (positions), ``[n, C]`` (mean) or
    ``[n, C*H*W]`` (flatten).
    """
    if isinstance(model, TrainedNet):
        model = model.model
    if conv not in CONV_MODES:
        raise InputError(f"unknown conv mode {conv!r}; choose from {list(CONV_MODES)}.")
    names = check_layers(layers)
    if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise InputError(f"x must be a [n, 1, 8, 8] float tensor of digit images, got {shape}.")
    model.eval()
    with limit_threads(threads):
        out = model.forward_layers(x.float())
    acts = {}
    for name in names:
        h = out[name].double()
        if h.ndim == 4:
            n, c, hh, ww = h.shape
            if conv == "positions":
                h = h.permute(0, 2, 3, 1).reshape(n * hh * ww, c)
            elif conv == "mean":
                h = h.mean(dim=(2, 3))
            else:
                h = h.reshape(n, c * hh * ww)
        acts[name] = h.numpy().copy()
    return acts
