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
from an ``eval`` pool.

>>> ds = make_shapes(4, seed=0, split="eval", n_points=256)
>>> ds.points.shape, len(ds.captions)
((4, 256, 3), 4)
>>> ds.attributes.loc[0, "family"] in FAMILIES
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from jaxtyping import Float

from probes.errors import InputError

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
    "augment",
    "caption_for",
    "make_shapes",
    "random_spec",
    "sample_points",
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


# --------------------------------------------------------------------------------------- primitives
Sampler = Callable[[int, np.random.Generator], np.ndarray]


def _box(c, h) -> tuple[float, Sampler]:
    """Surface of an axis-aligned box, centre ``c``, half-extents ``h``."""
    c, h = np.asarray(c, float), np.asarray(h, float)
    areas = np.array([h[1] * h[2], h[0] * h[2], h[0] * h[1]]) * 4  # faces normal to x, y, z (each twice)

    def sample(n, rng):
        axis = rng.choice(3, size=n, p=areas / areas.sum())
        p = rng.uniform(-1, 1, size=(n, 3))
        p[np.arange(n), axis] = rng.choice([-1.0, 1.0], size=n)
        return c + p * h

    return float(2 * areas.sum()), sample


def _disc(c, r_out, r_in=0.0) -> tuple[float, Sampler]:
    """Horizontal disc (annulus if ``r_in > 0``) centred at ``c``."""

    def sample(n, rng):
        r = np.sqrt(rng.uniform(r_in**2, r_out**2, n))
        t = rng.uniform(0, 2 * np.pi, n)
        return np.asarray(c, float) + np.stack([r * np.cos(t), r * np.sin(t), np.zeros(n)], 1)

    return float(np.pi * (r_out**2 - r_in**2)), sample


def _tube(c, r, height) -> tuple[float, Sampler]:
    """Side wall of a vertical cylinder, base centre ``c``."""

    def sample(n, rng):
        t = rng.uniform(0, 2 * np.pi, n)
        return np.asarray(c, float) + np.stack([r * np.cos(t), r * np.sin(t), rng.uniform(0, height, n)], 1)

    return float(2 * np.pi * r * height), sample


def _cone(c, r, height) -> tuple[float, Sampler]:
    """Lateral surface of a vertical cone, base centre ``c``, apex above."""

    def sample(n, rng):
        f = np.sqrt(rng.uniform(0, 1, n))  # distance from apex as a fraction (uniform in area)
        t = rng.uniform(0, 2 * np.pi, n)
        return np.asarray(c, float) + np.stack([r * f * np.cos(t), r * f * np.sin(t), height * (1 - f)], 1)

    return float(np.pi * r * np.hypot(r, height)), sample


def _ellipsoid(c, axes) -> tuple[float, Sampler]:
    a, b, cz = axes
    p = 1.6075
    area = 4 * np.pi * (((a * b) ** p + (a * cz) ** p + (b * cz) ** p) / 3) ** (1 / p)

    def sample(n, rng):
        v = rng.normal(size=(n, 3))
        return np.asarray(c, float) + v / np.linalg.norm(v, axis=1, keepdims=True) * np.asarray(axes)

    return float(area), sample


def _torus(c, big, small) -> tuple[float, Sampler]:
    def sample(n, rng):
        out = np.empty((0, 2))
        while len(out) < n:  # rejection: area density ~ (R + r cos v)
            u, v, w = rng.uniform(0, 2 * np.pi, (3, 2 * n))
            keep = rng.uniform(0, 1, 2 * n) < (big + small * np.cos(v)) / (big + small)
            out = np.concatenate([out, np.stack([u[keep], v[keep]], 1)])
        u, v = out[:n].T
        rad = big + small * np.cos(v)
        return np.asarray(c, float) + np.stack([rad * np.cos(u), rad * np.sin(u), small * np.sin(v)], 1)

    return float(4 * np.pi**2 * big * small), sample


def _triangles(tris) -> tuple[float, Sampler]:
    tris = np.asarray(tris, float)  # [m, 3, 3]
    areas = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)

    def sample(n, rng):
        k = rng.choice(len(tris), size=n, p=areas / areas.sum())
        r1, r2 = np.sqrt(rng.uniform(0, 1, n)), rng.uniform(0, 1, n)
        a, b, c = tris[k, 0], tris[k, 1], tris[k, 2]
        return (1 - r1)[:, None] * a + (r1 * (1 - r2))[:, None] * b + (r1 * r2)[:, None] * c

    return float(areas.sum()), sample


