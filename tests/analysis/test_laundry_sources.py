"""Your own items/templates files and the held-out template family: parsing, refusals, disjointness."""

from __future__ import annotations

import re

import pytest

from analysis.tasks.common import ToyTokenizer, encode
from analysis.tasks.laundry import (
    DEFAULT_ITEMS,
    LAUNDRY_TEMPLATE_SPLITS,
    LAUNDRY_TEMPLATES,
    heldout_laundry_prompts,
    laundry_family_prompts,
    laundry_item_splits,
    laundry_list_prompts,
)
from analysis.tasks.sources import check_item_lengths, check_item_tokens, read_items_file, read_templates_file
from probes.errors import InputError

WORD = re.compile(r"[A-Za-z-]+")


@pytest.fixture
def tok():
    return ToyTokenizer(DEFAULT_ITEMS)


def write(tmp_path, text, name="f.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_items_file_skips_blanks_and_comments(tmp_path, tok):
    path = write(tmp_path, "# my items\nsock\n\n  hat  \ncup\n# done\nbowl\n")
    assert read_items_file(path) == ["sock", "hat", "cup", "bowl"]
    check_item_tokens(["sock", "hat", "cup", "bowl"], tok, path)  # all single tokens: no error


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("# only a comment\n\n", "empty"),
        ("sock\nhat\nsock\ncup\nhat\n", "duplicate items ['sock', 'hat']"),
        ("sock\nhat\ncup\n", "need at least 4"),
    ],
)
def test_items_file_refusals_name_flag_file_and_offenders(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_items_file(path, flag="--items")
    assert needle in str(err.value)
    assert str(err.value).startswith(f"--items {path}")


def test_multi_token_items_are_named(tmp_path, tok):
    path = write(tmp_path, "sock\nhat\nshirtless\ncup\nzebra\n")
    with pytest.raises(InputError) as err:
        check_item_tokens(read_items_file(path), tok, path, flag="--items")
    assert str(err.value).startswith(f"--items {path}")
    assert "'shirtless' (10 tokens), 'zebra' (6 tokens)" in str(err.value) and "'sock'" not in str(err.value)


def test_item_lengths_fit_each_half():
    items = [f"w{i}" for i in range(9)]  # dev 4, test 5
    check_item_lengths(items, {"dev": ((2, 4), "--dev-n-max"), "test": ((5,), "--n-max")}, "f.txt")
    with pytest.raises(
        InputError, match=r"--dev-n-max 5 is larger than the dev half of --items f.txt.*\(4 / 5\)"
    ):
        check_item_lengths(items, {"dev": ((5,), "--dev-n-max")}, "f.txt")


def test_missing_items_file(tmp_path):
    with pytest.raises(InputError, match=r"--items .*nope.txt: no such file"):
        read_items_file(tmp_path / "nope.txt")


def test_templates_file_ok(tmp_path):
    path = write(
        tmp_path,
        "# mine\nBox: {items}. Gone: the {rest}. Left is the\n\nA {{literal}} {items}; {rest}. It is the\n",
    )
    assert read_templates_file(path) == [
        "Box: {items}. Gone: the {rest}. Left is the",
        "A {{literal}} {items}; {rest}. It is the",
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Box: {items}. Left is the\n", "line 1: missing placeholder {rest}"),
        ("ok {items} {rest} the\nno placeholders at all\n", "line 2: missing placeholder {items} and {rest}"),
        ("{items} {rest} {who} the\n", "line 1: unknown placeholder(s) {who}"),
        ("{items} {rest the\n", "line 1: unbalanced braces"),
        ("\n\n", "empty"),
        ("{items} {rest} a\n{items} {rest} a\n", "duplicate templates"),
    ],
)
def test_templates_file_refusals(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_templates_file(path, flag="--templates")
    assert needle in str(err.value)
    assert str(err.value).startswith("--templates")


def test_template_families_are_disjoint_and_keep_the_default():
    assert LAUNDRY_TEMPLATE_SPLITS["dev"] == LAUNDRY_TEMPLATES
    dev, test = (set(LAUNDRY_TEMPLATE_SPLITS[k]) for k in ("dev", "test"))
    assert len(test) >= 3 and not dev & test
    # different wording: no test template shares its cue (text after {rest}) with a dev template
    cue = {t.split("{rest}")[1] for t in dev}
    assert not {t.split("{rest}")[1] for t in test} & cue
    words = {w.lower() for t in test for w in WORD.findall(t)}
    assert not words & set(DEFAULT_ITEMS)


def test_heldout_prompts_use_test_items_and_test_templates(tok):
    splits = laundry_item_splits(tok)
    held = heldout_laundry_prompts(tok, n_items=[2, 5], n_per_n=20, seed=1)
    fit = laundry_family_prompts(tok, "dev", n_items=[2, 5], n_per_n=20, seed=1)
    assert set(held["split"]) == {"test"} and set(fit["split"]) == {"dev"}
    assert {x for row in held["items"] for x in row} <= set(splits["test"])
    assert {x for row in fit["items"] for x in row} <= set(splits["dev"])
    for frame, family in ((held, "test"), (fit, "dev")):
        for row in frame.itertuples():
            template = LAUNDRY_TEMPLATE_SPLITS[family][row.template]
            assert row.prompt.startswith(template.split("{items}")[0])
            assert encode(tok, row.prompt + " " + row.answer) == encode(tok, row.prompt) + [row.answer_id]
    # the default generator is unchanged (golden tests depend on it)
    default = laundry_list_prompts(tok, n_items=3, n_per_n=3, seed=2)
    assert default.prompt[0].startswith("Shopping list: pen, napkin and apron.")


def test_user_templates_replace_only_the_test_family(tok):
    mine = ["Crate: {items}. Shipped the {rest}. Still here: the"]
    held = heldout_laundry_prompts(tok, n_items=3, n_per_n=4, templates=mine)
    fit = laundry_family_prompts(tok, "dev", n_items=3, n_per_n=4, templates=mine)
    assert all(p.startswith("Crate: ") for p in held["prompt"])
    assert not any(p.startswith("Crate: ") for p in fit["prompt"])


def test_user_items_are_split_into_disjoint_halves(tok):
    items = list(DEFAULT_ITEMS[:12])
    held = heldout_laundry_prompts(tok, n_items=3, n_per_n=6, items=items)
    fit = laundry_family_prompts(tok, "dev", n_items=3, n_per_n=6, items=items)
    test_items = {x for row in held["items"] for x in row}
    dev_items = {x for row in fit["items"] for x in row}
    assert test_items <= set(items) and dev_items <= set(items) and not test_items & dev_items


def test_n_larger_than_the_item_list_names_n_max_and_the_size(tok):
    items = list(DEFAULT_ITEMS[:8])  # 4 per half
    with pytest.raises(InputError) as err:
        heldout_laundry_prompts(tok, n_items=[2, 5], n_per_n=2, items=items)
    msg = str(err.value)
    assert "N = 5" in msg and "only 4 single-token items" in msg and "--n-max 4" in msg and "--items" in msg
