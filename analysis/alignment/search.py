"""Live 3D <-> text retrieval over a captioned shape gallery: type a caption, get the shapes it matches.

:func:`build_gallery` generates a pool of procedural shapes (``n_anchors`` anchor pairs + ``n_gallery``
gallery shapes, disjoint, :func:`~analysis.alignment.shapes.anchor_query_split`), encodes both sides,
fits the aligner on the anchors only (``cca_affine``: ridge CCA to ``d`` dimensions then an affine map
text -> 3D; ``cca``: cosine in the subspace; ``affine``: the full-space baseline) and keeps the gallery
features. :func:`search_shapes` scores any text against the gallery shapes, :func:`search_captions` any
gallery shape against the gallery captions. The 3D and text encoders never see the gallery's pairing.

>>> import numpy as np
>>> from analysis.alignment.shapes import make_shapes
>>> words = ["box", "ring", "cone", "small", "large", "tall", "flat", "legs", "hole", "table", "chair"]
>>> def bag(texts):  # toy text encoder: word counts (stands in for MiniLM)
...     return np.array([[t.count(w) for w in words] for t in texts], dtype=float)
>>> pool = make_shapes(260, seed=0, n_points=64)
>>> x = bag(pool.captions) @ np.random.default_rng(0).normal(size=(len(words), 16))  # planted 3D side
>>> g = build_gallery(n_anchors=200, n_gallery=60, d=8, encode_text=bag, features=(x, bag(pool.captions)),
...                   n_points=64)
>>> hits = search_shapes(g, g.shapes.captions[0], k=3)
>>> list(hits.columns)
['rank', 'shape', 'caption', 'family', 'score', 'same_attributes']
>>> bool(hits.same_attributes.iloc[0])
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.arrays import as_matrix, check_int
from probes.errors import InputError

from .align import AffineMap, CCAProjection, affine_scores, cosine_scores, fit_affine, fit_cca
from .shapes import ShapeDataset, anchor_query_split, make_shapes

__all__ = ["GALLERY_METHODS", "ShapeGallery", "build_gallery", "describe", "search_captions", "search_shapes"]

GALLERY_METHODS = ("cca_affine", "cca", "affine")
TextEncoder = Callable[[list[str]], "np.ndarray | Tensor"]


@dataclass
class ShapeGallery:
    """A fitted aligner and the gallery it searches (read-only once built)."""

    shapes: ShapeDataset  # the gallery shapes (points, captions, attributes)
    x: Float[Tensor, "n_gallery p"]  # their 3D features
    y: Float[Tensor, "n_gallery q"]  # their captions' text features
    method: str  # one of GALLERY_METHODS
    projection: CCAProjection | None  # CCA fitted on the anchors (None for 'affine')
    amap: AffineMap | None  # text -> 3D map fitted on the (projected) anchors (None for 'cca')
    encode_text: TextEncoder  # list of texts -> [n, q] features
    n_anchors: int
    top1: float  # text -> 3D top-1 over the gallery's own captions (exact item)
    top1_label: float  # ... counting any shape with the caption's attributes as a hit

    def scores(self, y_text: Float[Tensor, "m q"]) -> Float[Tensor, "n_gallery m"]:
        """Scores of every gallery shape against text features ``y_text``."""
        x, y = self.x, y_text
        if self.projection is not None:
            x, y = self.projection.transform_x(x), self.projection.transform_y(y)
        if self.amap is None:
            return cosine_scores(x, y)
        return affine_scores(x, y, self.amap)


def _as_features(a: object, name: str, rows: int) -> Float[Tensor, "rows dim"]:
    """Finite float64 ``[rows, dim]`` features on the CPU (see :func:`analysis.arrays.as_matrix`)."""
    t = as_matrix(a, f"{name} features", device="cpu", min_samples=1)
    if t.shape[0] != rows:
        raise InputError(f"{name} features have shape {tuple(t.shape)}; need [{rows}, dim].")
    return t


def _text_encoder(name: str) -> TextEncoder:
    from .encoders import encode_captions

    if name == "tfidf":
        raise InputError(
            "the 'tfidf' encoder is fitted on the pool's own captions and cannot embed a new query; "
            "use 'minilm' or 'smollm2'."
        )
    return lambda texts: encode_captions(name, list(texts))


def build_gallery(
    *,
    n_anchors: int = 2000,
    n_gallery: int = 200,
    d: int = 32,
    method: str = "cca_affine",
    encoder_3d: str = "pointnet",
    encoder_text: str = "minilm",
    encode_text: TextEncoder | None = None,
    features: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    n_points: int = 1024,
    cca_reg: float = 1e-2,
    ridge: float = 1e-3,
) -> ShapeGallery:
    """Generate, encode and align a pool of ``n_anchors + n_gallery`` shapes; see the module docstring.

    ``encode_text`` overrides the named text encoder (any ``list[str] -> [n, q]``); ``features`` =
    ``(X [pool, p], Y [pool, q])`` skips encoding the pool (shape ``i`` of ``make_shapes(pool, seed)``).
    """
    if method not in GALLERY_METHODS:
        raise InputError(f"unknown gallery method {method!r}; choose from {', '.join(GALLERY_METHODS)}.")
    for name, v, lo in (("n_anchors", n_anchors, 3), ("n_gallery", n_gallery, 1), ("d", d, 1)):
        check_int(v, name, lo)
    n_pool = n_anchors + n_gallery
    pool = make_shapes(n_pool, seed=seed, split="eval", n_points=n_points)
    encode = encode_text or _text_encoder(encoder_text)
    if features is None:
        from .encoders import encode_clouds

        x_all = _as_features(encode_clouds(encoder_3d, pool.points), "3D", n_pool)
        y_all = _as_features(encode(pool.captions), "text", n_pool)
    else:
        x_all, y_all = _as_features(features[0], "3D", n_pool), _as_features(features[1], "text", n_pool)
    anchors, gallery = anchor_query_split(n_pool, n_gallery, n_anchors, seed=seed)
    xa, ya = x_all[anchors], y_all[anchors]
    projection = None
    if method != "affine":
        projection = fit_cca(xa, ya, d, reg=cca_reg, clip=True)
        xa, ya = projection.transform_x(xa), projection.transform_y(ya)
    amap = fit_affine(ya, xa, ridge=ridge) if method != "cca" else None
    shapes = pool.subset(gallery)
    g = ShapeGallery(
        shapes, x_all[gallery], y_all[gallery], method, projection, amap, encode, n_anchors, 0.0, 0.0
    )
    s = g.scores(g.y).numpy()  # [shape, caption]
    best = s.argmax(0)
    keys = shapes.attributes["key"].to_numpy()
    g.top1 = float((best == np.arange(len(best))).mean())
    g.top1_label = float((keys[best] == keys).mean())
    return g


def search_shapes(gallery: ShapeGallery, text: str, k: int = 5) -> pd.DataFrame:
    """The ``k`` gallery shapes that best match ``text``: ``rank, shape, caption, family, score,
    same_attributes`` (the shape's captioned attributes equal those of the gallery caption that is
    closest to ``text`` in the text space, a proxy for "what the query asks for")."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("the query text is empty: type a caption, e.g. 'a small table with four legs'.")
    k = min(check_int(k, "k", 1), len(gallery.shapes))
    y_q = _as_features(gallery.encode_text([text.strip()]), "query text", 1)
    s = gallery.scores(y_q)[:, 0]
    order = torch.argsort(s, descending=True)[:k].numpy()
    # the attributes the query most likely names: those of its nearest gallery caption (text space)
    nearest = int(cosine_scores(gallery.y, y_q)[:, 0].argmax())
    attrs = gallery.shapes.attributes
    want = attrs["key"].iloc[nearest]
    return pd.DataFrame(
        {
            "rank": np.arange(1, k + 1),
            "shape": order,
            "caption": [gallery.shapes.captions[i] for i in order],
            "family": attrs["family"].to_numpy()[order],
            "score": s[order].numpy(),
            "same_attributes": attrs["key"].to_numpy()[order] == want,
        }
    )