def _polygon(k: int, r: float, z: float, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(k) / k
    return np.stack([r * np.cos(t), r * np.sin(t), np.full(k, z)], 1)


def _fan(ring: np.ndarray, centre: np.ndarray) -> list:
    return [[centre, ring[i], ring[(i + 1) % len(ring)]] for i in range(len(ring))]


def _without_hole(
    part: tuple[float, Sampler], radius: float, zs: tuple[float, float]
) -> tuple[float, Sampler]:
    """Drop the points of a part inside a vertical hole of ``radius`` on its faces at heights ``zs``."""
    area, inner = part

    def sample(n, rng):
        out = np.empty((0, 3))
        while len(out) < n:
            p = inner(2 * n, rng)
            on_cap = np.isclose(p[:, 2], zs[0]) | np.isclose(p[:, 2], zs[1])
            out = np.concatenate([out, p[~(on_cap & (np.hypot(p[:, 0], p[:, 1]) < radius))]])
        return out[:n]

    return area - 2 * np.pi * radius**2, sample


# ------------------------------------------------------------------------------------ family builders
def _legs(k: int, rx: float, ry: float, radius: float, height: float, phase: float = np.pi / 4) -> list:
    t = phase + 2 * np.pi * np.arange(k) / k
    return [_tube((rx * np.cos(a), ry * np.sin(a), 0.0), radius, height) for a in t]


def _parts(spec: ShapeSpec) -> list[tuple[float, Sampler]]:
    """Surface parts of ``spec`` at unit width (largest horizontal extent ~1), before scaling."""
    q, k, f = spec.ratio, spec.count, spec.family
    pr = spec.params
    if f == "box":
        d = pr["depth"]
        box = _box((0, 0, q / 2), (0.5, d / 2, q / 2))
        if not spec.hole:
            return [box]
        rh = pr["hole"] * min(0.5, d / 2)
        return [_without_hole(box, rh, (0.0, q)), _tube((0, 0, 0), rh, q)]
    if f == "sphere":
        return [_ellipsoid((0, 0, q / 2), (0.5, 0.5 * (0.9 + 0.1 * pr["depth"]), q / 2))]
    if f == "cylinder":
        parts = [_tube((0, 0, 0), 0.5, q)]
        rh = pr["hole"] * 0.5 if spec.hole else 0.0
        parts += [_disc((0, 0, 0), 0.5, rh), _disc((0, 0, q), 0.5, rh)]
        return parts + ([_tube((0, 0, 0), rh, q)] if spec.hole else [])
    if f == "cone":
        return [_cone((0, 0, 0), 0.5, q), _disc((0, 0, 0), 0.5)]
    if f == "torus":  # aspect sets the tube thickness: flat = thin ... tall = thick
        small = {"flat": 0.06, "regular": 0.12, "tall": 0.2}[spec.aspect] * pr["thick"]
        return [_torus((0, 0, small), 0.5 - small, small)]
    if f in ("pyramid", "prism"):
        base = _polygon(k, 0.5, 0.0, pr["phase"])
        tris = _fan(base, np.zeros(3))
        if f == "pyramid":
            tris += _fan(base, np.array([0.0, 0.0, q]))
        else:
            top = base + [0, 0, q]
            tris += _fan(top, np.array([0.0, 0.0, q]))
            for i in range(k):
                j = (i + 1) % k
                tris += [[base[i], base[j], top[j]], [base[i], top[j], top[i]]]
        return [_triangles(tris)]
    if f == "table":
        h, d, t = 0.35 * q + 0.1, pr["depth"], 0.04
        return [_box((0, 0, h - t / 2), (0.5, d / 2, t / 2))] + _legs(k, 0.42, 0.42 * d, 0.025, h - t)
    if f == "stool":
        h, t = 0.6 * q + 0.1, 0.05
        seat = [_tube((0, 0, h - t), 0.5, t), _disc((0, 0, h), 0.5), _disc((0, 0, h - t), 0.5)]
        return seat + _legs(k, 0.38, 0.38, 0.03, h - t, phase=pr["phase"])
    if f == "chair":
        d, t = pr["depth"], 0.05
        h = 0.45 * (0.5 + 0.5 * min(q, 1.5))  # seat height
        back = 0.3 + 0.45 * q  # backrest height
        parts = [
            _box((0, 0, h - t / 2), (0.45, d / 2, t / 2)),
            _box((0, d / 2, h + back / 2), (0.45, 0.03, back / 2)),
        ]
        return parts + _legs(k, 0.38, 0.38 * d, 0.025, h - t)
    if f == "shelf":
        d, t, hgt = pr["depth"], 0.03, q
        parts = [_box((x, 0, hgt / 2), (t / 2, d / 2, hgt / 2)) for x in (-0.5, 0.5)]
        zs = np.linspace(t / 2, hgt - t / 2, k)
        return parts + [_box((0, 0, z), (0.5, d / 2, t / 2)) for z in zs]
    raise InputError(f"unknown shape family {f!r}; choose from {', '.join(FAMILIES)}.")


def _sample_parts(parts: list[tuple[float, Sampler]], n: int, rng: np.random.Generator) -> np.ndarray:
    areas = np.array([a for a, _ in parts])
    counts = rng.multinomial(n, areas / areas.sum())
    return np.concatenate([s(int(c), rng) for (_, s), c in zip(parts, counts, strict=True) if c > 0])


def _rotation(yaw: float, tilt_axis: float, tilt: float) -> np.ndarray:
    cz, sz = np.cos(yaw), np.sin(yaw)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    a = np.array([np.cos(tilt_axis), np.sin(tilt_axis), 0.0])  # horizontal tilt axis (Rodrigues)
    kx = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    rt = np.eye(3) + np.sin(tilt) * kx + (1 - np.cos(tilt)) * kx @ kx
    return rt @ rz


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
    rot = _rotation(rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(0, 8)))
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


