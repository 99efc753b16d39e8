"""``sublens edit learn``: bad flags exit 2 before a model loads; a tiny sweep on the organism writes its
run folder, resumes without relearning, and its spec is refused by ``edit apply`` on another model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SMALL = (
    "--top-k", "0", "--components", "1.3.1,2.1.0", "--l1", "0.5", "--lm-weight", "0,5", "--steps", "2",
    "--dev-n-min", "2", "--dev-n-max", "3", "--dev-per-n", "2", "--dev-eval-per-n", "1", "--test-n-min", "2",
    "--test-n-max", "3", "--test-per-n", "2", "--ioi-prompts", "2", "--lm-max-tokens", "16",
)  # fmt: skip


def sublens(*args, timeout=300):
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "apps.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--l1", ""), "--l1 is empty"),
        (("--lm-weight", "0,-1"), "--lm-weight 0,-1: every value must be >= 0"),
        (("--steps", "0"), "--steps 0 must be >= 1"),
        (("--lr", "0"), "--lr 0.0 must be > 0"),
        (("--components", "21.5"), "LAYER.HEAD.COMPONENT"),
        (("--dev-n-min", "5", "--dev-n-max", "4"), "--dev-n-max 4 must be >= --dev-n-min 5"),
        (("--scale-max", "0.5"), "need scale-min < 1 < scale-max"),
        (("--top-k", "0", "--components", ""), "no candidates: --top-k 0"),
        (("--qk-heads", "24"), "--qk-heads items must look like LAYER.HEAD"),
        (("--qk-heads", "2.-1"), "--qk-heads item '2.-1': layer and head must be >= 0"),
        (("--qk-movers", "-1"), "--qk-movers -1 must be >= 0"),
        (("--items", "/nonexistent/items.txt"), "--items /nonexistent/items.txt: no such file"),
    ],
)
def test_bad_flags_exit_2_before_loading(tmp_path, capsys, flags, message):
    from apps.cli.main import run_cli

    code = run_cli(["edit", "learn", "no-such-model", *flags, "--out", str(tmp_path)])
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "edit-learn").exists()  # refused before any run folder or model


def test_bad_items_and_templates_files(tmp_path, capsys):
    from apps.cli.main import run_cli

    items = tmp_path / "items.txt"
    items.write_text("sock\nhat\nsock\ncup\nbowl\n")
    assert run_cli(["edit", "learn", "no-such-model", "--items", str(items), "--out", str(tmp_path)]) == 2
    assert "duplicate items ['sock']" in " ".join(capsys.readouterr().err.split())
    templates = tmp_path / "templates.txt"
    templates.write_text("List: {items}. I still need the\n")
    assert (
        run_cli(["edit", "learn", "no-such-model", "--templates", str(templates), "--out", str(tmp_path)])
        == 2
    )
    assert "missing placeholder {rest}" in " ".join(capsys.readouterr().err.split())


def test_qk_heads_out_of_range_for_the_model(tmp_path, capsys):
    from apps.cli.main import run_cli

    code = run_cli(["edit", "learn", "organism", *SMALL, "--qk-heads", "2.0,3.1", "--out", str(tmp_path)])
    assert code == 2
    assert "--qk-heads 3.1 is out of range: talking-heads-organism has layers 0..2" in " ".join(
        capsys.readouterr().err.split()
    )


def test_resume_without_config_is_a_clear_error(tmp_path, capsys):
    from apps.cli.main import run_cli

    assert run_cli(["edit", "learn", "organism", "--resume", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_learn_resume_and_apply(tmp_path, capsys, one_thread):
    from apps.cli.main import run_cli

    assert run_cli(["edit", "learn", "organism", *SMALL, "--qk-heads", "2.3", "--out", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    (run,) = (tmp_path / "edit-learn").iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "ok"
    lines = (run / "front.jsonl").read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["l1=0.5_lm=0", "l1=0.5_lm=5"]
    assert "Learned edits: held-out Laundry List gain" in out and "best with LM loss up < 2%" in out
    # all points done: nothing relearned (other flags are ignored on resume: the saved config is used)
    assert run_cli(["edit", "learn", "organism", "--steps", "3", "--resume", str(run)]) == 0
    assert (run / "front.jsonl").read_text().splitlines() == lines
    spec = run / "specs" / json.loads(lines[0])["spec"]
    assert (
        run_cli(["edit", "apply", "organism", str(spec), "--n-min", "2", "--n-max", "3", "--per-n", "2"]) == 0
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "LM loss" in out and " QK]" in out  # the movers' QK components are in the spec


@pytest.mark.pack
def test_spec_learned_on_another_model_is_refused(tmp_path):
    from analysis.edits_learned import ComponentScales
    from probes.organism import load_organism

    cs = ComponentScales(load_organism(), [(2, 1, 0)])
    spec = cs.to_spec(cs.ones().detach() * 2, 0.02).save(tmp_path / "learned.json")
    r = sublens("edit", "apply", "smollm2-135m-instruct", str(spec))
    assert r.returncode == 2 and "d_model=40" in r.stderr and "Traceback" not in r.stderr
