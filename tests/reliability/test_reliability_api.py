"""Issue 13, API side: bad input gets a clear error (or a warning) naming the problem and the fix, never a
silently wrong number or a raw crash. One table of cases: a callable, the expected exception or warning,
and regexes its message must match."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import numpy as np
import pytest
import torch

import analysis.similarity as S
from analysis.alignment import AlignmentConfig, SkippedDimsWarning, fit_affine, fit_cca, run_experiment
from analysis.channels import ScanConfig, scan_channels
from analysis.channels.null import random_unit_directions
from analysis.compare_layers import check_prompt_count, compare_layers
from analysis.similarity import SmallSampleWarning, check_cka_samples
from analysis.tasks.common import ToyTokenizer
from analysis.tasks.ioi import ioi_prompts
from analysis.tasks.laundry import DEFAULT_ITEMS, laundry_list_prompts
from probes.capture import capture
from probes.datasets import load_instructions, load_prompt_lines
from probes.edits import EditSpec, LargeAlphaWarning
from probes.errors import InputError, SubspaceLensError
from probes.generation import generate_batch
from probes.head_weights import HeadWeights
from probes.testing import tiny_handle

pytestmark = pytest.mark.usefixtures("one_thread")


@cache
def _tiny():
    """Rotary tiny model: 2 layers, 4 heads, d_head 8, a 128-token context."""
    return tiny_handle(seed=0)


@cache
def _organism():
    """The organism: learned absolute positions, a 96-token context."""
    from probes.loading import load_model

    return load_model("organism", progress=False)


def _xy(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    return x, x @ rng.normal(size=(6, 5)) + 0.5 * rng.normal(size=(n, 5))


def _spec_file(tmp_path, edit_change=None, top_change=None):
    """A saved spec on the tiny model, its JSON then hand-edited."""
    path = EditSpec.build(_tiny(), [(1, 2, 0, 0.5)]).save(tmp_path / "spec.json")
    meta = json.loads(path.read_text())
    if edit_change:
        meta["edits"][0] = edit_change(dict(meta["edits"][0]))
    if top_change:
        meta = top_change(meta)
    path.write_text(json.dumps(meta))
    return path


def _set(key, value):
    return lambda d: d | {key: value}


def _drop(key):
    return lambda d: {k: v for k, v in d.items() if k != key}


def _nan_y():
    x, y = _xy()
    y = y.copy()
    y[3, 1] = np.nan
    return x, y


def _features(p: int, q: int, n: int):
    """Shared-latent random 3D and text features for the alignment driver (no encoders)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, 4))
    return {"pointnet": np.hstack([z, rng.normal(size=(n, p - 4))])}, {
        "tfidf": np.hstack([z @ rng.normal(size=(4, 4)), rng.normal(size=(n, q - 4))])
    }


def _align(dims, n_anchors, p, q):
    cfg = AlignmentConfig(
        encoders_text=["tfidf"],
        n_anchors=n_anchors,
        n_query=10,
        dims=dims,
        seeds=[0],
        n_semantic=0,
        n_points=16,
    )
    return run_experiment(cfg, features=_features(p, q, cfg.n_pool))


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable  # f(tmp_path)
    expect: type  # an exception or a warning class
    patterns: tuple[str, ...]  # regexes the message must match (the problem and the fix)


METRICS = {
    "linear_cka": S.linear_cka,
    "debiased_cka": partial(S.linear_cka, debiased=True),
    "cka_rbf": partial(S.cka, kernel="rbf"),
    "minibatch_cka": partial(S.minibatch_cka, batch_size=10),
    "canonical_correlations": S.canonical_correlations,
    "cca_similarity": S.cca_similarity,
    "svcca": S.svcca,
    "pwcca": S.pwcca,
    "procrustes_similarity": S.procrustes_similarity,
    "procrustes_distance": S.procrustes_distance,
    "shape_distance": S.shape_distance,
    "rsa": S.rsa,
    "mutual_knn": S.mutual_knn,
    "cknna": S.cknna,
}

NAN_CASES = [
    Case(
        f"nan-input-{name}",
        lambda _, f=fn: f(*_nan_y()),
        InputError,
        (r"NaN/inf", r"row 3, column 1", r"drop"),
    )
    for name, fn in METRICS.items()
]

