"""Procedural shapes and captions: determinism, disjoint splits, attribute ranges, caption content."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analysis.alignment.geometry import augment, sample_points
from analysis.alignment.shapes import (
    ASPECTS,
    FAMILIES,
    SIZES,
    ShapeSpec,
    anchor_query_split,
    caption_for,
    make_shapes,
    random_spec,
)
from probes.errors import InputError


@pytest.fixture(scope="module")
def ds():
    return make_shapes(120, seed=3, split="eval", n_points=256)


def test_deterministic_and_prefix_stable(ds):
    again = make_shapes(120, seed=3, split="eval", n_points=256)
    assert np.array_equal(ds.points, again.points) and ds.captions == again.captions
    short = make_shapes(10, seed=3, split="eval", n_points=256)
    assert np.array_equal(short.points, ds.points[:10])
    other = make_shapes(10, seed=4, split="eval", n_points=256)
    assert not np.allclose(other.points, short.points)


def test_train_and_eval_splits_are_disjoint_streams():
    tr = make_shapes(40, seed=0, split="train", n_points=64)
    ev = make_shapes(40, seed=0, split="eval", n_points=64)
    # no eval cloud appears in train (continuous parameters make exact repeats impossible if streams differ)
    flat_tr = {p.tobytes() for p in tr.points}
    assert not any(p.tobytes() in flat_tr for p in ev.points)
    assert [s.extent for s in tr.specs] != [s.extent for s in ev.specs]


def test_attribute_ranges(ds):
    assert ds.points.shape == (120, 256, 3) and ds.points.dtype == np.float32
    assert np.isfinite(ds.points).all()
    np.testing.assert_allclose(ds.points.mean(1), 0.0, atol=1e-5)  # centred
    seen_families = set(ds.attributes.family)
    assert seen_families <= set(FAMILIES) and len(seen_families) >= 8
    for spec, row in zip(ds.specs, ds.attributes.itertuples(), strict=True):
        lo, hi = SIZES[spec.size]
        assert lo <= spec.extent <= hi
        lo, hi = ASPECTS[spec.aspect]
        assert lo <= spec.ratio <= hi
        fam = FAMILIES[spec.family]
        assert (spec.count in fam.counts) if fam.counts else spec.count is None
        assert (spec.hole in (True, False)) if fam.has_hole else spec.hole is None
        assert row.key.startswith(spec.family + "|")
    # before pose and crop, the largest extent of the cloud is the size value (scale jitter 5%, noise 1%)
    rng = np.random.default_rng(0)
    for spec in ds.specs[:40]:
        p = sample_points(dataclasses.replace(spec, crop=None), 256, rng, pose=False)
        assert abs(float((p.max(0) - p.min(0)).max()) / spec.extent - 1) < 0.1
    # posed clouds: the diameter (rotation invariant) separates small from large shapes
    diam = np.array([float(np.linalg.norm(p[:, None] - p[None], axis=2).max()) for p in ds.points])
    small = (ds.attributes["size"] == "small").to_numpy()
    large = (ds.attributes["size"] == "large").to_numpy()
    assert diam[large].min() > diam[small].max()


def test_captions_name_the_attributes(ds):
    number = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
    for cap, spec in zip(ds.captions, ds.specs, strict=True):
        fam = FAMILIES[spec.family]
        assert any(noun in cap for noun in fam.nouns), cap
        assert any(w in cap for w in fam.aspect_words[spec.aspect]), cap
        if spec.count is not None:
            assert f"{number[spec.count]} {fam.count_word}" in cap
        if spec.hole is True:
            assert "with a hole" in cap
        if spec.hole is False:
            assert "without a hole" in cap or "solid" in cap


def test_hole_removes_points_near_the_axis():
    rng = np.random.default_rng(0)
    solid = ShapeSpec("cylinder", "medium", "regular", None, False, 1.0, 1.0, params={"hole": 0.5})
    holed = ShapeSpec("cylinder", "medium", "regular", None, True, 1.0, 1.0, params={"hole": 0.5})
    caps = [sample_points(s, 4000, rng, pose=False) for s in (solid, holed)]
    near_axis = [np.mean(np.hypot(p[:, 0], p[:, 1]) < 0.1) for p in caps]
    assert near_axis[0] > 0.01 and near_axis[1] == 0.0


def test_anchor_query_split_disjoint_and_seeded():
    a, q = anchor_query_split(100, 20, 50, seed=1)
    assert len(a) == 50 and len(q) == 20 and not set(a) & set(q)
    a2, q2 = anchor_query_split(100, 20, 50, seed=1)
    assert np.array_equal(a, a2) and np.array_equal(q, q2)
    a3, _ = anchor_query_split(100, 20, 50, seed=2)
    assert not np.array_equal(a, a3)
    with pytest.raises(InputError, match="exceeds the pool"):
        anchor_query_split(10, 5, 6)


def test_augment_is_a_centred_view():
    rng = np.random.default_rng(0)
    p = sample_points(random_spec(np.random.default_rng(1)), 300, rng)
    v = augment(p, rng, n=128)
    assert v.shape == (128, 3) and v.dtype == np.float32
    np.testing.assert_allclose(v.mean(0), 0.0, atol=1e-5)
    # rotation about z plus small scale changes keeps the height range close
    assert abs(np.ptp(v[:, 2]) / np.ptp(p[:, 2]) - 1) < 0.4


def test_caption_templates_use_synonyms():
    spec = ShapeSpec("torus", "large", "flat", None, None, 1.4, 0.3)
    caps = {caption_for(spec, np.random.default_rng(i)) for i in range(30)}
    assert len(caps) > 3 and all("thin" in c for c in caps)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be a positive integer"),
        ({"n": 2, "split": "test"}, "split must be one of"),
        ({"n": 2, "families": ["blob"]}, "unknown shape families"),
        ({"n": 2, "n_points": 0}, "n_points must be a positive integer"),
    ],
)
def test_bad_input(kwargs, match):
    n = kwargs.pop("n")
    with pytest.raises(InputError, match=match):
        make_shapes(n, **kwargs)
