"""A small held-out English text sample (original prose shipped with the package) for LM-loss checks."""

from __future__ import annotations

from importlib import resources

__all__ = ["heldout_texts"]


def heldout_texts() -> list[str]:
    """The paragraphs of ``analysis/tasks/data/heldout.txt`` (~1.3k words), one string each."""
    text = resources.files("analysis.tasks").joinpath("data/heldout.txt").read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]
