"""Procedural 3D shapes with templated captions: the paired data of the 3D <-> text alignment experiments.

Each shape is a surface point cloud (z up, centred on its mean, absolute size kept) of one of
:data:`FAMILIES`, drawn with **captioned attributes** (what the caption says) and **uncaptioned
nuisance** (what it does not):

* captioned: ``family``; ``size`` (small / medium / large: the largest extent, in bins 0.45-0.6 /
  0.8-1.0 / 1.3-1.6); ``aspect`` (flat / regular / tall: height over width in bins 0.25-0.45 /
  0.8-1.2 / 2-3, worded per family, e.g. "low table", "thick ring"); ``count`` (legs of tables, chairs
  and stools; sides of pyramids and prisms; boards of shelves; ``None`` elsewhere); ``hole`` (boxes and
  cylinders: a vertical hole through the middle; ``None`` where it does not apply);
* nuisance: the continuous value inside each bin, part proportions, a uniform rotation about the
  vertical axis, a small tilt (<= 8 degrees), anisotropic scale jitter (+-5%), Gaussian point noise and,
  for a third of the shapes, a crop of up to 15% of the points behind a random plane.

Captions are filled from templates with synonyms ("a small tall table with four legs", "big ring, thin",
...). Datasets are deterministic functions of ``(n, seed, split)``; the ``train`` and ``eval`` splits
use disjoint random streams, and :func:`anchor_query_split` draws seeded disjoint anchor and query sets
from an ``eval`` pool. The surfaces, poses and point sampling are in :mod:`.geometry`.

>>> ds = make_shapes(4, seed=0, split="eval", n_points=256)
>>> ds.points.shape, len(ds.captions)
((4, 256, 3), 4)
>>> ds.attributes.loc[0, "family"] in FAMILIES
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from jaxtyping import Float

from analysis.arrays import check_int
from probes.errors import InputError

from .geometry import rotation, sample_points

__all__ = [
    "ASPECTS",
    "ATTRIBUTES",
    "FAMILIES",
    "SIZES",
    "SPLITS",
    "ShapeDataset",
    "ShapeSpec",
    "anchor_query_split",
    "attribute_key",
    "caption_for",
    "make_shapes",
    "random_spec",
]

SPLITS = {"train": 1, "eval": 2}  # disjoint random streams per split
SIZES = {"small": (0.45, 0.6), "medium": (0.8, 1.0), "large": (1.3, 1.6)}  # largest extent
ASPECTS = {"flat": (0.25, 0.45), "regular": (0.8, 1.2), "tall": (2.0, 3.0)}  # height / width
ATTRIBUTES = ("family", "size", "aspect", "count", "hole")  # captioned attributes


@dataclass(frozen=True)
class Family:
    """A shape family: its nouns, aspect words, count range and word, whether it can have a hole."""

    nouns: tuple[str, ...]
    aspect_words: dict[str, tuple[str, ...]]
    counts: tuple[int, ...] = ()  # allowed counts (empty: no count attribute)
    count_word: str = ""  # "legs", "sides", "shelves"
    has_hole: bool = False


_HW = {"flat": ("flat", "low"), "regular": ("regular", "evenly proportioned"), "tall": ("tall", "high")}
FAMILIES: dict[str, Family] = {
    "box": Family(("box", "block"), {"flat": ("flat",), "regular": ("cube-shaped", "cubic"), "tall": ("tall",)}, has_hole=True),
    "sphere": Family(("sphere", "ball"), {"flat": ("flattened", "squashed"), "regular": ("round",), "tall": ("elongated", "egg-shaped")}),
    "cylinder": Family(("cylinder",), {"flat": ("flat", "disc-like"), "regular": ("stubby",), "tall": ("tall", "long")}, has_hole=True),
    "cone": Family(("cone",), {"flat": ("flat", "wide"), "regular": ("regular",), "tall": ("tall", "pointy")}),
    "torus": Family(("torus", "ring", "donut"), {"flat": ("thin",), "regular": ("medium-thick",), "tall": ("thick", "fat")}),
    "pyramid": Family(("pyramid",), _HW, counts=(3, 4, 5, 6), count_word="sides"),
    "prism": Family(("prism", "column"), _HW, counts=(3, 4, 5, 6), count_word="sides"),
    "table": Family(("table",), {"flat": ("low", "coffee"), "regular": ("regular",), "tall": ("tall", "bar")}, counts=(3, 4, 5, 6), count_word="legs"),
    "chair": Family(("chair", "seat"), {"flat": ("low",), "regular": ("regular",), "tall": ("tall", "high-backed")}, counts=(3, 4, 5), count_word="legs"),
    "stool": Family(("stool",), {"flat": ("low", "short"), "regular": ("regular",), "tall": ("tall", "bar")}, counts=(3, 4), count_word="legs"),
    "shelf": Family(("shelf", "bookshelf"), {"flat": ("wide", "low"), "regular": ("square",), "tall": ("tall", "narrow")}, counts=(2, 3, 4, 5), count_word="shelves"),
}  # fmt: skip

_SIZE_WORDS = {
    "small": ("small", "little"),
    "medium": ("medium-sized", "mid-sized"),
    "large": ("large", "big"),
}
_NUMBER = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
_TEMPLATES = (
    "a {size} {aspect} {noun}{extra}",
    "{size} {aspect} {noun}{extra}",
    "a {noun}{extra}, {size} and {aspect}",
)


@dataclass(frozen=True)
class ShapeSpec:
    """One shape: captioned attributes, continuous parameters and pose (everything but the point sample)."""

    family: str
    size: str  # key of SIZES
    aspect: str  # key of ASPECTS
    count: int | None  # legs / sides / shelves, None if the family has none
    hole: bool | None  # None if the family cannot have a hole
    extent: float  # largest extent (size bin value)
    ratio: float  # height / width (aspect bin value)
    params: dict = field(default_factory=dict, hash=False)  # family-specific proportions
    rotation: tuple = ()  # 3x3 row-major pose (yaw + tilt) as a flat tuple
    scale_jitter: tuple = (1.0, 1.0, 1.0)  # anisotropic scale
    noise: float = 0.0  # point noise std (relative to extent)
    crop: tuple | None = None  # (unit normal (3), fraction of points to drop) or None

    def attributes(self) -> dict:
        return {a: getattr(self, a) for a in ATTRIBUTES}


def attribute_key(family: str, size: str, aspect: str, count: int | None, hole: bool | None) -> str:
    """A string identifying the captioned attributes (equal keys = same caption semantics).

    >>> attribute_key("table", "small", "tall", 4, None)
    'table|small|tall|4|-'
    """
    return "|".join(["-" if v is None else str(v) for v in (family, size, aspect, count, hole)])


def caption_for(spec: ShapeSpec, rng: np.random.Generator) -> str:
    """A templated caption naming every captioned attribute of ``spec`` (synonyms drawn from ``rng``).

    >>> s = ShapeSpec("table", "small", "tall", 4, None, 0.5, 2.5)
    >>> caption_for(s, np.random.default_rng(0))
    'a table with four legs, little and bar'
    """
    fam = FAMILIES[spec.family]
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    extra = ""
    if spec.count is not None:
        extra = f" with {_NUMBER[spec.count]} {fam.count_word}"
    if spec.hole is not None:
        hole = pick((" with a hole through the middle", " with a hole in the middle", " with a hole"))
        solid = pick((" without a hole", ", solid"))
        extra += hole if spec.hole else solid
    text = pick(_TEMPLATES).format(
        size=pick(_SIZE_WORDS[spec.size]),
        aspect=pick(fam.aspect_words[spec.aspect]),
        noun=pick(fam.nouns),
        extra=extra,
    )
    return text


def random_spec(rng: np.random.Generator, family: str | None = None) -> ShapeSpec:
    """Draw the attributes, proportions and pose of one shape (``family`` fixed or uniform)."""
    fam_name = family or str(rng.choice(list(FAMILIES)))
    if fam_name not in FAMILIES:
        raise InputError(f"unknown shape family {fam_name!r}; choose from {', '.join(FAMILIES)}.")
    fam = FAMILIES[fam_name]
    size = str(rng.choice(list(SIZES)))
    aspect = str(rng.choice(list(ASPECTS)))
    count = int(rng.choice(fam.counts)) if fam.counts else None
    hole = bool(rng.integers(2)) if fam.has_hole else None
    params = {
        "depth": float(rng.uniform(0.6, 1.0)),
        "hole": float(rng.uniform(0.35, 0.55)),
        "thick": float(rng.uniform(0.85, 1.15)),
        "phase": float(rng.uniform(0, 2 * np.pi)),
    }
    rot = rotation(rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(0, 8)))
    crop = None
    if rng.uniform() < 1 / 3:
        normal = rng.normal(size=3)
        crop = (tuple(float(v) for v in normal / np.linalg.norm(normal)), float(rng.uniform(0.02, 0.15)))
    return ShapeSpec(
        family=fam_name,
        size=size,
        aspect=aspect,
        count=count,
        hole=hole,
        extent=float(rng.uniform(*SIZES[size])),
        ratio=float(rng.uniform(*ASPECTS[aspect])),
        params=params,
        rotation=tuple(float(v) for v in rot.ravel()),
        scale_jitter=tuple(float(v) for v in rng.uniform(0.95, 1.05, 3)),
        noise=float(rng.uniform(0.002, 0.01)),
        crop=crop,
    )


@dataclass
class ShapeDataset:
    """Point clouds ``[n, n_points, 3]`` (float32), captions, attribute table and the generating specs."""

    points: Float[np.ndarray, "n n_points 3"]
    captions: list[str]
    attributes: pd.DataFrame  # family, size, aspect, count, hole, key, extent, ratio (one row per shape)
    specs: list[ShapeSpec]
    seed: int
    split: str

    def __len__(self) -> int:
        return len(self.captions)

    def subset(self, idx) -> ShapeDataset:
        idx = np.asarray(idx)
        return ShapeDataset(
            self.points[idx],
            [self.captions[i] for i in idx],
            self.attributes.iloc[idx].reset_index(drop=True),
            [self.specs[i] for i in idx],
            self.seed,
            self.split,
        )


def make_shapes(
    n: int,
    *,
    seed: int = 0,
    split: str = "eval",
    n_points: int = 1024,
    families: list[str] | None = None,
) -> ShapeDataset:
    """Generate ``n`` captioned shapes, a deterministic function of ``(n, seed, split, n_points, families)``.

    Shape ``i`` depends only on ``(seed, split, i)``, so a larger ``n`` extends a smaller dataset.

    >>> a = make_shapes(3, seed=1, n_points=64)
    >>> b = make_shapes(5, seed=1, n_points=64)
    >>> bool((a.points == b.points[:3]).all()) and a.captions == b.captions[:3]
    True
    """
    n = check_int(n, "n", 1)
    n_points = check_int(n_points, "n_points", 1)
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}.")
    fams = list(families) if families else list(FAMILIES)
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise InputError(f"unknown shape families {unknown}; choose from {', '.join(FAMILIES)}.")
    points = np.empty((n, n_points, 3), dtype=np.float32)
    captions, specs, rows = [], [], []
    for i in range(n):
        rng = np.random.default_rng([int(seed), SPLITS[split], i])
        spec = random_spec(rng, family=fams[int(rng.integers(len(fams)))])
        points[i] = sample_points(spec, n_points, rng)
        captions.append(caption_for(spec, rng))
        specs.append(spec)
        rows.append(
            {
                **spec.attributes(),
                "key": attribute_key(*spec.attributes().values()),
                "extent": spec.extent,
                "ratio": spec.ratio,
            }
        )
    attrs = pd.DataFrame(rows)
    attrs["count"] = attrs["count"].astype("Int64")
    attrs["hole"] = attrs["hole"].astype("boolean")
    return ShapeDataset(points, captions, attrs, specs, int(seed), split)


def anchor_query_split(
    n: int, n_query: int, n_anchor: int | None = None, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint (anchor indices, query indices) into a pool of ``n``; anchors default to the rest.

    >>> a, q = anchor_query_split(10, 3, seed=0)
    >>> len(a), len(q), len(set(a) & set(q))
    (7, 3, 0)
    """
    n_query = check_int(n_query, "n_query", 1)
    n_anchor = n - n_query if n_anchor is None else check_int(n_anchor, "n_anchor", 1)
    if n_query + n_anchor > n:
        raise InputError(
            f"n_query + n_anchor = {n_query} + {n_anchor} exceeds the pool of {n} shapes; "
            "generate more shapes or ask for fewer anchors/queries."
        )
    perm = np.random.default_rng([int(seed), 7]).permutation(n)
    return perm[n_query : n_query + n_anchor], perm[:n_query]