def search_captions(gallery: ShapeGallery, shape: int, k: int = 5) -> pd.DataFrame:
    """The ``k`` gallery captions that best match gallery shape ``shape``: ``rank, caption_of, caption,
    score, correct, same_attributes`` (``correct``: the shape's own caption; ``same_attributes``: one with
    the same captioned attributes)."""
    n = len(gallery.shapes)
    if isinstance(shape, bool) or not isinstance(shape, int | np.integer) or not 0 <= shape < n:
        raise InputError(f"shape must be a gallery index in 0..{n - 1}, got {shape!r}.")
    k = min(check_int(k, "k", 1), n)
    s = gallery.scores(gallery.y)[int(shape)]
    order = torch.argsort(s, descending=True)[:k].numpy()
    keys = gallery.shapes.attributes["key"].to_numpy()
    return pd.DataFrame(
        {
            "rank": np.arange(1, k + 1),
            "caption_of": order,
            "caption": [gallery.shapes.captions[i] for i in order],
            "score": s[order].numpy(),
            "correct": order == int(shape),
            "same_attributes": keys[order] == keys[int(shape)],
        }
    )


def describe(gallery: ShapeGallery) -> str:
    """One line: method, anchors, gallery size and its own-caption top-1 (exact / same attributes)."""
    sub = f" d={gallery.projection.d}" if gallery.projection is not None else ""
    return (
        f"{gallery.method}{sub} fitted on {gallery.n_anchors} anchor pairs; gallery of {len(gallery.shapes)} "
        f"shapes: text->3D top-1 {gallery.top1:.1%} (exact), {gallery.top1_label:.1%} (same attributes)"
    )