CASES = [
    # --- finding 6: edit specs --------------------------------------------------------------------
    Case(
        "spec-layer-negative",
        lambda t: EditSpec.load(_spec_file(t, _set("layer", -1))),
        InputError,
        (r"edits\[0\]: layer -1 is out of range", r"2 layers \(layers 0\.\.1\)", r"negative values are not"),
    ),
    Case(
        "spec-head-out-of-range",
        lambda t: EditSpec.load(_spec_file(t, _set("head", 4))),
        InputError,
        (r"head 4 is out of range", r"4 heads per layer", r"Use a value in 0\.\.3"),
    ),
    Case(
        "spec-head-negative",
        lambda t: EditSpec.load(_spec_file(t, _set("head", -2))),
        InputError,
        (r"head -2 is out of range", r"0\.\.3"),
    ),
    Case(
        "spec-component-out-of-range",
        lambda t: EditSpec.load(_spec_file(t, _set("component", 99))),
        InputError,
        (r"component 99 is out of range", r"d_head=8 components \(0\.\.7"),
    ),
    Case(
        "spec-extra-edit-field",
        lambda t: EditSpec.load(_spec_file(t, _set("gain", 2.0))),
        InputError,
        (r"unknown field 'gain' in edits\[0\]", r"layer, head, component, alpha", r"Remove it"),
    ),
    Case(
        "spec-missing-edit-field",
        lambda t: EditSpec.load(_spec_file(t, _drop("alpha"))),
        InputError,
        (r"edits\[0\] is missing the field 'alpha'",),
    ),
    Case(
        "spec-extra-top-level-field",
        lambda t: EditSpec.load(_spec_file(t, top_change=_set("colour", "red"))),
        InputError,
        (r"unknown field 'colour'", r"re-save the spec"),
    ),
    Case(
        "spec-layer-wrong-type",
        lambda t: EditSpec.load(_spec_file(t, _set("layer", "1"))),
        InputError,
        (r"layer must be an integer 0\.\.1, got '1'",),
    ),
    Case(
        "spec-edits-not-a-list",
        lambda t: EditSpec.load(_spec_file(t, top_change=_set("edits", {"layer": 1}))),
        InputError,
        (r"'edits' must be a non-empty list",),
    ),
    Case(
        "spec-not-an-object",
        lambda t: EditSpec.load(_spec_file(t, top_change=lambda m: [m])),
        InputError,
        (r"not a valid spec file", r"JSON object", r"re-save"),
    ),
    Case(
        "spec-huge-alpha-warns",
        lambda t: EditSpec.load(_spec_file(t, _set("alpha", 1e6))),
        LargeAlphaWarning,
        (r"alpha = 1e\+06 scales the component by more than 100x", r"typo"),
    ),
    Case(
        "edit-build-huge-negative-alpha-warns",
        lambda _: EditSpec.build(_tiny(), [(0, 0, 0, -500.0)]),
        LargeAlphaWarning,
        (r"alpha = -500", r"typical values lie in -10\.\.10"),
    ),
    Case(
        "edit-build-nan-alpha",
        lambda _: EditSpec.build(_tiny(), [(0, 0, 0, float("nan"))]),
        InputError,
        (r"alpha must be a finite number",),
    ),
    Case(
        "edit-build-negative-layer",
        lambda _: EditSpec.build(_tiny(), [(-1, 0, 0, 0.0)]),
        InputError,
        (r"layer -1 is out of range", r"negative values are not counted from the end"),
    ),
    # --- finding 6: align dims ----------------------------------------------------------------------
    Case(
        "align-dims-beyond-anchors",
        lambda _: AlignmentConfig(n_anchors=[60], dims=[4, 100000]),
        InputError,
        (r"dims: d = 100000 is larger than any anchor set supports", r"Use dims <= 59"),
    ),
    Case(
        "align-dims-beyond-feature-width",
        lambda _: _align([2, 40], [60], 8, 10),
        InputError,
        (
            r"d = 40 is larger than any encoder pair supports",
            r"pointnet \(8-d\) x tfidf \(10-d\): 8",
            r"dims <= 8",
        ),
    ),
    Case(
        "align-dims-skipped-for-small-anchor-sets-warns",
        lambda _: _align([2, 40], [30, 60], 50, 50),
        SkippedDimsWarning,
        (r"not evaluated", r"30 anchors: d = \[40\]", r"smaller dims or more anchors"),
    ),
    Case(
        "align-negative-dims",
        lambda _: AlignmentConfig(dims=[-4]),
        InputError,
        (r"dims: must hold integers >= 1, got \[-4\]",),
    ),
    Case(
        "fit-cca-d-too-large",
        lambda _: fit_cca(*_xy(40), 9),
        InputError,
        (r"d = 9 is larger than the subspace", r"Use d <= 5"),
    ),
    # --- finding 6: small-n CKA -----------------------------------------------------------------------
    Case(
        "linear-cka-n2",
        lambda _: S.linear_cka(*_xy(2)),
        InputError,
        (r"2 samples \(rows\) are too few for CKA", r"1\.0 for any inputs", r"at least 32"),
    ),
    Case(
        "linear-cka-n3",
        lambda _: S.linear_cka(*_xy(3)),
        InputError,
        (r"3 samples \(rows\) are too few", r"at least 32"),
    ),
    Case("gram-cka-n3", lambda _: S.cka(*_xy(3)), InputError, (r"too few for CKA",)),
    Case(
        "linear-cka-small-n-warns",
        lambda _: S.linear_cka(*_xy(10)),
        SmallSampleWarning,
        (r"10 samples \(rows\) is biased high", r"d/\(n\+d\)", r"debiased=True", r"'debiased_cka'"),
    ),
    Case(
        "check-cka-samples-prompts",
        lambda _: check_cka_samples(3, "prompts"),
        InputError,
        (r"3 prompts are too few for CKA", r"at least 32 prompts"),
    ),
    Case(
        "compare-layers-three-prompts",
        lambda _: compare_layers(_tiny(), _tiny(), ["a cat", "a dog", "a hat"], progress=False),
        InputError,
        (r"3 prompts are too few", r"at least 32 prompts"),
    ),
    Case(
        "compare-layers-check-before-capture-unknown-metric",
        lambda _: check_prompt_count(40, ["linear_cka", "cka9"]),
        InputError,
        (r"unknown metric 'cka9'", r"--metrics"),
    ),
    # --- finding 9: scale, overflow -------------------------------------------------------------------
    Case(
        "affine-overflow-not-zero-variance",
        lambda _: fit_affine(_xy()[0] * 1e200, _xy()[1]),
        InputError,
        (r"values too large \(overflow\)", r"Rescale src"),
    ),
    Case(
        "affine-underflow",
        lambda _: fit_affine(_xy()[0] * 1e-200, _xy()[1]),
        InputError,
        (r"values too small \(underflow\)", r"Rescale src"),
    ),
    Case(
        "ridge-cca-overflow",
        lambda _: S.canonical_correlations(_xy()[0] * 1e200, _xy()[1], reg=0.1),
        InputError,
        (r"values too large \(overflow\)",),
    ),
    Case(
        "minibatch-later-batch-overflows",
        lambda _: S.minibatch_cka([_xy(20), (_xy(20)[0] * 1e200, _xy(20)[1])]),
        InputError,
        (r"values too large \(overflow\)", r"rescale the inputs"),
    ),
    # --- finding 10 / guard rails of every metric -----------------------------------------------------
    Case(
        "mismatched-n",
        lambda _: S.linear_cka(_xy()[0], _xy()[1][:-1]),
        InputError,
        (r"same number of samples \(rows\): got 40 and 39", r"transposes"),
    ),
    Case(
        "empty-array",
        lambda _: S.linear_cka(np.zeros((0, 3)), np.zeros((0, 3))),
        InputError,
        (r"has 0 samples", r"pass more rows"),
    ),
    Case(
        "one-d-array",
        lambda _: S.procrustes_similarity(_xy()[0][:, 0], _xy()[1]),
        InputError,
        (r"must be a 2-D \[n_samples, n_features\] matrix", r"reshape\(-1, 1\)"),
    ),
    Case(
        "no-features",
        lambda _: S.rsa(np.zeros((10, 0)), _xy(10)[1]),
        InputError,
        (r"has no features", r"at least one column"),
    ),
    Case(
        "string-array",
        lambda _: S.mutual_knn(_xy()[0].astype(str), _xy()[1]),
        InputError,
        (r"not a real number type", r"float activations"),
    ),
    Case(
        "complex-array",
        lambda _: S.svcca(torch.from_numpy(_xy()[0] * 1j), _xy()[1]),
        InputError,
        (r"is complex", r"\.real"),
    ),
    Case(
        "mutual-knn-k-equals-n",
        lambda _: S.mutual_knn(*_xy(20), k=20),
        InputError,
        (r"k = 20 neighbours is out of range for 20 samples", r"k <= 19"),
    ),
    Case(
        "cknna-k-zero",
        lambda _: S.cknna(*_xy(20), k=0),
        InputError,
        (r"k = 0 neighbours is out of range", r"1 <= k <= 19"),
    ),
    Case(
        "knn-unknown-metric",
        lambda _: S.mutual_knn(*_xy(), metric="manhattan"),
        InputError,
        (r"metric must be 'cosine' or 'euclidean'",),
    ),
    Case(
        "rbf-negative-bandwidth",
        lambda _: S.cka(*_xy(), kernel="rbf", bandwidth=-1.0),
        InputError,
        (r"bandwidth must be a positive fraction",),
    ),
    Case(
        "cca-bad-reg",
        lambda _: S.canonical_correlations(*_xy(), reg=1.5),
        InputError,
        (r"reg must be in \[0, 1\)",),
    ),
    # --- finding 7: prompt length ---------------------------------------------------------------------
    Case(
        "organism-100k-character-prompt",
        lambda _: capture(
            _organism(), ["Mary gave the ball to John. " * 3600], "resid_post.0", progress=False
        ),
        InputError,
        (r"prompt 0 .* is \d{4,} tokens long", r"context of 96 tokens \(learned absolute", r"shorten it"),
    ),
    Case(
        "rope-model-past-context",
        lambda _: capture(_tiny(), ["the cat sat " * 100], "resid_post.0", progress=False),
        InputError,
        (r"tokens long, but tiny-llama-s0 has a context of 128 tokens \(rotary", r"split it"),
    ),
    Case(
        "generation-reserves-new-tokens",
        lambda _: generate_batch(_tiny(), ["the cat sat " * 30], max_new_tokens=60, chat=False),
        InputError,
        (r"plus 60 new tokens to generate", r"at most 68 tokens"),
    ),
    Case(
        "empty-prompt-list",
        lambda _: capture(_tiny(), [], "resid_post.0", progress=False),
        InputError,
        (r"non-empty list of strings", r"an empty list"),
    ),
    Case(
        "whitespace-only-prompt",
        lambda _: capture(_tiny(), ["a cat", "   "], "resid_post.0", progress=False),
        InputError,
        (r"prompt 1 is only whitespace", r"remove it"),
    ),
    Case(
        "non-string-prompt",
        lambda _: capture(_tiny(), ["a cat", 3], "resid_post.0", progress=False),
        InputError,
        (r"prompt 1 is a int, not a string",),
    ),
    # --- finding 7: null memory -----------------------------------------------------------------------
    Case(
        "scan-n-null-1e8",
        lambda _: scan_channels(HeadWeights.random(30, 9, 576, 64), ScanConfig(n_null=100_000_000)),
        InputError,
        (r"--n-null \(n_null\) = 100,000,000", r"needs about [\d.]+ GiB", r"Use --n-null [\d,]+ or fewer"),
    ),
    Case(
        "scan-n-null-one",
        lambda _: ScanConfig(n_null=1),
        InputError,
        (r"n_null: Input should be greater than or equal to 2",),
    ),
    Case(
        "null-directions-too-few",
        lambda _: random_unit_directions(1, 16),
        InputError,
        (r"at least 2 random directions \(--n-null / n_null\)",),
    ),
    # --- finding 9: files and user-facing names -------------------------------------------------------
    Case(
        "instruction-file-unknown-type",
        lambda t: load_instructions((t / "p.xml").write_text("a") and t / "p.xml"),
        InputError,
        (r"Unsupported instruction file type '\.xml'", r"\.txt \(one prompt per line\)"),
    ),
    Case(
        "prompt-file-only-comments",
        lambda t: load_prompt_lines((t / "p.txt").write_text("# nothing\n\n") and t / "p.txt"),
        InputError,
        (r"holds no prompts", r"one prompt per line"),
    ),
    Case(
        "prompt-file-missing",
        lambda t: load_instructions(t / "missing.txt"),
        InputError,
        (r"does not exist", r"one prompt per line"),
    ),
    Case(
        "laundry-empty-lengths",
        lambda _: laundry_list_prompts(ToyTokenizer(DEFAULT_ITEMS), n_items=range(5, 3)),
        InputError,
        (r"no list lengths", r"--n-min is above --n-max", r"--n-min 2 --n-max 10"),
    ),
    Case(
        "laundry-fractional-per-n",
        lambda _: laundry_list_prompts(ToyTokenizer(DEFAULT_ITEMS), n_per_n=1.5),
        InputError,
        (r"--per-n", r"got 1\.5"),
    ),
    Case(
        "ioi-negative-prompts",
        lambda _: ioi_prompts(ToyTokenizer(DEFAULT_ITEMS), n_prompts=-3),
        InputError,
        (r"--ioi-prompts", r"got -3"),
    ),
]


