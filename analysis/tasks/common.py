"""Tokenizer helpers shared by the task generators (any object with ``encode(text, add_special_tokens=False)``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from probes.errors import InputError

__all__ = [
    "TokenizerLike",
    "ToyTokenizer",
    "check_next_token",
    "encode",
    "format_list",
    "require_single_tokens",
    "single_token_id",
    "single_token_words",
]


class TokenizerLike(Protocol):
    """What the generators need: a HF tokenizer or anything with the same ``encode``."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> Any: ...


def encode(tokenizer: TokenizerLike, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens, as a list of ints (tensors/arrays are flattened)."""
    if not callable(getattr(tokenizer, "encode", None)):
        raise InputError(
            f"tokenizer must have encode(text, add_special_tokens=False) (e.g. a Hugging Face tokenizer), "
            f"got {type(tokenizer).__name__}."
        )
    ids = tokenizer.encode(text, add_special_tokens=False)
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    ids = list(ids)
    if len(ids) == 1 and isinstance(ids[0], list):
        ids = ids[0]
    return [int(i) for i in ids]


def _unk_id(tokenizer: TokenizerLike) -> int | None:
    unk = getattr(tokenizer, "unk_token_id", None)
    return unk if isinstance(unk, int) else None


def single_token_id(tokenizer: TokenizerLike, word: str, prefix: str = " ") -> int | None:
    """The id of ``prefix + word`` if it is exactly one known token (not the tokenizer's unk), else ``None``."""
    ids = encode(tokenizer, prefix + word)
    return ids[0] if len(ids) == 1 and ids[0] != _unk_id(tokenizer) else None


def single_token_words(tokenizer: TokenizerLike, words: Iterable[str], prefix: str = " ") -> list[str]:
    """The words (in order, duplicates dropped) that are one token with ``prefix`` (a leading space by default)."""
    return [w for w in dict.fromkeys(words) if single_token_id(tokenizer, w, prefix) is not None]


def require_single_tokens(
    tokenizer: TokenizerLike, words: Sequence[str], what: str, prefix: str = " "
) -> dict[str, int]:
    """Map each word to its single token id, or raise InputError naming every word that is not one token."""
    if isinstance(words, str) or not all(isinstance(w, str) and w.strip() == w and w for w in words):
        raise InputError(
            f"{what} must be a list of non-empty words without surrounding spaces, got {words!r}."
        )
    if len(set(words)) != len(words):
        dupes = sorted({w for w in words if list(words).count(w) > 1})
        raise InputError(f"{what} contain duplicates {dupes}; each must be distinct.")
    ids, bad = {}, []
    unk = _unk_id(tokenizer)
    for w in words:
        toks = encode(tokenizer, prefix + w)
        if len(toks) == 1 and toks[0] != unk:
            ids[w] = toks[0]
        else:
            bad.append(f"{w!r} ({'unknown token' if toks == [unk] else f'{len(toks)} tokens'})")
    if bad:
        raise InputError(
            f"these {what} are not single tokens (with a leading space) for this tokenizer: {', '.join(bad)}; "
            "remove them or pick other words."
        )
    return ids


def format_list(words: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``.

    >>> format_list(["sock", "shirt", "hat"])
    'sock, shirt and hat'
    """
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def check_next_token(tokenizer: TokenizerLike, prompt: str, word: str, token_id: int) -> None:
    """Raise InputError unless ``prompt + " " + word`` tokenizes as ``prompt``'s tokens plus ``token_id``."""
    base = encode(tokenizer, prompt)
    full = encode(tokenizer, prompt + " " + word)
    if full != base + [token_id]:
        raise InputError(
            f"{word!r} does not tokenize as a single next token after the prompt {prompt[-40:]!r} "
            "with this tokenizer; use other words or templates."
        )


class ToyTokenizer:
    """A deterministic word-level tokenizer for examples and tests (not a real model's tokenizer).

    Pieces are words with their leading space (GPT-2 style) or single punctuation marks. A word in
    ``vocab`` is one token (``" sock"`` and ``"sock"`` get distinct ids below ``2 * len(vocab)``); any
    other piece is spelled out one character per token (ids ``100000 + ord(c)``).

    >>> tok = ToyTokenizer(["sock", "hat"])
    >>> tok.encode(" sock", add_special_tokens=False), len(tok.encode(" shirt", add_special_tokens=False))
    ([1], 6)
    """

    _PIECE = re.compile(r" ?[A-Za-z0-9'-]+| ?[^\sA-Za-z0-9'-]|\s+")

    def __init__(self, vocab: Iterable[str]):
        self.vocab = list(dict.fromkeys(vocab))
        self._ids: dict[str, int] = {}
        for i, w in enumerate(self.vocab):
            self._ids[w] = 2 * i
            self._ids[" " + w] = 2 * i + 1

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids: list[int] = []
        for piece in self._PIECE.findall(text):
            if piece in self._ids:
                ids.append(self._ids[piece])
            else:
                ids.extend(100000 + ord(c) for c in piece)
        return ids
