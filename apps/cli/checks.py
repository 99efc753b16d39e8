"""Argument checks shared by the CLI commands: run before any model is loaded, and name the flag typed.

Every helper raises :class:`probes.errors.InputError` with the flag, the bad value and the fix, e.g.
``--ioi-prompts -3 must be >= 0``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import typer

from probes.config import ConfigError
from probes.errors import InputError


def at_least(value: int | float | None, minimum: int | float, flag: str, why: str = "") -> None:
    """``value >= minimum`` (None passes: the option was left at its default)."""
    if value is not None and value < minimum:
        raise InputError(f"{flag} {value} must be >= {minimum}{f' ({why})' if why else ''}.")


def between(value: float | None, low: float, high: float, flag: str, why: str = "") -> None:
    """``low < value < high`` (open interval; None passes)."""
    if value is not None and not low < value < high:
        raise InputError(
            f"{flag} {value} must be between {low} and {high} (exclusive){f'; {why}' if why else ''}."
        )


def one_of(value: str, allowed: Sequence[str], flag: str) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise InputError(f"{flag} {value!r} is not one of: {', '.join(allowed)}.")
    return value


def modes(value: str, flag: str = "--modes") -> str:
    """Composition modes: non-empty letters from QKV (any case), returned upper-case."""
    up = value.upper()
    if not up or not set(up) <= set("QKV"):
        raise InputError(f"{flag} {value!r} must be letters from Q, K, V (e.g. QKV or Q).")
    return up


def items(value: str, flag: str) -> list[str]:
    """A non-empty comma-separated list."""
    out = [v.strip() for v in value.split(",") if v.strip()]
    if not out:
        raise InputError(f"{flag} is empty; give a comma-separated list.")
    return out


def floats(value: str, flag: str, example: str = "0,0.5,2,3") -> tuple[float, ...]:
    """Comma-separated finite numbers."""
    parts = items(value, flag)
    try:
        out = tuple(float(x) for x in parts)
    except ValueError:
        raise InputError(
            f"{flag} must be comma-separated numbers such as {example}; got {value!r}."
        ) from None
    if any(x != x or x in (float("inf"), float("-inf")) for x in out):
        raise InputError(f"{flag} must be finite numbers, got {value!r}.")
    return out


def list_lengths(n_min: int, n_max: int, min_flag: str, max_flag: str) -> tuple[int, ...]:
    """``n_min..n_max`` for Laundry List list lengths (``2 <= n_min <= n_max``)."""
    if n_min < 2:
        raise InputError(f"{min_flag} {n_min} must be >= 2 (one item is left out of the re-mention).")
    if n_max < n_min:
        raise InputError(f"{max_flag} {n_max} must be >= {min_flag} {n_min}.")
    return tuple(range(n_min, n_max + 1))


def check_list_vocab(tokenizer, ns: Sequence[int], split: str, max_flag: str) -> None:
    """The ``split`` item vocabulary of this tokenizer must hold the largest list length."""
    from analysis.tasks.laundry import laundry_item_splits

    available = len(laundry_item_splits(tokenizer)[split])
    if max(ns) > available:
        raise InputError(
            f"{max_flag} {max(ns)} is too large: this model's {split!r} vocabulary has {available} "
            f"single-token items, so list lengths go up to {available}; lower {max_flag}."
        )


def input_file(path: str, flag: str, what: str) -> Path:
    """An existing, non-empty regular file."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{flag} {path} is a folder; pass the {what} file itself.")
    if not p.is_file():
        raise InputError(f"{flag} {path} does not exist; pass an existing {what} file.")
    if p.stat().st_size == 0:
        raise InputError(f"{flag} {path} is empty; pass a {what} file with content.")
    return p


def input_folder(path: str, flag: str, what: str) -> Path:
    """An existing folder."""
    p = Path(path)
    if p.is_file():
        raise InputError(f"{flag} {path} is a file; pass the {what} folder.")
    if not p.is_dir():
        raise InputError(f"{flag} {path} does not exist; pass an existing {what} folder.")
    return p


def resume_config(resume: str, config_cls, command: str):
    """``(run_dir, config)`` of ``--resume RUN``: the folder and its saved ``config.json`` parsed as
    ``config_cls`` (a :class:`probes.config.Config`), for a run of ``command`` (e.g. ``'edit search'``)."""
    import json

    run_dir = input_folder(resume, "--resume", f"'{command}' run")
    cfg_file = run_dir / "config.json"
    if not cfg_file.is_file():
        raise InputError(f"--resume {resume}: no config.json there; pass a run directory of '{command}'.")
    try:
        return run_dir, config_cls.parse(json.loads(cfg_file.read_text())["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"--resume {resume}: config.json is unreadable ({err}); start a new run.") from None


def _flag(key: str) -> str:
    return "--" + key.split(".")[0].replace("_", "-")


@contextlib.contextmanager
def as_flags(keys: dict[str, str] | None = None) -> Iterator[None]:
    """Re-raise a config error naming the CLI flags (``n_null`` → ``--n-null``, or ``keys[name]``)."""
    try:
        yield
    except ConfigError as err:
        keys = keys or {}
        parts = [f"{keys.get(k, _flag(k)) if k else ''} {m}".strip() for k, m in err.problems]
        raise InputError("; ".join(_plain(p) for p in parts)) from None


def _plain(message: str) -> str:
    """Pydantic's wording, shorter: 'Input should be greater than or equal to 2' → 'must be >= 2'."""
    message = re.sub(r"Input should be greater than or equal to", "must be >=", message)
    message = re.sub(r"Input should be greater than", "must be >", message)
    return re.sub(r"Input should be", "must be", message)


RAY_OPTION = typer.Option(
    None,
    "--ray",
    help="run on Ray: 'local' (a private cluster on this machine), 'auto' or HOST:PORT / ray://HOST:PORT "
    "(join a running cluster; Ray runs submitted code: keep it on localhost or a private network)",
)
WORKERS_OPTION = typer.Option(2, "--workers", help="Ray workers, each loading the model once (with --ray)")


def ray_config(ray: str | None, workers: int):
    """``--ray`` / ``--workers`` as a :class:`probes.scaleout.RayConfig`; None without ``--ray``."""
    if ray is None:
        return None
    at_least(workers, 1, "--workers")
    try:
        import ray as _  # noqa: F401
    except ImportError:
        raise InputError("--ray needs Ray: pip install -e '.[scale]' (or make setup).") from None
    from probes.scaleout import RayConfig, check_reachable

    if ray != "local":
        check_reachable(ray)  # a wrong address fails here, before a run folder or a model
    return RayConfig(address=None if ray == "local" else ray, workers=workers)