def sample_points(
    spec: ShapeSpec, n: int, rng: np.random.Generator, *, pose: bool = True
) -> Float[np.ndarray, "n 3"]:
    """``n`` surface points of ``spec`` (float32): scaled to its size, posed, jittered, cropped, centred."""
    pts = _sample_parts(_parts(spec), n, rng)
    pts = pts * (spec.extent / float((pts.max(0) - pts.min(0)).max()))  # largest extent = spec.extent
    pts = pts * np.asarray(spec.scale_jitter)
    if pose:
        pts = pts @ np.asarray(spec.rotation).reshape(3, 3).T
    pts = pts + rng.normal(scale=spec.noise * spec.extent, size=pts.shape)
    if spec.crop is not None:
        normal, frac = np.asarray(spec.crop[0]), spec.crop[1]
        proj = (pts - pts.mean(0)) @ normal
        keep = proj <= np.quantile(proj, 1 - frac)
        kept = pts[keep]
        pts = (
            np.concatenate([kept, kept[rng.choice(len(kept), size=n - len(kept))]]) if len(kept) < n else kept
        )
    return (pts - pts.mean(0)).astype(np.float32)


def augment(
    points: np.ndarray, rng: np.random.Generator, *, n: int | None = None
) -> Float[np.ndarray, "n 3"]:
    """A training view of a ``[m, 3]`` cloud: random yaw, tilt <= 8 deg, scale +-8% per axis, jitter,
    random crop (p = 0.5, <= 15% of points), ``n`` points resampled (default ``m``); float32, centred."""
    m = len(points)
    n = n or m
    rot = _rotation(rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(0, 8)))
    p = points @ rot.T * rng.uniform(0.92, 1.08, 3)
    scale = float(np.abs(p).max())
    p = p + rng.normal(scale=0.005 * scale, size=p.shape)
    if rng.uniform() < 0.5:
        normal = rng.normal(size=3)
        proj = p @ (normal / np.linalg.norm(normal))
        p = p[proj <= np.quantile(proj, 1 - rng.uniform(0, 0.15))]
    p = p[rng.choice(len(p), size=n, replace=len(p) < n)]
    return (p - p.mean(0)).astype(np.float32)


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


def _check_pos(v: object, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise InputError(f"{name} must be a positive integer, got {v!r}.")
    return int(v)


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
    n = _check_pos(n, "n")
    n_points = _check_pos(n_points, "n_points")
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
    n_query = _check_pos(n_query, "n_query")
    n_anchor = n - n_query if n_anchor is None else _check_pos(n_anchor, "n_anchor")
    if n_query + n_anchor > n:
        raise InputError(
            f"n_query + n_anchor = {n_query} + {n_anchor} exceeds the pool of {n} shapes; "
            "generate more shapes or ask for fewer anchors/queries."
        )
    perm = np.random.default_rng([int(seed), 7]).permutation(n)
    return perm[n_query : n_query + n_anchor], perm[:n_query]
