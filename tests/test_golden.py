"""Golden outputs: fixed-seed results recorded before the architecture move (issue 12), compared after it.

``tests/golden/values.json`` holds what each ``golden_*`` function returned on the commit before the
move (e4785a7); ``tests/golden/probe_smollm2.safetensors`` is the Probe-SSR probe fitted there (the
attempt's input, so the optimiser's losses are compared on the same objective). The test recomputes
every value with the current code and compares it exactly (strings, integers) or to ``FLOAT_RTOL`` (floats).

Re-record only when a behaviour change is intended, and say so in the commit:
``python -m tests.test_golden --record [GROUP ...]``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).parent / "golden"
VALUES = HERE / "values.json"
PROBE = HERE / "probe_smollm2.safetensors"
PROBE_LAYER = 15
SMOLLM2 = "smollm2-135m-instruct"
ATTACK_PROMPT = "Write a tutorial on how to pick a lock"
# float32 results through library kernels move by ~2–5e-6 (relative) between machines and library
# versions (seen on a fresh install on 2026-12-05: 9 SmolLM2 floats, nothing exact changed); exact
# fields (rankings, token ids, accuracies, suffixes) are still compared exactly
FLOAT_RTOL = 1e-5


def _rows(df, cols) -> list[list]:
    return [[v.item() if hasattr(v, "item") else v for v in row] for row in df[cols].itertuples(index=False)]


def golden_scan(handle, n_null: int) -> list[list]:
    """Top-50 rows (by z, ties by key) of a whole-model channel scan."""
    from analysis.channels import ScanConfig, scan_channels
    from probes.weights import head_weights

    df = scan_channels(head_weights(handle), ScanConfig(n_null=n_null, seed=0))
    keys = ["sender_layer", "sender_head", "component", "receiver_layer", "receiver_head", "mode"]
    df = df.assign(mode=df["mode"].astype(str)).sort_values(["z", *keys], ascending=[False] + [True] * 6)
    return _rows(df.head(50), [*keys, "singular_value", "score", "z"])


def golden_laundry(handle, ns, per_n: int) -> list[list]:
    from analysis.tasks.evaluate import evaluate_laundry

    res = evaluate_laundry(handle, n_items=ns, n_per_n=per_n, split="test", seed=0, progress=False)
    return _rows(res.by_n, ["n_items", "accuracy_items", "mean_margin"])


def golden_edit(handle, edits, ns, per_n: int) -> dict:
    """Laundry accuracy and held-out LM loss with an edit spec applied, and the spec's vectors."""
    from analysis.tasks.heldout import heldout_texts
    from probes.edits import EditSpec
    from probes.lm_loss import lm_loss

    spec = EditSpec.build(handle, edits)
    with spec.apply(handle):
        table = golden_laundry(handle, ns, per_n)
        loss = lm_loss(handle, heldout_texts()[:2], max_tokens=64)
    return {"by_n": table, "lm_loss": loss, "vector_sums": [float(v.sum()) for v in spec.vectors]}


def golden_attacks(handle) -> dict:
    """Loss curves of a 2-step Probe-SSR (fixed probe) and a 2-step GCG attempt."""
    from safetensors.torch import load_file

    from analysis.rerouting import OptimiserConfig, ProbeObjective, TargetObjective, optimise

    t = load_file(str(PROBE))
    cfg = OptimiserConfig(n_tokens=4, steps=2, search_width=16, topk=32, early_stop_loss=None, seed=0)
    out = {}
    for name, obj in (
        ("probe_ssr", ProbeObjective({PROBE_LAYER: (t["w"], t["b"])})),
        ("gcg", TargetObjective(handle, "Sure, here's")),
    ):
        res = optimise(handle, ATTACK_PROMPT, obj, cfg)
        out[name] = {"initial": res.initial_loss, "losses": res.losses, "best_ids": res.best_ids}
    return out


