"""``sublens laundry subspace``: a run folder with every table on the organism; bad flags exit 2 before
any model loads (in-process, :func:`apps.cli.main.run_cli`)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from apps.cli.main import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


def test_subspace_writes_its_tables(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["laundry", "subspace", "organism", "--n-max", "4", "--per-n", "8", "--locate-per-n", "4",
            "--n-boot", "20", "--n-null", "50", "--k", "3", "--out", str(out)]  # fmt: skip
    assert run_cli(argv) == 0, capsys.readouterr().err
    (run,) = out.glob("laundry-subspace/*")
    assert json.loads((run / "run.json").read_text())["status"] == "ok"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["basis_k"] == 3 and summary["m_directions"] == 8
    assert all(s[0] < min(m[0] for m in summary["movers"]) for s in summary["suppressors"])
    coords = pd.read_parquet(run / "coords.parquet")
    assert len(coords) == 3 * 8 and {"c0", "c1", "c2"} <= set(coords.columns) and "c3" not in coords
    dec = pd.read_parquet(run / "decodability.parquet")
    assert dec["n_items"].tolist() == [2, 3, 4] and dec["chance"].tolist() == pytest.approx(
        [1 / 2, 1 / 3, 1 / 4]
    )
    corr = pd.read_parquet(run / "correlation.parquet")
    assert corr["correlation"].tolist() == ["pooled", "within_n"] and (corr["n_boot"] == 20).all()
    comps = pd.read_parquet(run / "components.parquet")
    assert len(comps) == 8 and comps["z"].notna().all()
    assert (run / "scatter.html").read_text().count("position 0") >= 3  # one scatter per N


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--k", "9"], "--k 9 is larger than the 8 stacked directions"),
        (["--n-boot", "5"], "--n-boot 5 must be >= 10"),
        (["--per-head", "0"], "--per-head 0 must be >= 1"),
        (["--n-min", "1"], "--n-min 1 must be >= 2"),
    ],
)
def test_bad_flags_exit_2(tmp_path, capsys, args, needle):
    assert run_cli(["laundry", "subspace", "organism", *args, "--out", str(tmp_path)]) == 2
    err = re.sub(r"\s+", " ", capsys.readouterr().err)
    assert needle in err and "Traceback" not in err and "Loading" not in err
    assert not list(tmp_path.rglob("run.json"))  # refused before a run folder exists
