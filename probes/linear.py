"""Per-layer linear probes (logistic regression) and difference-of-means directions on activations.

Inputs are stacked last-token activations ``x[batch, layer, d_model]`` (e.g. ``resid_post.*`` from
:func:`probes.capture.capture`, stacked with :func:`stack_layers`) with labels ``y`` (1 = positive class,
e.g. harmful; 0 = negative, e.g. harmless).

Probes are fitted on standardised features; :class:`ProbeFit` gives their weights back in residual
space, so ``logit = x · direction[l] + bias[l]`` holds on raw activations
(``direction = w / σ``, ``bias = b − direction · μ``).

>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(40, 2, 8, generator=g); y = torch.tensor([1, 0] * 20)
>>> x[y == 1, :, 0] += 5.0
>>> fit = fit_linear_probes(x[:30], y[:30], x[30:], y[30:])
>>> fit.table.val_acc.tolist()
[1.0, 1.0]
>>> d = diff_of_means(x, y)
>>> torch.allclose(d.diff, x[y == 1].mean(0) - x[y == 0].mean(0))
True
"""

from __future__ import annotations

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
    "load_safetensors",
    "stack_layers",
]


def stack_layers(acts, kind: str = "resid_post") -> Float[Tensor, "batch layer d_model"]:
    """Stack ``acts["<kind>.<l>"]`` (an :class:`~probes.capture.Activations` or a dict) over layers."""
    store = getattr(acts, "acts", acts)
    names = sorted((k for k in store if k.startswith(kind + ".")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if not names:
        raise InputError(
            f"No {kind!r} sites captured (got {', '.join(store) or 'none'}); capture '{kind}.*'."
        )
    return torch.stack([store[k] for k in names], dim=1)


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
    direction: Float[Tensor, "layer d_model"]  # logit = x · direction + bias (raw activations)
    bias: Float[Tensor, " layer"]

    @property
    def best_layer(self) -> int:
        """Layer with the highest validation accuracy (ties: higher AUC, then earlier layer)."""
        t = self.table.sort_values(["val_acc", "auc", "layer"], ascending=[False, False, True])
        return int(t.iloc[0]["layer"])

    def logits(self, x: Float[Tensor, "batch layer d_model"]) -> Float[Tensor, "batch layer"]:
        return torch.einsum("bld,ld->bl", x.to(self.direction.dtype), self.direction) + self.bias

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        save_file(
            {"probe_direction": self.direction.contiguous(), "probe_bias": self.bias.contiguous()}, str(path)
        )
        return Path(path)


def fit_linear_probes(
    x_train: Float[Tensor, "batch layer d_model"],
    y_train: Int[Tensor, " batch"],
    x_val: Float[Tensor, "batch2 layer d_model"],
    y_val: Int[Tensor, " batch2"],
    *,
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 2000,
) -> ProbeFit:
    """Fit one L2 logistic regression per layer on standardised features; score on ``(x_val, y_val)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = _check_xy(x_train, y_train, "train")
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
    for layer in range(x_train.shape[1]):
        xtr = x_train[:, layer].double().numpy()
        xva = x_val[:, layer].double().numpy()
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
                "val_acc": float(((score_va > 0) == yva).mean()),
                "auc": float(roc_auc_score(yva, score_va)),
            }
        )
        dirs.append(torch.from_numpy(w))
        biases.append(b)
    return ProbeFit(pd.DataFrame(rows), torch.stack(dirs).float(), torch.tensor(biases, dtype=torch.float32))


@dataclass
class MeanDirections:
    """Difference-of-means directions per layer: ``diff = mean(pos) − mean(neg) = norm · unit``."""

    diff: Float[Tensor, "layer d_model"]
    unit: Float[Tensor, "layer d_model"]
    norm: Float[Tensor, " layer"]
    mean_pos: Float[Tensor, "layer d_model"]
    mean_neg: Float[Tensor, "layer d_model"]

    def table(self) -> pd.DataFrame:
        """layer, norm, and cosine of each unit direction with the next layer's."""
        cos_next = (self.unit[:-1] * self.unit[1:]).sum(-1).tolist() + [float("nan")]
        return pd.DataFrame(
            {"layer": range(len(self.norm)), "norm": self.norm.tolist(), "cos_next": cos_next}
        )

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        save_file(
            {
                "dom_unit": self.unit.contiguous(),
                "dom_norm": self.norm.contiguous(),
                "dom_diff": self.diff.contiguous(),
                "mean_harmful": self.mean_pos.contiguous(),
                "mean_harmless": self.mean_neg.contiguous(),
            },
            str(path),
        )
        return Path(path)


def diff_of_means(x: Float[Tensor, "batch layer d_model"], y: Int[Tensor, " batch"]) -> MeanDirections:
    """Per-layer ``mean(x[y == 1]) − mean(x[y == 0])``, its norm and unit vector."""
    x, y = _check_xy(x, y, "direction")
    mean_pos, mean_neg = x[y == 1].mean(0), x[y == 0].mean(0)
    diff = mean_pos - mean_neg
    norm = diff.norm(dim=-1)
    if bool((norm == 0).any()):
        raise InputError(
            "The class means coincide at some layer (zero difference); no direction exists there."
        )
    return MeanDirections(diff, diff / norm[:, None], norm, mean_pos, mean_neg)


def load_safetensors(path: str | Path) -> dict[str, Tensor]:
    """Read a safetensors file written by :meth:`ProbeFit.save` / :meth:`MeanDirections.save`."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise InputError(f"No safetensors file at {str(path)!r}.")
    return load_file(str(path))
