"""Instruction sets for refusal probes (JSON / JSONL / CSV / plain-text loaders, the shared refusal splits, the
in-repo demo set) and where data outside the repository is looked for.

**Finding data** (:func:`locate_data`): an explicit argument (the flag or config key the user gave),
then an environment variable, then the documented default: ``shared/<path>`` in the folder beside the
repository (``../shared``) or beside one of its parent folders, nearest first. The refusal splits then
fall back to the small in-repo demo set (:data:`DEMO_INSTRUCTIONS`, with a warning); data with no demo
stand-in raises an error that names all three places.

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
>>> _ = p.write_text(json.dumps([{"instruction": "Say hi"}, {"instruction": "Name a colour"}]))
>>> load_instructions(p)
['Say hi', 'Name a colour']
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path

from probes.errors import InputError

__all__ = [
    "DEMO_INSTRUCTIONS",
    "REFUSAL_SPLITS",
    "demo_instructions",
    "load_instructions",
    "load_prompt_lines",
    "load_records",
    "locate_data",
    "refusal_data_dir",
    "shared_refusal_split",
]

REFUSAL_SPLITS = ("harmful_train", "harmful_val", "harmless_train", "harmless_val")
REFUSAL_DATA_ENV = "SUBLENS_REFUSAL_DATA"
DEMO_INSTRUCTIONS = Path(__file__).parent / "data" / "demo_instructions.json"  # 30 harmful + 30 harmless
_REPO_ROOT = Path(__file__).resolve().parent.parent
_DEMO_TRAIN = 20  # demo instructions per class in the *_train stand-ins; the rest are *_val


def load_records(path: str | Path) -> list[dict]:
    """Rows of a ``.json`` (list of objects), ``.jsonl`` (one object a line) or ``.csv`` (header row) file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"Instruction file {str(path)!r} does not exist; pass the path of a JSON/JSONL/CSV file."
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
        elif suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
        elif suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        else:
            raise InputError(
                f"Unsupported instruction file type {suffix!r} ({path}); use .json, .jsonl, .csv or .txt "
                "(one prompt per line)."
            )
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"Cannot parse {str(path)!r}: {err}. Fix the file or pass another one.") from None
    if isinstance(rows, dict):  # {"data": [...]}-style wrappers
        lists = [v for v in rows.values() if isinstance(v, list)]
        rows = lists[0] if len(lists) == 1 else rows
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{str(path)!r} must hold a list of objects (rows), got {type(rows).__name__}.")
    return rows


def load_prompt_lines(path: str | Path) -> list[str]:
    """Prompts of a plain-text file: one per line, stripped; blank lines and ``#`` comment lines skipped.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "prompts.txt"
    >>> _ = p.write_text("# my prompts\\nSay hi\\n\\n  Name a colour  \\n")
    >>> load_prompt_lines(p)
    ['Say hi', 'Name a colour']
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"prompts file {str(p)!r} does not exist; pass a text file with one prompt per line."
        )
    try:
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise InputError(f"prompts file {str(p)!r} is not UTF-8 text ({err}); save it as UTF-8.") from None
    prompts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise InputError(f"prompts file {str(p)!r} holds no prompts; write one prompt per line.")
    return prompts


def load_instructions(path: str | Path, column: str = "instruction", limit: int | None = None) -> list[str]:
    """The non-empty strings in ``column`` of a JSON / JSONL / CSV file, or the lines of a ``.txt`` file
    (one prompt per line, :func:`load_prompt_lines`; ``column`` is not used); first ``limit`` if given."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive integer, got {limit!r}.")
    if Path(path).suffix.lower() == ".txt":
        out = load_prompt_lines(path)
        return out[:limit] if limit is not None else out
    rows = load_records(path)
    if not rows:
        raise InputError(f"Instruction file {str(path)!r} is empty; it needs at least one row.")
    if not any(column in r for r in rows):
        raise InputError(
            f"Column {column!r} not found in {str(path)!r}; columns there: {', '.join(sorted(rows[0]))}. "
            "Pass column=<name>."
        )
    out = [str(r[column]).strip() for r in rows if r.get(column) is not None and str(r[column]).strip()]
    if not out:
        raise InputError(f"Column {column!r} of {str(path)!r} holds no non-empty instruction.")
    return out[:limit] if limit is not None else out


def _shared_candidates(relative: str | Path) -> list[Path]:
    return [folder / "shared" / relative for folder in _REPO_ROOT.parents]


def locate_data(explicit: str | Path | None, env_var: str, relative: str | Path, what: str) -> Path | None:
    """Where ``what`` lives: ``explicit`` (must exist), else ``$env_var`` (must exist), else the nearest
    ``shared/<relative>`` beside the repository or one of its parents; None when there is none.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> locate_data(d, "SUBLENS_NO_SUCH_VAR", "data/refusal", "refusal data") == Path(d)
    True
    """
    for value, source in ((explicit, "the path given"), (os.environ.get(env_var), f"${env_var}")):
        if value:
            if not Path(value).exists():
                raise InputError(f"{what}: {source} ({str(value)!r}) does not exist; fix the path.")
            return Path(value)
    return next((p for p in _shared_candidates(relative) if p.exists()), None)


def where_looked(env_var: str, relative: str | Path) -> str:
    """The search order of :func:`locate_data`, for error messages."""
    return (
        f"looked at: an explicit path, ${env_var}, and shared/{relative} beside the repository "
        f"({_REPO_ROOT.parent}) or a folder above it"
    )


def refusal_data_dir(root: str | Path | None = None) -> Path | None:
    """The folder of the refusal splits (``harmful_train.json`` etc.; see :func:`locate_data`), or None
    when only the in-repo demo set is available."""
    return locate_data(root, REFUSAL_DATA_ENV, "data/refusal", "Refusal data folder")


def shared_refusal_split(name: str, limit: int | None = None, root: str | Path | None = None) -> list[str]:
    """Instructions of one split: ``harmful_train``, ``harmful_val``, ``harmless_train``, ``harmless_val``.

    ``root`` overrides the folder (see :func:`refusal_data_dir`). Without any folder the split comes
    from the in-repo demo set (first 20 instructions per class for ``*_train``, the last 10 for
    ``*_val``), with a warning: fine for a demo, too small for results.
    """
    if name not in REFUSAL_SPLITS:
        raise InputError(f"Unknown refusal split {name!r}; choose one of {', '.join(REFUSAL_SPLITS)}.")
    folder = refusal_data_dir(root)
    if folder is not None:
        return load_instructions(folder / f"{name}.json", limit=limit)
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}.")
    warnings.warn(
        f"Refusal data not found ({where_looked(REFUSAL_DATA_ENV, 'data/refusal')}); using the "
        f"60-instruction in-repo demo set for {name!r}. Set ${REFUSAL_DATA_ENV} for real results.",
        stacklevel=2,
    )
    harmful, harmless = demo_instructions()
    rows = harmful if name.startswith("harmful") else harmless
    rows = rows[:_DEMO_TRAIN] if name.endswith("train") else rows[_DEMO_TRAIN:]
    return rows[:limit] if limit is not None else rows


def demo_instructions() -> tuple[list[str], list[str]]:
    """The project's small offline demo set: ``(harmful, harmless)`` instructions (mild requests)."""
    rows = load_records(DEMO_INSTRUCTIONS)
    harmful = [r["instruction"] for r in rows if r.get("label") == "harmful"]
    harmless = [r["instruction"] for r in rows if r.get("label") == "harmless"]
    return harmful, harmless
