"""Per-layer linear probes (logistic regression) and difference-of-means directions on activations: the
project's one implementation of each, with one file format.

Inputs are stacked last-token activations ``x[batch, layer, d_model]`` (e.g. ``resid_post.*`` from
:func:`probes.capture.capture`, stacked with :func:`stack_layers`) with labels ``y`` in {0, 1};
``classes`` names what 0 and 1 mean (the refusal code uses ``("harmless", "harmful")``: harmful = 1).
``layers`` says which model layer each slice of ``x`` is (default ``0, 1, …``).

Probes are fitted on standardised features (scikit-learn, L2); :class:`ProbeFit` gives their weights
back in residual space, so ``logit = x · direction[l] + bias[l]`` holds on raw activations
(``direction = w / σ``, ``bias = b − direction · μ``). :meth:`ProbeFit.probe` returns one layer's
``(w, b)`` oriented for either class: ``sigmoid(x · w + b) = P(class)``.

Files (safetensors, read back without unpickling): probes store ``layer.<L>.w`` and ``layer.<L>.b``,
directions ``layer.<L>`` (the unit vector) plus ``layer.<L>.norm`` / ``.mean_pos`` / ``.mean_neg``;
the metadata key ``classes`` holds ``"<label 0>,<label 1>"``. A probe file without it is read as
``harmful,harmless`` (P(harmless), the subspace-rerouting convention those files were written in).

>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(40, 2, 8, generator=g); y = torch.tensor([1, 0] * 20)
>>> x[y == 1, :, 0] += 5.0
>>> fit = fit_linear_probes(x[:30], y[:30], x[30:], y[30:], classes=("harmless", "harmful"))
>>> fit.table.val_acc.tolist()
[1.0, 1.0]
>>> w, b = fit.probe(1, "harmless")  # P(harmless) = sigmoid(x · w + b)
>>> bool((torch.sigmoid(x[y == 0, 1] @ w + b) > 0.5).all())  # the harmless rows read harmless
True
>>> d = diff_of_means(x, y)
>>> torch.allclose(d.diff, x[y == 1].mean(0) - x[y == 0].mean(0))
True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from probes.errors import InputError

__all__ = [
    "MeanDirections",
    "ProbeFit",
    "diff_of_means",
    "fit_linear_probes",
    "load_directions",
    "stack_layers",
]

Classes = tuple[str, str]
_LEGACY_PROBE_CLASSES = ("harmful", "harmless")  # probe files written before the classes metadata


def stack_layers(acts, kind: str = "resid_post") -> Float[Tensor, "batch layer d_model"]:
    """Stack ``acts["<kind>.<l>"]`` (an :class:`~probes.capture.Activations` or a dict) over layers."""
    store = getattr(acts, "acts", acts)
    names = sorted((k for k in store if k.startswith(kind + ".")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if not names:
        raise InputError(
            f"No {kind!r} sites captured (got {', '.join(store) or 'none'}); capture '{kind}.*'."
        )
    return torch.stack([store[k] for k in names], dim=1)


def _layers(layers: Sequence[int] | None, n: int) -> tuple[int, ...]:
    out = tuple(range(n)) if layers is None else tuple(int(k) for k in layers)
    if len(out) != n or len(set(out)) != n:
        raise InputError(f"layers {list(out)} must name each of the {n} stacked layers once.")
    return out


def _classes(classes: Sequence[str]) -> Classes:
    if len(classes) != 2 or classes[0] == classes[1] or any("," in c or not c for c in classes):
        raise InputError(f"classes must be two different names (label 0, label 1), got {classes!r}.")
    return (str(classes[0]), str(classes[1]))


def _save(tensors: dict[str, Tensor], classes: Classes, path: str | Path) -> Path:
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"classes": ",".join(classes)}
    )
    return Path(path)


def _load(path: str | Path) -> tuple[dict[str, Tensor], Classes | None]:
    from safetensors import safe_open

    if not Path(path).is_file():
        raise InputError(f"No safetensors file at {str(path)!r}.")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 -- safe_open has no __iter__
    classes = tuple(meta["classes"].split(",")) if "classes" in meta else None
    return tensors, classes


def _layer_keys(tensors: dict[str, Tensor], suffix: str, path) -> list[int]:
    """The layers ``L`` with a key ``layer.<L><suffix>``, sorted; raises when there is none."""
    pattern = re.compile(rf"layer\.(\d+){re.escape(suffix)}")
    layers = sorted(int(m.group(1)) for k in tensors if (m := pattern.fullmatch(k)))
    if not layers:
        raise InputError(f"{path}: expected keys 'layer.<L>{suffix}', got {sorted(tensors)[:5]}.")
    return layers


def _check_xy(x: Tensor, y: Tensor, what: str) -> tuple[Tensor, Tensor]:
    if not isinstance(x, Tensor) or x.ndim != 3 or not x.is_floating_point():
        raise InputError(
            f"{what} activations must be a float tensor [batch, layer, d_model], got {getattr(x, 'shape', x)}."
        )
    y = torch.as_tensor(y).long().flatten()
    if y.shape[0] != x.shape[0]:
        raise InputError(
            f"{what}: {x.shape[0]} activation rows but {y.shape[0]} labels; pass one label per row."
        )
    if not bool(((y == 0) | (y == 1)).all()):
        raise InputError(
            f"{what} labels must be 0 or 1 (1 = positive class), got values {y.unique().tolist()}."
        )
    if len(y.unique()) < 2:
        raise InputError(
            f"{what} labels hold one class only ({y.unique().tolist()}); both 0 and 1 are needed."
        )
    if not torch.isfinite(x).all():
        raise InputError(f"{what} activations contain NaN/inf.")
    return x, y


@dataclass
class ProbeFit:
    """Per-layer probes: ``table`` (layer, train_acc, val_acc, auc) and residual-space weights."""

    table: pd.DataFrame
    direction: Float[Tensor, "layer d_model"]  # logit of class 1 = x · direction + bias (raw activations)
    bias: Float[Tensor, " layer"]
    layers: tuple[int, ...]  # the model layer of each row
    classes: Classes = ("negative", "positive")  # what labels 0 and 1 mean

    @property
    def best_layer(self) -> int:
        """Layer with the highest validation accuracy (ties: higher AUC, then earlier layer)."""
        t = self.table.sort_values(["val_acc", "auc", "layer"], ascending=[False, False, True])
        return int(t.iloc[0]["layer"])

    def logits(self, x: Float[Tensor, "batch layer d_model"]) -> Float[Tensor, "batch layer"]:
        """Class-1 logits of every probe on ``x`` stacked over :attr:`layers`."""
        return torch.einsum("bld,ld->bl", x.to(self.direction.dtype), self.direction) + self.bias

    def probe(self, layer: int, reads: str | None = None) -> tuple[Float[Tensor, " d_model"], Tensor]:
        """``(w, b)`` of the probe at model layer ``layer`` with ``sigmoid(x · w + b) = P(reads)``
        (default: class 1)."""
        if layer not in self.layers:
            raise InputError(f"No probe for layer {layer}; probes exist for layers {list(self.layers)}.")
        i = self.layers.index(layer)
        w, b = self.direction[i], self.bias[i]
        if reads is None or reads == self.classes[1]:
            return w, b
        if reads == self.classes[0]:
            return -w, -b
        raise InputError(
            f"These probes separate {self.classes[0]!r} from {self.classes[1]!r}, not {reads!r}."
        )

    def save(self, path: str | Path) -> Path:
        """``layer.<L>.w`` / ``layer.<L>.b`` per layer, ``classes`` in the metadata."""
        t = {}
        for i, layer in enumerate(self.layers):
            t[f"layer.{layer}.w"], t[f"layer.{layer}.b"] = self.direction[i], self.bias[i].reshape(())
        return _save(t, self.classes, path)

    @classmethod
    def load(cls, path: str | Path) -> ProbeFit:
        """Probes saved by :meth:`save` (no accuracy table: ``table`` is empty)."""
        t, classes = _load(path)
        layers = _layer_keys(t, ".w", path)
        if any(f"layer.{k}.b" not in t for k in layers):
            raise InputError(f"{path}: every 'layer.<L>.w' needs its 'layer.<L>.b'.")
        return cls(
            pd.DataFrame(columns=["layer", "train_acc", "val_acc", "auc"]),
            torch.stack([t[f"layer.{k}.w"].float() for k in layers]),
            torch.stack([t[f"layer.{k}.b"].float().reshape(()) for k in layers]),
            tuple(layers),
            _classes(classes or _LEGACY_PROBE_CLASSES),
        )


def fit_linear_probes(
    x_train: Float[Tensor, "batch layer d_model"],
    y_train: Int[Tensor, " batch"],
    x_val: Float[Tensor, "batch2 layer d_model"] | None = None,
    y_val: Int[Tensor, " batch2"] | None = None,
    *,
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 2000,
    layers: Sequence[int] | None = None,
    classes: Sequence[str] = ("negative", "positive"),
) -> ProbeFit:
    """Fit one L2 logistic regression per layer on standardised features; score on ``(x_val, y_val)``
    (``x_val=None``: no validation, ``val_acc``/``auc`` are NaN).

    ``C`` is scikit-learn's inverse regularisation: the fit minimises ``Σ BCE + ‖w‖² / (2C)``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = _check_xy(x_train, y_train, "train")
    layers, classes = _layers(layers, x_train.shape[1]), _classes(classes)
    if x_val is None:
        x_val, y_val = x_train[:0], y_train[:0]
    else:
        x_val, y_val = _check_xy(x_val, y_val, "validation")
    if x_val.shape[1:] != x_train.shape[1:]:
        raise InputError(
            f"train activations are [*, {x_train.shape[1]}, {x_train.shape[2]}] but validation ones are "
            f"[*, {x_val.shape[1]}, {x_val.shape[2]}]; capture both from the same model and sites."
        )
    if C <= 0:
        raise InputError(f"C (inverse regularisation) must be > 0, got {C}.")
    rows, dirs, biases = [], [], []
    ytr, yva = y_train.numpy(), y_val.numpy()
    for i, layer in enumerate(layers):
        xtr = x_train[:, i].double().numpy()
        xva = x_val[:, i].double().numpy()
        scaler = StandardScaler().fit(xtr)
        clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
        clf.fit(scaler.transform(xtr), ytr)
        scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        w = clf.coef_[0] / scale
        b = float(clf.intercept_[0] - w @ scaler.mean_)
        score_tr, score_va = xtr @ w + b, xva @ w + b
        rows.append(
            {
                "layer": layer,
                "train_acc": float(((score_tr > 0) == ytr).mean()),
                "val_acc": float(((score_va > 0) == yva).mean()) if len(yva) else float("nan"),
                "auc": float(roc_auc_score(yva, score_va)) if len(yva) else float("nan"),
            }
        )
        dirs.append(torch.from_numpy(w))
        biases.append(b)
    return ProbeFit(
        pd.DataFrame(rows),
        torch.stack(dirs).float(),
        torch.tensor(biases, dtype=torch.float32),
        layers,
        classes,
    )


