"""Laundry List prompts: recall the one list item that was not mentioned again.

The paper's exact template is not verified (see the Talking Heads reference note), so this module
defines its own. **Template (ours):** a list of ``N`` distinct single-token items, then a
re-mention of all items but one, then a cue whose next token is the missing item::

    <intro>: <item_1>, <item_2>, ..., <item_{N-1}> and <item_N>. <done> the <the other N-1 items>. <cue> the

    "Laundry list: sock, towel and hat. I have already washed the hat and sock.
     The only thing I still need to wash is the"                               ->  " towel"

* Lists are written ``a and b`` (N = 2) or ``a, b, ..., y and z``; every item follows a space, so
  each item token is the word with a leading space, and the answer is ``" " + answer``.
* The re-mention lists the other ``N − 1`` items in a shuffled order (``shuffle_remention=True``,
  default) so that the answer cannot be found from list order alone.
* ``position`` is the answer's 0-based index in the first list; for each ``N`` the positions are
  balanced (prompt ``j`` uses position ``j mod N``).
* Templates are in :data:`LAUNDRY_TEMPLATES` (``{items}`` and ``{rest}`` placeholders), the default
  of :func:`laundry_list_prompts`. :data:`LAUNDRY_TEMPLATE_SPLITS` adds a second, disjoint family with
  other wording: ``dev`` (= :data:`LAUNDRY_TEMPLATES`) for anything fitted, ``test`` for held-out
  measurement. :func:`laundry_family_prompts` / :func:`heldout_laundry_prompts` pair dev items with
  dev templates and test items with test templates. With your own templates (``--templates FILE``),
  they replace the ``test`` family; fits keep the built-in ``dev`` family.
* Item vocabularies: :data:`DEFAULT_ITEMS` is split once, with a seed, into disjoint ``dev`` and
  ``test`` halves, *before* filtering to the tokenizer's single tokens, so the split does not
  depend on the model and the two vocabularies never share an item.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import pandas as pd

from analysis.tasks.common import (
    TokenizerLike,
    check_next_token,
    format_list,
    require_single_tokens,
    single_token_words,
)
from probes.errors import InputError

__all__ = [
    "DEFAULT_ITEMS",
    "LAUNDRY_COLUMNS",
    "LAUNDRY_TEMPLATES",
    "LAUNDRY_TEMPLATE_SPLITS",
    "SPLITS",
    "heldout_laundry_prompts",
    "laundry_family_prompts",
    "laundry_item_splits",
    "laundry_list_prompts",
]

SPLITS = ("dev", "test")

LAUNDRY_TEMPLATES: tuple[str, ...] = (
    "Laundry list: {items}. I have already washed the {rest}. The only thing I still need to wash is the",
    "Packing list: {items}. I have already packed the {rest}. The only thing I still need to pack is the",
    "Shopping list: {items}. I already bought the {rest}. The only thing I still need to buy is the",
    "On the table there were: {items}. I put away the {rest}. The only thing still on the table is the",
)

LAUNDRY_TEMPLATE_SPLITS: dict[str, tuple[str, ...]] = {
    "dev": LAUNDRY_TEMPLATES,
    "test": (
        "To-do list: fix the {items}. I have already fixed the {rest}. The one thing left to fix is the",
        "Gift list: {items}. The children have opened the {rest}. The only gift they have not opened yet is the",
        "Lost and found: {items}. The owners came back for the {rest}. Nobody has come back for the",
        "In the attic we found: {items}. We sold the {rest}. The only thing we kept is the",
    ),
}

DEFAULT_ITEMS: tuple[str, ...] = (
    "sock", "shirt", "hat", "towel", "coat", "scarf", "glove", "belt", "dress", "skirt",
    "jacket", "sweater", "blanket", "pillow", "sheet", "apron", "vest", "cap", "robe", "tie",
    "boot", "shoe", "cup", "plate", "bowl", "spoon", "fork", "knife", "mug", "pan",
    "pot", "jar", "bottle", "glass", "tray", "kettle", "lid", "napkin", "cloth", "sponge",
    "bucket", "basket", "bag", "mat", "rug", "curtain", "brush", "comb", "toy", "ball",
    "doll", "helmet", "wallet", "umbrella", "lamp", "vase", "candle", "mirror", "book", "pen",
    "phone", "watch", "ring", "camera", "radio", "clock", "box", "tent", "jug", "cushion",
)  # fmt: skip

LAUNDRY_COLUMNS = [
    "prompt", "answer", "answer_id", "items", "item_ids", "remention", "n_items", "position", "template", "split",
]  # fmt: skip


def laundry_item_splits(
    tokenizer: TokenizerLike, items: Sequence[str] | None = None, split_seed: int = 0
) -> dict[str, list[str]]:
    """Disjoint ``{"dev": [...], "test": [...]}`` item vocabularies, single tokens for ``tokenizer``.

    The pool (``items`` or :data:`DEFAULT_ITEMS`) is sorted, shuffled with ``split_seed`` and cut in
    half; then each half keeps the single-token items (default pool) or, for your own ``items``,
    every item must be a single token (else InputError naming the offenders).

    >>> from analysis.tasks.common import ToyTokenizer
    >>> splits = laundry_item_splits(ToyTokenizer(DEFAULT_ITEMS))
    >>> len(splits["dev"]), len(splits["test"]), set(splits["dev"]) & set(splits["test"])
    (35, 35, set())
    """
    if items is None:
        pool = sorted(DEFAULT_ITEMS)
    else:
        pool = sorted(require_single_tokens(tokenizer, list(items), "items"))
        if len(pool) < 4:
            raise InputError(f"need at least 4 items to split into dev and test (2 each), got {len(pool)}.")
    random.Random(split_seed).shuffle(pool)
    half = len(pool) // 2
    halves = {"dev": pool[:half], "test": pool[half:]}
    if items is None:
        halves = {k: single_token_words(tokenizer, v) for k, v in halves.items()}
    return halves


def _check_n(n_items: int | Iterable[int], available: int, split: str) -> list[int]:
    if isinstance(n_items, Iterable) and not isinstance(n_items, str):
        ns = list(n_items)
    else:
        ns = [n_items]
    if not ns:
        raise InputError(
            "no list lengths to evaluate (n_items is empty; on the CLI --n-min is above --n-max): give "
            "lengths such as 2 to 10 (--n-min 2 --n-max 10)."
        )
    for n in ns:
        if not isinstance(n, int) or isinstance(n, bool) or n < 2:
            raise InputError(
                f"list length N = {n!r} is too small: each N (--n-min/--n-max, n_items) must be an integer >= 2 "
                "(one item is left out of the re-mention); use --n-min 2 or more."
            )
        if n > available:
            raise InputError(
                f"list length N = {n} is out of range: the {split!r} vocabulary has only {available} single-token "
                f"items for this tokenizer (N = 2..{available}); use --n-max {available} or less (n_items), or "
                "pass more items (--items FILE)."
            )
    return ns


def laundry_list_prompts(
    tokenizer: TokenizerLike,
    n_items: int | Iterable[int] = range(2, 11),
    n_per_n: int = 40,
    split: str = "dev",
    seed: int = 0,
    templates: Sequence[str] | None = None,
    items: Sequence[str] | None = None,
    split_seed: int = 0,
    shuffle_remention: bool = True,
) -> pd.DataFrame:
    """Generate ``n_per_n`` Laundry List prompts for each list length ``N`` in ``n_items``.

    Items come from the ``split`` vocabulary of :func:`laundry_item_splits`. Returns a DataFrame with
    columns ``prompt, answer, answer_id, items (tuple, list order), item_ids (tuple), remention
    (tuple), n_items, position (answer's 0-based index in the list), template (index), split``.

    >>> from analysis.tasks.common import ToyTokenizer
    >>> df = laundry_list_prompts(ToyTokenizer(DEFAULT_ITEMS), n_items=3, n_per_n=3, seed=2)
    >>> df.prompt[0]
    'Shopping list: pen, napkin and apron. I already bought the apron and napkin. The only thing I still need to buy is the'
    >>> df[["answer", "position"]].values.tolist()
    [['pen', 0], ['shoe', 1], ['apron', 2]]
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {list(SPLITS)}, got {split!r}.")
    if not (isinstance(n_per_n, int) and n_per_n >= 1):
        raise InputError(
            f"prompts per list length (--per-n, n_per_n) must be a positive integer, got {n_per_n!r}; "
            "e.g. --per-n 40."
        )
    templates = list(LAUNDRY_TEMPLATES if templates is None else templates)
    bad = [t for t in templates if not isinstance(t, str) or "{items}" not in t or "{rest}" not in t]
    if not templates or bad:
        raise InputError(
            f"each Laundry List template needs {{items}} and {{rest}} placeholders; bad: {bad!r}."
        )
    vocab = laundry_item_splits(tokenizer, items, split_seed)[split]
    ns = _check_n(n_items, len(vocab), split)
    ids = require_single_tokens(tokenizer, vocab, "items")
    rng = random.Random(seed)
    rows = []
    for n in ns:
        for j in range(n_per_n):
            chosen = rng.sample(vocab, n)
            position = j % n
            answer = chosen[position]
            rest = [x for x in chosen if x != answer]
            if shuffle_remention:
                rng.shuffle(rest)
            t = rng.randrange(len(templates))
            prompt = templates[t].format(items=format_list(chosen), rest=format_list(rest))
            rows.append(
                (
                    prompt,
                    answer,
                    ids[answer],
                    tuple(chosen),
                    tuple(ids[x] for x in chosen),
                    tuple(rest),
                    n,
                    position,
                    t,
                    split,
                )
            )
    df = pd.DataFrame(rows, columns=LAUNDRY_COLUMNS)
    for prompt, answer, answer_id in df[["prompt", "answer", "answer_id"]].itertuples(index=False):
        check_next_token(tokenizer, prompt, answer, answer_id)
    return df


def laundry_family_prompts(
    tokenizer: TokenizerLike,
    split: str,
    n_items: int | Iterable[int] = range(2, 11),
    n_per_n: int = 40,
    seed: int = 0,
    items: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Prompts from the ``split`` items **and** the ``split`` template family.

    ``items`` (your pool) is split into dev/test halves as the default pool is. ``templates`` (yours)
    replace the ``test`` family only; ``split="dev"`` always uses the built-in dev templates, so a fit
    on dev prompts never sees the templates it is measured on.

    >>> from analysis.tasks.common import ToyTokenizer
    >>> tok = ToyTokenizer(DEFAULT_ITEMS)
    >>> laundry_family_prompts(tok, "test", n_items=2, n_per_n=1, seed=0).prompt[0][:10]
    'To-do list'
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {list(SPLITS)}, got {split!r}.")
    family = LAUNDRY_TEMPLATE_SPLITS[split] if templates is None or split == "dev" else templates
    return laundry_list_prompts(
        tokenizer, n_items=n_items, n_per_n=n_per_n, split=split, seed=seed, templates=family, items=items
    )


def heldout_laundry_prompts(
    tokenizer: TokenizerLike,
    n_items: int | Iterable[int] = range(2, 11),
    n_per_n: int = 40,
    seed: int = 0,
    items: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Held-out prompts: test items and the test template family (or your ``templates``)."""
    return laundry_family_prompts(tokenizer, "test", n_items, n_per_n, seed, items, templates)
