"""Indirect-object-identification (IOI) prompts for any tokenizer.

A prompt introduces two names and repeats one of them, the subject S; the model should complete
with the other, the indirect object IO (Wang et al. 2022)::

    When Mary and John went to the store, John gave a drink to   ->  " Mary"

``ABBA``: the first name is IO (``IO S ... S``); ``BABA``: the first name is S (``S IO ... S``).
Names are filtered to those that are a single token *with a leading space* for the given
tokenizer, and every answer and distractor is checked to be exactly the next token after its
prompt. The templates are our own wording in the style of Wang et al.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pandas as pd

from analysis.tasks.common import (
    TokenizerLike,
    check_next_token,
    require_single_tokens,
    single_token_words,
)
from probes.errors import InputError

__all__ = ["DEFAULT_NAMES", "IOI_COLUMNS", "IOI_TEMPLATES", "PATTERNS", "ioi_names", "ioi_prompts"]

PATTERNS = ("ABBA", "BABA")

IOI_TEMPLATES: tuple[str, ...] = (
    "When {first} and {second} went to the {place}, {subject} gave a {obj} to",
    "Then, {first} and {second} had a long day at the {place}. {subject} handed a {obj} to",
    "After {first} and {second} arrived at the {place}, {subject} passed the {obj} to",
    "While {first} and {second} were working at the {place}, {subject} decided to give a {obj} to",
    "Yesterday {first} and {second} met at the {place}. Afterwards, {subject} sent a {obj} to",
)

PLACES = (
    "store",
    "park",
    "school",
    "office",
    "restaurant",
    "station",
    "hospital",
    "garden",
    "library",
    "beach",
)
OBJECTS = ("drink", "book", "ring", "letter", "gift", "key", "bag", "ticket", "card", "flower")

DEFAULT_NAMES: tuple[str, ...] = (
    "Mary", "John", "Alice", "Bob", "James", "Sarah", "David", "Emma", "Michael", "Anna",
    "Daniel", "Laura", "Paul", "Rachel", "Mark", "Lisa", "Peter", "Kate", "Thomas", "Jessica",
    "Andrew", "Emily", "Steven", "Amy", "Robert", "Helen", "Kevin", "Julia", "Brian", "Susan",
    "Jason", "Karen", "Eric", "Linda", "Ryan", "Anne", "Adam", "Grace", "Jack", "Rose",
    "George", "Sophie", "Frank", "Jane", "Henry", "Claire", "Sam", "Lucy", "Tom", "Chris",
)  # fmt: skip

IOI_COLUMNS = ["prompt", "answer", "distractor", "answer_id", "distractor_id", "pattern", "template"]


def ioi_names(tokenizer: TokenizerLike, names: Sequence[str] | None = None) -> dict[str, int]:
    """Single-token names and their ids (leading space). Default pool: filtered; your ``names``: all must pass."""
    if names is None:
        kept = single_token_words(tokenizer, DEFAULT_NAMES)
        if len(kept) < 2:
            raise InputError(
                "fewer than 2 of the default IOI names are single tokens for this tokenizer; pass names=[...]."
            )
        return require_single_tokens(tokenizer, kept, "names")
    return require_single_tokens(tokenizer, list(names), "names")


def ioi_prompts(
    tokenizer: TokenizerLike,
    n_prompts: int = 100,
    patterns: Sequence[str] = PATTERNS,
    templates: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Generate ``n_prompts`` IOI prompts, cycling through ``patterns`` (balanced ABBA/BABA).

    Returns a DataFrame with columns ``prompt, answer (IO), distractor (S), answer_id, distractor_id,
    pattern, template`` (template index). The prompt ends before the answer; the answer token is
    ``" " + answer``. Templates use ``{first} {second} {subject} {place} {obj}``.

    >>> from analysis.tasks.common import ToyTokenizer
    >>> tok = ToyTokenizer(["Mary", "John", "Alice"])
    >>> df = ioi_prompts(tok, n_prompts=2, seed=1)
    >>> df[["pattern", "answer", "distractor"]].values.tolist()
    [['ABBA', 'Alice', 'Mary'], ['BABA', 'John', 'Alice']]
    >>> df.prompt[0]
    'Then, Alice and Mary had a long day at the restaurant. Mary handed a book to'
    """
    if not (isinstance(n_prompts, int) and n_prompts >= 1):
        raise InputError(
            f"the number of IOI prompts (--ioi-prompts, n_prompts) must be a positive integer, got "
            f"{n_prompts!r}; e.g. --ioi-prompts 100 (0 skips IOI on the CLI)."
        )
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    if not patterns or any(p not in PATTERNS for p in patterns):
        raise InputError(f"patterns must be a non-empty list drawn from {list(PATTERNS)}, got {patterns!r}.")
    templates = list(IOI_TEMPLATES if templates is None else templates)
    keys = ("{first}", "{second}", "{subject}")
    bad = [t for t in templates if not isinstance(t, str) or not all(k in t for k in keys)]
    if not templates or bad:
        raise InputError(
            f"each IOI template needs {{first}}, {{second}} and {{subject}} (optionally {{place}}, {{obj}}); bad: {bad!r}."
        )
    ids = ioi_names(tokenizer, names)
    pool = list(ids)
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        pattern = patterns[i % len(patterns)]
        t = rng.randrange(len(templates))
        io, s = rng.sample(pool, 2)
        first, second = (io, s) if pattern == "ABBA" else (s, io)
        prompt = templates[t].format(
            first=first, second=second, subject=s, place=rng.choice(PLACES), obj=rng.choice(OBJECTS)
        )
        rows.append((prompt, io, s, ids[io], ids[s], pattern, t))
    df = pd.DataFrame(rows, columns=IOI_COLUMNS)
    for prompt, io, s, io_id, s_id in df[IOI_COLUMNS[:5]].itertuples(index=False):
        check_next_token(tokenizer, prompt, io, io_id)
        check_next_token(tokenizer, prompt, s, s_id)
    return df
