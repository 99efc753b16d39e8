"""``sublens laundry steer``: a run folder with every table on the organism, saved N by N and resumable;
bad flags exit 2 before any model loads (in-process, :func:`apps.cli.main.run_cli`)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from apps.cli.main import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


def test_steer_writes_its_tables_and_resumes(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["laundry", "steer", "organism", "--n-min", "3", "--n-max", "4", "--per-n", "6", "--fit-per-n", "8",
            "--locate-per-n", "8", "--n-null", "50", "--steps", "2", "--oracle-steps", "2", "--out", str(out)]  # fmt: skip
    assert run_cli(argv) == 0, capsys.readouterr().err
    (run,) = out.glob("laundry-steer/*")
    assert json.loads((run / "run.json").read_text())["status"] == "ok"
    by_n = pd.read_parquet(run / "by_n.parquet")
    assert set(by_n["condition"]) == {"baseline", "rule", "oracle"} and (by_n["n_prompts"] == 6).all()
    assert {"ci_low", "ci_high", "gain_pp"} <= set(by_n.columns)
    by_pos = pd.read_parquet(run / "by_position.parquet")
    assert by_pos.groupby(["condition", "n_items"])["position"].nunique().tolist() == [3, 4] * 3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_per_n"] == 6 and summary["oracle_ge_rule_every_prompt"]
    assert {p.name for p in run.glob("scored_n*.parquet")} == {"scored_n3.parquet", "scored_n4.parquet"}
    # a run stopped after N = 3: --resume redoes N = 4 only, with the saved config and fit
    (run / "scored_n4.parquet").unlink()
    fit = (run / "steer_fit.json").stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli(["laundry", "steer", "organism", "--resume", str(run)]) == 0, capsys.readouterr().err
    assert (run / "steer_fit.json").stat().st_mtime_ns == fit and (run / "scored_n4.parquet").is_file()
    pd.testing.assert_frame_equal(pd.read_parquet(run / "by_n.parquet"), by_n, atol=1e-9)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fit-per-n", "1"], "--fit-per-n 1 must be >= 2"),
        (["--steps", "0"], "--steps 0 must be >= 1"),
        (["--lr", "0"], "--lr 0.0 must be > 0"),
        (["--l2", "-1"], "--l2 -1.0 must be >= 0"),
        (["--k", "9"], "--k 9 is larger than the 8 stacked directions"),
        (["--resume", "nowhere"], "--resume"),
    ],
)
def test_steer_bad_flags_exit_2(tmp_path, capsys, args, needle):
    assert run_cli(["laundry", "steer", "organism", *args, "--out", str(tmp_path)]) == 2
    err = re.sub(r"\s+", " ", capsys.readouterr().err)
    assert needle in err and "Traceback" not in err
    assert not list(tmp_path.rglob("run.json"))
