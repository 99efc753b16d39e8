"""``--items FILE`` / ``--templates FILE``: the options and their checks, shared by ``laundry`` and ``edit``.

File problems (missing, empty, duplicates, a template without ``{items}``/``{rest}``, a list length
larger than a half of your items) are refused before any model loads; items that are not one token
are refused right after the tokenizer is there, before any compute. Every message names the flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

ITEMS_OPTION = typer.Option(
    None,
    "--items",
    help="your items: a text file, one single-token item per line (split into dev/test halves)",
)
TEMPLATES_OPTION = typer.Option(
    None, "--templates", help="your templates: a text file, one per line with {items} and {rest}"
)


def read_templates(path: str | None) -> tuple[str, ...]:
    """The ``--templates`` file's templates; () without the flag."""
    if path is None:
        return ()
    from analysis.tasks.sources import read_templates_file

    return tuple(read_templates_file(path, "--templates"))


def read_items(path: str | None, lengths: dict[str, tuple[Sequence[int], str]]) -> tuple[str, ...]:
    """The ``--items`` file's items, each half long enough for its list lengths (``{split: (ns, flag)}``);
    () without the flag."""
    if path is None:
        return ()
    from analysis.tasks.sources import check_item_lengths, read_items_file

    items = read_items_file(path, "--items")
    check_item_lengths(items, lengths, path)
    return tuple(items)


def check_tokens(items: Sequence[str], path: str | None, tokenizer) -> None:
    """Once the model is loaded: every ``--items`` item must be one token for its tokenizer."""
    if items:
        from analysis.tasks.sources import check_item_tokens

        check_item_tokens(list(items), tokenizer, path, "--items")
