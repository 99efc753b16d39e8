"""``run_alignment`` / ``sublens align run`` on tiny configs: tables, run directory, config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.alignment.experiment import AlignmentConfig, load_config, run_experiment, summary_table
from analysis.alignment.figures import retrieval_vs_anchors_figure, retrieval_vs_d_figure
from analysis.alignment.shapes import make_shapes
from apps.cli.align import app
from probes.errors import InputError

TINY = """
seeds = [0, 1]
encoders_3d = ["pointnet"]
encoders_text = ["tfidf"]
n_anchors = [40, 80]
n_query = 20
dims = [2, 4]
n_points = 128
n_semantic = 12
tfidf_dim = 16
"""


pytestmark = pytest.mark.usefixtures("one_thread")


def test_planted_features_give_perfect_subspace_retrieval():
    """A 3-d per-item signal shared by both views under larger nuisance: CCA finds it, full space does not."""
    cfg = AlignmentConfig(seeds=[0], n_anchors=[400], n_query=40, dims=[3, 30], n_semantic=0, n_points=16)
    pool = make_shapes(cfg.n_pool, seed=cfg.seed, n_points=16)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(cfg.n_pool, 3))  # a per-item signal shared by both views
    rot = lambda k: np.linalg.qr(rng.normal(size=(k, k)))[0]  # noqa: E731 - well-conditioned mixing
    x = np.hstack([z, 3 * rng.normal(size=(cfg.n_pool, 27))]) @ rot(30)
    y = np.hstack([z, 3 * rng.normal(size=(cfg.n_pool, 37))]) @ rot(40)
    res = run_experiment(cfg, features=({"px": x}, {"ty": y}))
    df = res.results
    assert set(df.method) == {"affine", "local_cka", "cca", "cca_affine", "cca_local_cka"}
    top = df.set_index(["method", "d"])["t2s_top1"]
    assert top[("cca_affine", 3)] > 0.9 and top[("cca", 3)] > 0.9
    full = df[df.method == "affine"]["t2s_top1"].iloc[0]
    assert top[("cca_affine", 3)] >= 3 * max(full, 1 / 40)
    assert top[("cca_affine", 3)] > top[("cca_affine", 30)]  # peaks at the planted dimension
    assert res.diagnostics.raw_linear_cka.iloc[0] < 0.5
    assert len(pool) == cfg.n_pool


def test_cli_writes_a_run(tmp_path):
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY)
    out = tmp_path / "runs"
    r = CliRunner().invoke(app, ["run", str(cfg_path), "--out", str(out)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    (run_dir,) = list((out / "align").iterdir())
    names = {p.name for p in run_dir.iterdir()}
    expected = {"results.parquet", "summary.parquet", "diagnostics.parquet", "semantics.parquet", "run.json"}
    assert expected <= names
    assert {"retrieval_vs_d.html", "retrieval_vs_anchors.html", "example_shape.html"} <= names
    df = pd.read_parquet(run_dir / "results.parquet")
    # 2 seeds x 2 anchor counts x (2 full-space + 3 subspace methods x 2 dims)
    assert len(df) == 2 * 2 * (2 + 3 * 2)
    assert df[["t2s_top1", "t2s_top5", "matching"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (df.t2s_top5 >= df.t2s_top1).all()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["command"] == "align run" and meta["config"]["n_query"] == 20 and meta["status"] == "ok"
    assert len(meta["weights_sha256"]["pointnet"]) == 64 and meta["weights_sha256"]["tfidf"] is None
    sem = pd.read_parquet(run_dir / "semantics.parquet")
    assert {"raw pointnet", "raw tfidf"} <= set(sem.space) and sem.n_pairs.iloc[0] == 12 * 11 // 2
    assert "best d per method" in r.output and "semantics vs geometry" in r.output
    summ = summary_table(df)
    assert (summ.n_seeds == 2).all()
    assert len(retrieval_vs_d_figure(df).data) == 5 and len(retrieval_vs_anchors_figure(df).data) == 5


def test_bad_config_exits_2_with_a_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('n_query = 20\nencoders_text = ["bert"]\n')
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "apps.cli.main", "align", "run", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2 and "encoders_text: unknown ['bert']" in r.stderr


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("n_querry = 3\n", "n_querry: Extra inputs are not permitted"),
        ("n_query = 3\n", "n_query: Input should be greater than or equal to 5"),
        ("dims = [0]\n", "dims: must hold integers >= 1"),
        ("methods = ['svd']\n", "methods: unknown"),
        ("n_query = [\n", "not valid TOML"),
        ("families = ['blob']\n", "families: unknown"),
    ],
)
def test_config_errors(tmp_path, text, match):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(InputError, match=match):
        load_config(p)


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "none.toml")


def test_only_impossible_dims_is_an_error():
    cfg = AlignmentConfig(seeds=[0], n_anchors=[20], n_query=10, dims=[8], methods=["cca"], n_semantic=0)
    r = np.random.default_rng(0)
    feats = ({"a": r.normal(size=(30, 3))}, {"b": r.normal(size=(30, 3))})
    with pytest.raises(InputError, match=r"d = 8 is larger than any encoder pair supports.*dims <= 3"):
        run_experiment(cfg, features=feats)  # refused before aligning, not silently dropped


def test_precomputed_features_must_cover_the_pool():
    cfg = AlignmentConfig(seeds=[0], n_anchors=[20], n_query=10, dims=[2], n_semantic=0, n_points=16)
    with pytest.raises(InputError, match="one row per pool shape"):
        run_experiment(cfg, features=({"a": np.zeros((5, 3))}, {"b": np.zeros((30, 3))}))