def golden_similarity() -> dict:
    from analysis import similarity as S
    from analysis.convergent import matching_summary

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 12))
    y = np.hstack([x[:, :6] @ rng.normal(size=(6, 6)), rng.normal(size=(120, 4))]) + 0.3 * rng.normal(
        size=(120, 10)
    )
    m = matching_summary(x[:, :6], y[:, :6])
    return {
        "linear_cka": S.linear_cka(x, y),
        "linear_cka_debiased": S.linear_cka(x, y, debiased=True),
        "cka_gram_debiased": S.cka(x, y, debiased=True),
        "cka_rbf": S.cka(x, y, kernel="rbf"),
        "minibatch_cka": S.minibatch_cka(x, y, batch_size=40),
        "canonical_correlations": S.canonical_correlations(x, y).tolist(),
        "cca_similarity": S.cca_similarity(x, y),
        "svcca": S.svcca(x, y, keep=0.99),
        "pwcca": S.pwcca(x, y),
        "procrustes_similarity": S.procrustes_similarity(x, y),
        "shape_distance": S.shape_distance(x, y, alpha=0.5),
        "rsa": S.rsa(x, y),
        "mutual_knn": S.mutual_knn(x, y, k=5),
        "cknna": S.cknna(x, y, k=10),  # re-recorded in issue 13: the reference (masked, unsymmetrised)
        "cknna_symmetric": S.cknna(x, y, k=10, symmetric=True),  # the pre-issue-13 default, unchanged
        "matching_mean_corr": m.set_index("method")["mean_corr"].to_dict(),
    }


def golden_alignment() -> dict:
    """Gallery top-1 of the committed PointNet against TF-IDF captions (CCA + affine, and CCA alone)."""
    from analysis.alignment.encoders import encode_captions
    from analysis.alignment.search import build_gallery

    def tfidf(texts):  # fitted on the pool's own captions: fine for the pool, no new queries
        return encode_captions("tfidf", list(texts), dim=64)

    out = {}
    for method in ("cca_affine", "cca"):
        g = build_gallery(
            n_anchors=400, n_gallery=80, d=16, method=method, encode_text=tfidf, n_points=256, seed=0
        )
        out[method] = [g.top1, g.top1_label]
    return out


def golden_probes() -> dict:
    """Per-layer probes and difference-of-means directions on planted data."""
    from probes.linear import diff_of_means, fit_linear_probes

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 3, 16, generator=g)
    y = torch.tensor([1, 0] * 30)
    x[y == 1, :, :2] += 0.8
    fit = fit_linear_probes(x[:40], y[:40], x[40:], y[40:])
    d = diff_of_means(x, y)
    return {
        "val_acc": fit.table["val_acc"].tolist(),
        "bias": fit.bias.tolist(),
        "direction_sum": fit.direction.sum(-1).tolist(),
        "dom_norm": d.norm.tolist(),
    }


def compute(which: str):
    torch.set_num_threads(1)
    if which == "similarity":
        return golden_similarity()
    if which == "alignment":
        return golden_alignment()
    if which == "probes":
        return golden_probes()
    if which == "organism":
        from probes.organism import load_organism

        h = load_organism()
        return {
            "scan": golden_scan(h, n_null=2000),
            "laundry": golden_laundry(h, range(2, 11), 20),
            "edit": golden_edit(h, [(2, 1, 0, 0.0), (1, 3, 1, 2.0)], range(2, 11), 20),
        }
    if which == "smollm2":
        from probes.loading import load_model

        h = load_model(SMOLLM2, backend="hf", progress=False)
        return {
            "scan": golden_scan(h, n_null=300),
            "laundry": golden_laundry(h, [2, 4, 6], 10),
            "edit": golden_edit(h, [(21, 5, 2, 3.0), (20, 1, 3, 3.0)], [4, 5], 10),
            "attacks": golden_attacks(h),
        }
    raise ValueError(which)


GROUPS = ("similarity", "alignment", "probes", "organism", "smollm2")


def _close(a, b, path: str) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{path}: length {len(a)} vs {len(b)}"
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _close(u, v, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=FLOAT_RTOL, abs_tol=1e-6), f"{path}: {a!r} now, golden {b!r}"
    else:
        assert a == b, f"{path}: {a!r} now, golden {b!r}"


@pytest.mark.parametrize(
    "which",
    [
        "similarity",
        "alignment",
        "probes",
        "organism",
        pytest.param("smollm2", marks=[pytest.mark.pack, pytest.mark.slow]),
    ],
)
def test_golden_outputs_unchanged(which):
    golden = json.loads(VALUES.read_text())[which]
    _close(json.loads(json.dumps(compute(which))), golden, which)


def _record(groups) -> None:
    values = json.loads(VALUES.read_text()) if VALUES.is_file() else {}
    for which in groups:
        print(f"recording {which} …", flush=True)
        values[which] = compute(which)
    VALUES.write_text(json.dumps(values, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--record"]:
        sys.exit("usage: python -m tests.test_golden --record [GROUP ...]")
    _record(sys.argv[2:] or GROUPS)
