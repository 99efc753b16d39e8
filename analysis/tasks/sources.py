"""Your own Laundry List items and templates, read from text files (``--items FILE``, ``--templates FILE``).

* **Items file**: one item per line; blank lines and lines starting with ``#`` are skipped. Each item
  must be a single token (with a leading space) for the model's tokenizer, and distinct.
* **Templates file**: one template per line (blank and ``#`` lines skipped), each with the
  placeholders ``{items}`` (the list) and ``{rest}`` (the re-mention) and no other ``{...}`` field;
  the next token after the template must be the missing item (end it with e.g. "is the").

How the commands use them (see :func:`analysis.tasks.laundry.heldout_laundry_prompts`): your items
are split into dev/test halves like the built-in pool; your templates are the **evaluation** family,
while anything fitted (steering, edits) uses the built-in dev templates, so gains are measured on
templates the fit never saw.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path

from analysis.tasks.common import TokenizerLike, encode
from probes.errors import InputError

__all__ = ["check_item_lengths", "check_item_tokens", "read_items_file", "read_templates_file"]

MIN_ITEMS = 4  # two per dev/test half


def _read_lines(path: str | Path, flag: str, what: str) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the non-blank, non-comment lines; refuses a missing/empty file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{flag} {path}: no such file; give a text file with one {what} per line.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{flag} {path}: cannot read it as UTF-8 text ({exc}).") from exc
    lines = [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1)]
    lines = [(i, s) for i, s in lines if s and not s.startswith("#")]
    if not lines:
        raise InputError(f"{flag} {path}: the file is empty (no {what} lines); write one {what} per line.")
    return lines


def read_items_file(path: str | Path, flag: str = "--items") -> list[str]:
    """The items of ``path`` in file order; InputError naming ``flag`` and the file on any problem.

    Refuses a missing or empty file, duplicates and fewer than 4 items (they are split into dev/test
    halves). Needs no tokenizer, so the CLI runs it before a model loads; :func:`check_item_tokens`
    checks the tokens once the tokenizer is there.
    """
    items = [s for _, s in _read_lines(path, flag, "item")]
    seen, dupes = set(), []
    for item in items:
        if item in seen and item not in dupes:
            dupes.append(item)
        seen.add(item)
    if dupes:
        raise InputError(f"{flag} {path}: duplicate items {dupes}; list each item once.")
    if len(items) < MIN_ITEMS:
        raise InputError(
            f"{flag} {path}: {len(items)} item(s); need at least {MIN_ITEMS} (they are split into dev and "
            "test halves, and a list needs 2 items)."
        )
    return items


def check_item_tokens(
    items: list[str], tokenizer: TokenizerLike, path: str | Path, flag: str = "--items"
) -> None:
    """InputError naming every item of ``items`` (read from ``path``) that is not one token (with a
    leading space) for ``tokenizer``."""
    unk = getattr(tokenizer, "unk_token_id", None)
    bad = []
    for item in items:
        toks = encode(tokenizer, " " + item)
        if len(toks) != 1 or toks[0] == unk:
            bad.append(f"{item!r} ({'unknown token' if toks == [unk] else f'{len(toks)} tokens'})")
    if bad:
        raise InputError(
            f"{flag} {path}: these items are not single tokens (with a leading space) for this model's "
            f"tokenizer: {', '.join(bad)}; remove them or use other words."
        )


def check_item_lengths(
    items: list[str], lengths: dict[str, tuple[Sequence[int], str]], path: str | Path
) -> None:
    """Each half of ``items`` must hold its longest list: ``lengths`` maps ``"dev"``/``"test"`` to
    ``(list lengths, flag that sets the largest)``. The halves have ``len // 2`` (dev) and the rest
    (test) items, as :func:`analysis.tasks.laundry.laundry_item_splits` cuts them.

    >>> check_item_lengths(list("abcdefgh"), {"test": ((2, 5), "--n-max")}, "my.txt")
    Traceback (most recent call last):
    ...
    probes.errors.InputError: --n-max 5 is larger than the test half of --items my.txt: your 8 items are split into dev and test halves (4 / 4), so test lists hold at most 4 items; lower --n-max or add items.
    """
    sizes = {"dev": len(items) // 2, "test": len(items) - len(items) // 2}
    for split, (ns, flag) in lengths.items():
        if ns and max(ns) > sizes[split]:
            raise InputError(
                f"{flag} {max(ns)} is larger than the {split} half of --items {path}: your {len(items)} items "
                f"are split into dev and test halves ({sizes['dev']} / {sizes['test']}), so {split} lists hold "
                f"at most {sizes[split]} items; lower {flag} or add items."
            )


def _fields(template: str) -> list[str]:
    """The ``{...}`` field names of ``template`` (``{{``/``}}`` are literal braces)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def read_templates_file(path: str | Path, flag: str = "--templates") -> list[str]:
    """The templates of ``path`` (one a line); InputError naming ``flag``, the line and the problem."""
    templates = []
    for lineno, line in _read_lines(path, flag, "template"):
        try:
            fields = _fields(line)
        except ValueError as exc:
            raise InputError(
                f"{flag} {path}, line {lineno}: unbalanced braces ({exc}); write literal braces as {{{{ and }}}}."
            ) from exc
        missing = [f"{{{name}}}" for name in ("items", "rest") if name not in fields]
        if missing:
            raise InputError(
                f"{flag} {path}, line {lineno}: missing placeholder {' and '.join(missing)}; each template "
                "needs {items} (the list) and {rest} (the re-mention), e.g. "
                "'List: {items}. I already have the {rest}. I still need the'."
            )
        other = sorted({f for f in fields if f not in ("items", "rest")})
        if other:
            raise InputError(
                f"{flag} {path}, line {lineno}: unknown placeholder(s) {', '.join('{' + f + '}' for f in other)}; "
                "only {items} and {rest} are filled in."
            )
        templates.append(line)
    if len(set(templates)) != len(templates):
        dupes = sorted({t for t in templates if templates.count(t) > 1})
        raise InputError(f"{flag} {path}: duplicate templates {dupes}; list each once.")
    return templates