@pytest.mark.parametrize("case", CASES + NAN_CASES, ids=lambda c: c.id)
def test_bad_input_is_named_with_its_fix(case: Case, tmp_path):
    if issubclass(case.expect, Warning):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # only the expected category is checked below
            warnings.simplefilter("always", case.expect)
            with pytest.warns(case.expect) as record:
                case.call(tmp_path)
        message = " ".join(str(w.message) for w in record if issubclass(w.category, case.expect))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(case.expect) as info:
                case.call(tmp_path)
        assert isinstance(info.value, SubspaceLensError)  # the CLI prints these without a traceback
        message = str(info.value)
    for pattern in case.patterns:
        assert re.search(pattern, message), f"{pattern!r} not in: {message}"


def test_case_table_is_large_enough():
    assert len(CASES) + len(NAN_CASES) >= 9 + 15 and len({c.id for c in CASES + NAN_CASES}) == len(
        CASES + NAN_CASES
    )


# --- what used to be silently wrong now gives the right number ------------------------------------------
@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e150])
@pytest.mark.parametrize("name", list(METRICS))
def test_scale_invariant_metrics_work_at_extreme_scales(name, scale):
    x, y = _xy()
    fn = METRICS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        np.testing.assert_allclose(fn(x * scale, y), fn(x, y), rtol=1e-9, atol=1e-12)


