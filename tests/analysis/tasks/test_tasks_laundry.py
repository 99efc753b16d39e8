"""Laundry List generator: structure, answers never re-mentioned, disjoint splits, determinism, errors."""

import re

import pytest

from analysis.tasks.common import ToyTokenizer, encode, format_list
from analysis.tasks.laundry import (
    DEFAULT_ITEMS,
    LAUNDRY_COLUMNS,
    LAUNDRY_TEMPLATES,
    laundry_item_splits,
    laundry_list_prompts,
)
from probes.errors import InputError

WORD = re.compile(r"[A-Za-z'-]+")


@pytest.fixture(scope="module")
def tok():
    return ToyTokenizer(DEFAULT_ITEMS)


@pytest.fixture(scope="module")
def dev(tok):
    return laundry_list_prompts(tok, n_items=range(2, 11), n_per_n=20, split="dev", seed=0)


def test_columns_and_counts(dev):
    assert list(dev.columns) == LAUNDRY_COLUMNS
    assert dev.groupby("n_items").size().to_dict() == {n: 20 for n in range(2, 11)}
    assert set(dev["template"]) == set(range(len(LAUNDRY_TEMPLATES)))
    assert (dev["split"] == "dev").all()


def test_prompt_structure(dev, tok):
    for row in dev.itertuples():
        items, rest = list(row.items), list(row.remention)
        assert len(items) == row.n_items == len(set(items))
        assert items[row.position] == row.answer
        assert sorted(rest) == sorted(x for x in items if x != row.answer)
        template = LAUNDRY_TEMPLATES[row.template]
        assert row.prompt == template.format(items=format_list(items), rest=format_list(rest))
        tail = row.prompt.split(format_list(items), 1)[1]  # everything after the list
        tail_words = WORD.findall(tail)
        assert row.answer not in tail_words  # the answer is never re-mentioned
        assert all(x in tail_words for x in rest)
        assert row.item_ids == tuple(encode(tok, " " + x)[0] for x in items)
        assert encode(tok, row.prompt + " " + row.answer) == encode(tok, row.prompt) + [row.answer_id]


def test_template_words_are_not_items():
    words = {w.lower() for t in LAUNDRY_TEMPLATES for w in WORD.findall(t)}
    assert not words & set(DEFAULT_ITEMS)


def test_positions_are_balanced(dev):
    for n, group in dev.groupby("n_items"):
        counts = group["position"].value_counts()
        assert set(counts.index) == set(range(n))
        assert counts.max() - counts.min() <= 1


def test_splits_are_disjoint_fixed_and_used(tok, dev):
    splits = laundry_item_splits(tok)
    assert not set(splits["dev"]) & set(splits["test"])
    assert len(splits["dev"]) >= 10 and len(splits["test"]) >= 10
    assert laundry_item_splits(tok) == splits
    assert laundry_item_splits(tok, split_seed=1) != splits
    test = laundry_list_prompts(tok, n_items=range(2, 11), n_per_n=20, split="test", seed=0)
    dev_items = {x for items in dev["items"] for x in items}
    test_items = {x for items in test["items"] for x in items}
    assert dev_items <= set(splits["dev"]) and test_items <= set(splits["test"])
    assert not dev_items & test_items


def test_split_is_fixed_before_tokenizer_filtering():
    """A tokenizer that lacks some items only shrinks each half; it never moves items across the split."""
    full = laundry_item_splits(ToyTokenizer(DEFAULT_ITEMS))
    partial = laundry_item_splits(ToyTokenizer(DEFAULT_ITEMS[::2]))
    assert set(partial["dev"]) <= set(full["dev"]) and set(partial["test"]) <= set(full["test"])


def test_deterministic_under_seed(tok, dev):
    again = laundry_list_prompts(tok, n_items=range(2, 11), n_per_n=20, split="dev", seed=0)
    other = laundry_list_prompts(tok, n_items=range(2, 11), n_per_n=20, split="dev", seed=1)
    assert again.equals(dev)
    assert not other["prompt"].equals(dev["prompt"])


def test_unshuffled_remention_keeps_list_order(tok):
    df = laundry_list_prompts(tok, n_items=5, n_per_n=5, shuffle_remention=False)
    for row in df.itertuples():
        assert list(row.remention) == [x for x in row.items if x != row.answer]


def test_custom_items_and_templates(tok):
    items = ["sock", "shirt", "hat", "towel", "coat", "scarf"]
    df = laundry_list_prompts(
        tok, n_items=3, n_per_n=6, items=items, templates=["List: {items}. Got {rest}. Missing:"]
    )
    assert {x for it in df["items"] for x in it} <= set(laundry_item_splits(tok, items)["dev"])
    assert df["prompt"].str.startswith("List: ").all()


@pytest.mark.parametrize("n", [1, 0, -3, 2.0, True])
def test_bad_n_raises(tok, n):
    with pytest.raises(InputError, match="n_items"):
        laundry_list_prompts(tok, n_items=n)


def test_n_above_vocabulary_raises(tok):
    with pytest.raises(InputError, match="out of range"):
        laundry_list_prompts(tok, n_items=[2, 36])


def test_multi_token_items_are_named(tok):
    with pytest.raises(InputError, match="xylophone.*accordion|accordion.*xylophone"):
        laundry_list_prompts(tok, items=["sock", "xylophone", "hat", "towel", "accordion"], n_items=2)


def test_other_errors(tok):
    with pytest.raises(InputError, match="split"):
        laundry_list_prompts(tok, split="train")
    with pytest.raises(InputError, match="placeholders"):
        laundry_list_prompts(tok, templates=["no placeholders"])
    with pytest.raises(InputError, match="duplicates"):
        laundry_item_splits(tok, ["sock", "sock", "hat", "cap"])
    with pytest.raises(InputError, match="encode"):
        laundry_list_prompts(object())


def test_hf_tokenizer_unknown_words_are_not_single_tokens():
    """A word-level HF tokenizer maps unknown words to [UNK]: one id, but not a usable item."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    known = list(DEFAULT_ITEMS[:40])
    vocab = {w: i for i, w in enumerate(known)} | {"[UNK]": len(known)}
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]")
    splits = laundry_item_splits(hf)
    assert set(splits["dev"]) | set(splits["test"]) <= set(known)
    df = laundry_list_prompts(hf, n_items=[2, 5], n_per_n=4, split="test")
    assert len(df) == 8
    with pytest.raises(InputError, match="unknown token"):
        laundry_item_splits(hf, ["sock", "shirt", "hat", "towel", "xylophone"])
