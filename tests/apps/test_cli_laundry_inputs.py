"""``--items FILE`` / ``--templates FILE`` on ``laundry eval``, ``edit search`` and ``edit apply``: bad files
exit 2 with a message naming the flag (in-process, :func:`apps.cli.main.run_cli`); good files are used."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from apps.cli.main import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

ITEMS = ["sock", "hat", "cup", "bowl", "pen", "lamp", "vase", "ring"]


def _file(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture
def spec(tmp_path):
    from probes.edits import EditSpec
    from probes.organism import load_organism

    return str(EditSpec.build(load_organism(), [(1, 0, 0, 2.0)]).save(tmp_path / "edit.json"))


def _commands(spec: str, out: str) -> dict[str, list[str]]:
    return {
        "laundry eval": ["laundry", "eval", "organism", "--per-n", "1", "--ioi-prompts", "0", "--out", out],
        "edit search": ["edit", "search", "organism", "--top-k", "0", "--heads", "1.0", "--out", out],
        "edit apply": ["edit", "apply", "organism", spec, "--per-n", "1"],
    }


CASES = [
    # (flag, file lines, largest test N, needle) — each refused before a model loads, except the token check
    ("--items", ["sock", "hat", "cup", "sock", "bowl"], 2, "duplicate items ['sock']"),
    ("--items", ["sock", "hat", "cup"], 2, "need at least 4"),
    ("--items", ITEMS, 5, "is larger than the test half"),
    ("--items", ["sock", "hat", "snowboard", "cup", "bowl", "teapot"], 2,
     "not single tokens (with a leading space) for this model's tokenizer: 'snowboard' (unknown token), "
     "'teapot' (unknown token)"),
    ("--templates", ["Box: {items}. Left is the"], 2, "missing placeholder {rest}"),
    ("--templates", ["no placeholders here"], 2, "missing placeholder {items} and {rest}"),
]  # fmt: skip


@pytest.mark.parametrize("command", ["laundry eval", "edit search", "edit apply"])
@pytest.mark.parametrize(("flag", "lines", "n_max", "needle"), CASES)
def test_bad_items_or_templates_exit_2_naming_the_flag(
    tmp_path, capsys, spec, command, flag, lines, n_max, needle
):
    argv = _commands(spec, str(tmp_path / "out"))[command] + [flag, _file(tmp_path, "f.txt", lines)]
    if command == "edit search":
        argv += ["--dev-n-min", "2", "--dev-n-max", "2", "--test-n-max", str(n_max)]
    else:
        argv += ["--n-max", str(n_max)]
    got = run_cli(argv)
    err = _norm(capsys.readouterr().err)
    assert got == 2, err
    assert flag in err and needle in err and "Traceback" not in err
    if "larger" in needle:
        max_flag = "--test-n-max" if command == "edit search" else "--n-max"
        assert f"{max_flag} 5 is larger" in err and "(4 / 4)" in err and "at most 4 items" in err


def test_empty_and_missing_files(tmp_path, capsys, spec):
    out = str(tmp_path / "out")
    for command, argv in _commands(spec, out).items():
        for flag in ("--items", "--templates"):
            assert run_cli([*argv, flag, str(tmp_path / "missing.txt")]) == 2, command
            assert f"{flag} " in (err := _norm(capsys.readouterr().err)) and "no such file" in err
            assert run_cli([*argv, flag, _file(tmp_path, "blank.txt", ["# nothing", ""])]) == 2
            assert "the file is empty" in _norm(capsys.readouterr().err)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))


def test_laundry_eval_uses_your_items_and_templates(tmp_path, capsys):
    items = _file(tmp_path, "items.txt", ["# mine", *ITEMS])
    templates = _file(
        tmp_path,
        "tpl.txt",
        ["Laundry list: {items}. I have already washed the {rest}. The only thing is the"],
    )
    out = tmp_path / "out"
    argv = [
        "laundry",
        "eval",
        "organism",
        "--n-max",
        "4",
        "--per-n",
        "8",
        "--ioi-prompts",
        "0",
        "--out",
        str(out),
    ]
    assert run_cli([*argv, "--items", items, "--templates", templates]) == 0, capsys.readouterr().err
    (run,) = out.glob("laundry-eval/*")
    scored = pd.read_parquet(run / "laundry_scored.parquet")
    assert len(scored) == 3 * 8
    assert all(
        p.startswith("Laundry list: ") and p.endswith("The only thing is the") for p in scored["prompt"]
    )
    used = {x for row in scored["items"] for x in re.findall(r"[a-z]+", row)}
    assert used <= set(ITEMS) and len(used) == 4  # the test half of your 8 items
