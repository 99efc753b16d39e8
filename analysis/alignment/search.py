"""Live 3D <-> text retrieval over a captioned shape gallery: type a caption, get the shapes it matches.

:func:`build_gallery` generates a pool of procedural shapes (``n_anchors`` anchor pairs + ``n_gallery``
gallery shapes, disjoint, :func:`~analysis.alignment.shapes.anchor_query_split`), encodes both sides,
fits the aligner on the anchors only (``cca_affine``: ridge CCA to ``d`` dimensions then an affine map
text -> 3D; ``cca``: cosine in the subspace; ``affine``: the full-space baseline) and keeps the gallery
features. :func:`search_shapes` scores any text against the gallery shapes, :func:`search_captions` any
gallery shape against the gallery captions. The 3D and text encoders never see the gallery's pairing.

Whether a hit has what the query asks for (``same_attributes``) is decided by reading the query's words
with the caption vocabulary (:func:`query_attributes`: nouns, size words, each family's aspect words,
counts, holes) and comparing only the attributes the query names. (It used to compare every attribute of
the gallery caption nearest to the query in the text space, so "a big torus" was scored against "big thin
torus" or even "a mid-sized thick torus", and a shape with the right size and family read ``False``.)

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

import re
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
from .shapes import _NUMBER, _SIZE_WORDS, FAMILIES, ShapeDataset, anchor_query_split, make_shapes

__all__ = [
    "GALLERY_METHODS",
    "ShapeGallery",
    "build_gallery",
    "describe",
    "query_attributes",
    "search_captions",
    "search_shapes",
]

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


_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*|\d+")


def _family_of(words: list[str]) -> str | None:
    for family, fam in FAMILIES.items():
        if any(noun in words for noun in fam.nouns):
            return family
    return None


def _aspect_of(words: list[str], family: str | None) -> str | None:
    """The aspect a query's words name: the family's own aspect words, else a word that means the same
    aspect in every family that uses it."""
    fams = [FAMILIES[family]] if family else list(FAMILIES.values())
    found = {
        aspect
        for w in words
        for aspect in {a for fam in fams for a, ws in fam.aspect_words.items() if w in ws}
        if len({a for fam in fams for a, ws in fam.aspect_words.items() if w in ws}) == 1
    }
    return found.pop() if len(found) == 1 else None


def _count_of(words: list[str], family: str | None) -> int | None:
    numbers = {v: k for k, v in _NUMBER.items()}
    count_words = {FAMILIES[family].count_word} if family else {f.count_word for f in FAMILIES.values()}
    for a, b in zip(words, words[1:], strict=False):
        if b in count_words - {""}:
            n = numbers.get(a, int(a) if a.isdigit() else None)
            if n is not None:
                return n
    return None


def _hole_of(text: str, words: list[str]) -> bool | None:
    if "without a hole" in text or "no hole" in text or "solid" in words:
        return False
    return True if "hole" in words else None


def query_attributes(text: str) -> dict:
    """The captioned attributes a query names, read with the caption vocabulary of
    :mod:`analysis.alignment.shapes` (unnamed attributes are left out).

    >>> query_attributes("a big torus")
    {'family': 'torus', 'size': 'large'}
    >>> query_attributes("a donut, little and thin")
    {'family': 'torus', 'size': 'small', 'aspect': 'flat'}
    >>> query_attributes("a low table with 4 legs")
    {'family': 'table', 'aspect': 'flat', 'count': 4}
    >>> query_attributes("a box without a hole")
    {'family': 'box', 'hole': False}
    """
    low = text.lower()
    words = _WORD.findall(low)
    family = _family_of(words)
    sizes = {size for size, ws in _SIZE_WORDS.items() if any(w in words for w in ws)}
    found = {
        "family": family,
        "size": sizes.pop() if len(sizes) == 1 else None,
        "aspect": _aspect_of(words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)], family),
        "count": _count_of(words, family),
        "hole": _hole_of(low, words),
    }
    return {k: v for k, v in found.items() if v is not None}


def _has_attributes(attrs: pd.DataFrame, want: dict) -> np.ndarray:
    """Bool per shape: it has every attribute in ``want``."""
    ok = np.ones(len(attrs), dtype=bool)
    for name, value in want.items():
        ok &= (attrs[name] == value).fillna(False).to_numpy(dtype=bool)
    return ok


def search_shapes(gallery: ShapeGallery, text: str, k: int = 5) -> pd.DataFrame:
    """The ``k`` gallery shapes that best match ``text``: ``rank, shape, caption, family, score,
    same_attributes`` (the shape has every attribute the query names, :func:`query_attributes`; ``<NA>``
    when the query names none). ``attrs["query"]`` of the result holds the attributes read."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("the query text is empty: type a caption, e.g. 'a small table with four legs'.")
    k = min(check_int(k, "k", 1), len(gallery.shapes))
    y_q = _as_features(gallery.encode_text([text.strip()]), "query text", 1)
    s = gallery.scores(y_q)[:, 0]
    order = torch.argsort(s, descending=True)[:k].numpy()
    attrs = gallery.shapes.attributes
    want = query_attributes(text)
    same = pd.array(_has_attributes(attrs, want)[order] if want else [pd.NA] * len(order), dtype="boolean")
    out = pd.DataFrame(
        {
            "rank": np.arange(1, k + 1),
            "shape": order,
            "caption": [gallery.shapes.captions[i] for i in order],
            "family": attrs["family"].to_numpy()[order],
            "score": s[order].numpy(),
            "same_attributes": same,
        }
    )
    out.attrs["query"] = want
    return out


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
