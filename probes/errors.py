"""One exception family for subspace-lens.

Every message names the bad value, what is allowed, and the fix. The CLI prints these without a
traceback and exits with code 2.
"""

from __future__ import annotations


class SubspaceLensError(Exception):
    """Base class: a problem the user can fix (bad input, missing pack, corrupt file)."""


class UnknownModelError(SubspaceLensError, ValueError):
    """The model name is neither a packaged model, a local path, nor a hub id."""


class PackError(SubspaceLensError):
    """A model pack could not be fetched, assembled or verified."""


class PackNotFetchedError(PackError):
    """The pack is known but not in the cache, and fetching was not allowed."""


class PackHashMismatchError(PackError):
    """An assembled pack's SHA-256 differs from the one the project pins."""


class InputError(SubspaceLensError, ValueError):
    """Bad arguments: empty prompt lists, layers or heads out of range, wrong shapes, NaNs."""


class CacheCorruptError(SubspaceLensError):
    """A cache file is unreadable or does not match its recorded checksum (it is recomputed)."""


def check_index(value: int, size: int, what: str) -> int:
    """Return ``value`` if ``0 <= value < size`` (negative values count from the end), else raise.

    >>> check_index(-1, 30, "layer")
    29
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"{what} must be an integer, got {value!r}")
    v = value + size if value < 0 else value
    if not 0 <= v < size:
        raise InputError(f"{what} {value} is out of range: this model has {size} ({what}s 0..{size - 1}).")
    return v
