"""Point-cloud geometry of the procedural shapes: surface samplers of primitives (boxes, discs, tubes,
cones, ellipsoids, tori, triangle meshes), the part lists of each family, poses, and the two ways a
cloud is drawn: :func:`sample_points` (a shape spec's surface, posed and jittered) and :func:`augment`
(a training view of an existing cloud).

Every primitive returns ``(area, sampler)``; a shape's points are spread over its parts in proportion
to their areas, so the density is uniform over the surface.

>>> from analysis.alignment.shapes import ShapeSpec
>>> spec = ShapeSpec("box", "small", "regular", None, False, 0.5, 1.0, params={"depth": 0.8})
>>> pts = sample_points(spec, 200, np.random.default_rng(0), pose=False)
>>> pts.shape, round(float(np.ptp(pts, axis=0).max()), 2)
((200, 3), 0.5)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from jaxtyping import Float

from probes.errors import InputError

if TYPE_CHECKING:
    from .shapes import ShapeSpec

__all__ = ["Sampler", "augment", "rotation", "sample_points"]

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
    raise InputError(f"unknown shape family {f!r}.")


def _sample_parts(parts: list[tuple[float, Sampler]], n: int, rng: np.random.Generator) -> np.ndarray:
    areas = np.array([a for a, _ in parts])
    counts = rng.multinomial(n, areas / areas.sum())
    return np.concatenate([s(int(c), rng) for (_, s), c in zip(parts, counts, strict=True) if c > 0])


def rotation(yaw: float, tilt_axis: float, tilt: float) -> Float[np.ndarray, "3 3"]:
    """Yaw about the vertical axis, then a tilt by ``tilt`` radians about a horizontal axis at angle
    ``tilt_axis`` (Rodrigues)."""
    cz, sz = np.cos(yaw), np.sin(yaw)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    a = np.array([np.cos(tilt_axis), np.sin(tilt_axis), 0.0])  # horizontal tilt axis (Rodrigues)
    kx = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    rt = np.eye(3) + np.sin(tilt) * kx + (1 - np.cos(tilt)) * kx @ kx
    return rt @ rz


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
    rot = rotation(rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(0, 8)))
    p = points @ rot.T * rng.uniform(0.92, 1.08, 3)
    scale = float(np.abs(p).max())
    p = p + rng.normal(scale=0.005 * scale, size=p.shape)
    if rng.uniform() < 0.5:
        normal = rng.normal(size=3)
        proj = p @ (normal / np.linalg.norm(normal))
        p = p[proj <= np.quantile(proj, 1 - rng.uniform(0, 0.15))]
    p = p[rng.choice(len(p), size=n, replace=len(p) < n)]
    return (p - p.mean(0)).astype(np.float32)