@dataclass
class MeanDirections:
    """Difference-of-means directions per layer: ``diff = mean(class 1) − mean(class 0) = norm · unit``."""

    diff: Float[Tensor, "layer d_model"]
    unit: Float[Tensor, "layer d_model"]
    norm: Float[Tensor, " layer"]
    mean_pos: Float[Tensor, "layer d_model"]  # mean of class 1
    mean_neg: Float[Tensor, "layer d_model"]  # mean of class 0
    layers: tuple[int, ...]  # the model layer of each row
    classes: Classes = ("negative", "positive")

    def table(self) -> pd.DataFrame:
        """layer, norm, and cosine of each unit direction with the next row's."""
        cos_next = (self.unit[:-1] * self.unit[1:]).sum(-1).tolist() + [float("nan")]
        return pd.DataFrame({"layer": list(self.layers), "norm": self.norm.tolist(), "cos_next": cos_next})

    def save(self, path: str | Path) -> Path:
        """``layer.<L>`` (unit), ``layer.<L>.norm``, ``layer.<L>.mean_pos`` / ``.mean_neg``; ``classes``."""
        t = {}
        for i, layer in enumerate(self.layers):
            t[f"layer.{layer}"], t[f"layer.{layer}.norm"] = self.unit[i], self.norm[i].reshape(())
            t[f"layer.{layer}.mean_pos"], t[f"layer.{layer}.mean_neg"] = self.mean_pos[i], self.mean_neg[i]
        return _save(t, self.classes, path)


def diff_of_means(
    x: Float[Tensor, "batch layer d_model"],
    y: Int[Tensor, " batch"],
    *,
    layers: Sequence[int] | None = None,
    classes: Sequence[str] = ("negative", "positive"),
) -> MeanDirections:
    """Per-layer ``mean(x[y == 1]) − mean(x[y == 0])``, its norm and unit vector."""
    x, y = _check_xy(x, y, "direction")
    mean_pos, mean_neg = x[y == 1].mean(0), x[y == 0].mean(0)
    diff = mean_pos - mean_neg
    norm = diff.norm(dim=-1)
    if bool((norm == 0).any()):
        raise InputError(
            "The class means coincide at some layer (zero difference); no direction exists there."
        )
    layers = _layers(layers, x.shape[1])
    return MeanDirections(diff, diff / norm[:, None], norm, mean_pos, mean_neg, layers, _classes(classes))


def load_directions(path: str | Path) -> dict[int, Float[Tensor, " d_model"]]:
    """``{layer: unit direction}`` from a file written by :meth:`MeanDirections.save` (or any file with
    ``layer.<L>`` keys)."""
    t, _ = _load(path)
    return {k: t[f"layer.{k}"].float() for k in _layer_keys(t, "", path)}