def test_plain_text_prompt_files_load(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# header\nHow do I boil an egg?\n\n  Name a colour.  \n")
    assert load_instructions(path) == load_prompt_lines(path) == ["How do I boil an egg?", "Name a colour."]


def test_cknna_default_is_the_published_definition():
    """Independent re-implementation of platonic-rep's formula (masked kernels not symmetrised)."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 12)), rng.normal(size=(300, 9))
    y[:, :4] += x[:, :4]
    xn, yn = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (x, y))
    k, n = 10, len(x)

    def mask(g):
        g = g.copy()
        np.fill_diagonal(g, -np.inf)
        m = np.zeros_like(g)
        np.put_along_axis(m, np.argsort(-g, axis=1)[:, :k], 1.0, axis=1)
        return m

    def hsic(a, b):
        a, b = a.copy(), b.copy()
        np.fill_diagonal(a, 0.0)
        np.fill_diagonal(b, 0.0)
        return (np.sum(a * b.T) + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2 * np.sum(a @ b) / (n - 2)) / (
            n * (n - 3)
        )

    kk, ll = xn @ xn.T, yn @ yn.T
    mk, ml = mask(kk), mask(ll)
    ref = hsic(mk * ml * kk, mk * ml * ll) / np.sqrt(hsic(mk * kk, mk * kk) * hsic(ml * ll, ml * ll))
    assert S.cknna(x, y, k=k) == pytest.approx(ref, abs=1e-9)
    assert S.cknna(x, y, k=k, symmetric=True) != pytest.approx(ref, abs=1e-4)


def test_small_n_cka_refusal_happens_where_the_old_value_was_meaningless():
    x, _ = _xy(2)
    rng = np.random.default_rng(1)
    with pytest.raises(InputError, match="too few for CKA"):  # n = 2 used to give 1.0 for any pair
        S.linear_cka(x, rng.normal(size=(2, 50)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallSampleWarning)
        S.linear_cka(*_xy(32))  # the documented minimum is accepted without a warning
