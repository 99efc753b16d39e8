"""Named encoders for :func:`~analysis.alignment.experiment.run_alignment`: 3D clouds and captions -> features.

3D (:data:`ENCODERS_3D`): ``pointnet`` (in-house, contrastive, 256-d, committed weights), ``pointnet-ae``
(the same network trained as an autoencoder, 256-d, committed weights), ``modelnet``
(ModelNet40 PointNet feature, 1024-d). Text (:data:`ENCODERS_TEXT`): ``minilm`` (all-MiniLM-L6-v2,
384-d, a text pack), ``smollm2`` (mean-pooled ``resid_post`` of SmolLM2-135M-Instruct, 576-d) and
``tfidf`` (character 2-4-gram TF-IDF + truncated SVD fitted on the captions themselves, a zero-training
baseline that needs no download). Captions are encoded once per distinct string.

>>> y = encode_captions("tfidf", ["a small box", "a big ring", "a tall cone", "a small box"], dim=2)
>>> tuple(y.shape), bool((y[0] == y[3]).all())
((4, 2), True)
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError

__all__ = ["ENCODERS_3D", "ENCODERS_TEXT", "encode_captions", "encode_clouds"]

ENCODERS_3D = ("pointnet", "pointnet-ae", "modelnet")
ENCODERS_TEXT = ("minilm", "smollm2", "tfidf")


def encode_clouds(
    name: str,
    points: Float[np.ndarray, "n m 3"],
    *,
    pointnet_weights: str | None = None,
    modelnet_checkpoint: str | None = None,
    batch_size: int = 128,
) -> Float[Tensor, "n dim"]:
    """Features of ``[n, m, 3]`` clouds by the named 3D encoder (float32)."""
    from .pointnet import DEFAULT_AE_WEIGHTS, encode_points, load_modelnet_pointnet, load_pointnet

    if name == "pointnet":
        net = load_pointnet(pointnet_weights)
    elif name == "pointnet-ae":
        net = load_pointnet(DEFAULT_AE_WEIGHTS)
    elif name == "modelnet":
        net = load_modelnet_pointnet(modelnet_checkpoint)
    else:
        raise InputError(f"unknown 3D encoder {name!r}; choose from {', '.join(ENCODERS_3D)}.")
    return encode_points(net, points, batch_size=batch_size)


def _tfidf(texts: list[str], dim: int) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit_transform(texts)
    k = max(1, min(dim, tf.shape[1] - 1, len(texts) - 1))
    return TruncatedSVD(n_components=k, random_state=0).fit_transform(tf)


def encode_captions(
    name: str,
    captions: list[str],
    *,
    batch_size: int = 64,
    lm_model: str = "smollm2-135m-instruct",
    lm_layer: int | None = None,
    dim: int = 128,
) -> Float[Tensor, "n dim"]:
    """Features of ``captions`` by the named text encoder; each distinct caption is encoded once."""
    if name not in ENCODERS_TEXT:
        raise InputError(f"unknown text encoder {name!r}; choose from {', '.join(ENCODERS_TEXT)}.")
    if isinstance(captions, str) or not captions:
        raise InputError("captions must be a non-empty list of strings.")
    uniq, inverse = np.unique(np.asarray(captions, dtype=object).astype(str), return_inverse=True)
    texts = [str(t) for t in uniq]
    if name == "minilm":
        from probes.text_encoders import encode_texts

        emb = encode_texts(texts, batch_size=batch_size)
    elif name == "smollm2":
        from probes.text_encoders import encode_texts_lm

        emb = encode_texts_lm(texts, model=lm_model, layer=lm_layer, batch_size=batch_size)
    else:
        emb = torch.from_numpy(_tfidf(texts, dim)).float()
    return emb[torch.from_numpy(inverse.astype(np.int64))]
