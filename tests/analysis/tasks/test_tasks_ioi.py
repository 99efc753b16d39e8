"""IOI generator: ABBA/BABA structure, single-token names, determinism and errors."""

import re

import pytest

from analysis.tasks.common import ToyTokenizer, encode, single_token_words
from analysis.tasks.ioi import DEFAULT_NAMES, IOI_COLUMNS, IOI_TEMPLATES, ioi_names, ioi_prompts
from probes.errors import InputError

WORD = re.compile(r"[A-Za-z]+")


@pytest.fixture(scope="module")
def tok():
    return ToyTokenizer(DEFAULT_NAMES[:30])  # the other 20 default names are multi-token here


@pytest.fixture(scope="module")
def df(tok):
    return ioi_prompts(tok, n_prompts=60, seed=0)


def test_columns_and_balance(df):
    assert list(df.columns) == IOI_COLUMNS
    assert df["pattern"].value_counts().to_dict() == {"ABBA": 30, "BABA": 30}
    assert set(df["template"]) == set(range(len(IOI_TEMPLATES)))


def test_abba_baba_structure(df, tok):
    for row in df.itertuples():
        words = WORD.findall(row.prompt)
        names = [w for w in words if w in (row.answer, row.distractor)]
        io, s = row.answer, row.distractor
        assert io != s
        assert names == ([io, s, s] if row.pattern == "ABBA" else [s, io, s])
        assert row.prompt.endswith(" to")
        assert encode(tok, row.prompt + " " + io) == encode(tok, row.prompt) + [row.answer_id]
        assert encode(tok, " " + s) == [row.distractor_id]


def test_names_filtered_to_single_tokens(tok, df):
    kept = set(ioi_names(tok))
    assert kept == set(DEFAULT_NAMES[:30]) == set(single_token_words(tok, DEFAULT_NAMES))
    assert set(df["answer"]) | set(df["distractor"]) <= kept


def test_deterministic_under_seed(tok, df):
    assert ioi_prompts(tok, n_prompts=60, seed=0).equals(df)
    assert not ioi_prompts(tok, n_prompts=60, seed=1)["prompt"].equals(df["prompt"])


def test_single_pattern_and_custom_names(tok):
    out = ioi_prompts(tok, n_prompts=5, patterns="BABA", names=["Mary", "John"])
    assert (out["pattern"] == "BABA").all()
    assert set(out["answer"]) | set(out["distractor"]) <= {"Mary", "John"}


def test_errors(tok):
    with pytest.raises(InputError, match="Zebediah"):
        ioi_prompts(tok, names=["Mary", "John", "Zebediah"])
    with pytest.raises(InputError, match="patterns"):
        ioi_prompts(tok, patterns=["ABAB"])
    with pytest.raises(InputError, match="n_prompts"):
        ioi_prompts(tok, n_prompts=0)
    with pytest.raises(InputError, match="template"):
        ioi_prompts(tok, templates=["{first} and {second} went home"])
    with pytest.raises(InputError, match="fewer than 2"):
        ioi_prompts(ToyTokenizer(["Mary"]))
