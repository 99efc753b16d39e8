"""Instruction sets for refusal probes: JSON / JSONL / CSV loaders and the shared refusal splits.

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
from pathlib import Path

from probes.errors import InputError

__all__ = [
    "DEMO_INSTRUCTIONS",
    "REFUSAL_SPLITS",
    "demo_instructions",
    "load_instructions",
    "load_records",
    "refusal_data_dir",
    "shared_refusal_split",
]

REFUSAL_SPLITS = ("harmful_train", "harmful_val", "harmless_train", "harmless_val")
_REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_INSTRUCTIONS = _REPO_ROOT / "analysis" / "refusal" / "data" / "demo_instructions.json"


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
                f"Unsupported instruction file type {suffix!r} ({path}); use .json, .jsonl or .csv."
            )
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"Cannot parse {str(path)!r}: {err}. Fix the file or pass another one.") from None
    if isinstance(rows, dict):  # {"data": [...]}-style wrappers
        lists = [v for v in rows.values() if isinstance(v, list)]
        rows = lists[0] if len(lists) == 1 else rows
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{str(path)!r} must hold a list of objects (rows), got {type(rows).__name__}.")
    return rows


def load_instructions(path: str | Path, column: str = "instruction", limit: int | None = None) -> list[str]:
    """The non-empty strings in ``column`` of a JSON / JSONL / CSV file (first ``limit`` if given)."""
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
    if limit is not None:
        if limit < 1:
            raise InputError(f"limit must be >= 1, got {limit}.")
        out = out[:limit]
    return out


_WORKPLACE_SHARED = Path("/work/shared")  # where this workplace keeps ../shared for any clone


def refusal_data_dir(root: str | Path | None = None) -> Path:
    """``root`` if given, else ``$SUBLENS_REFUSAL_DATA``, else ``../shared/data/refusal`` next to the repo
    root, else the workplace's ``/work/shared/data/refusal`` (a clone elsewhere still finds it)."""
    if root is not None:
        if not Path(root).is_dir():
            raise InputError(
                f"Refusal data folder {str(root)!r} does not exist; pass a folder with harmful_train.json etc."
            )
        return Path(root)
    env = os.environ.get("SUBLENS_REFUSAL_DATA")
    candidates = [Path(env)] if env else []
    candidates += [_REPO_ROOT.parent / "shared" / "data" / "refusal", _WORKPLACE_SHARED / "data" / "refusal"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise InputError(
        f"Refusal data not found at {', '.join(map(str, candidates))}; "
        "set SUBLENS_REFUSAL_DATA to a folder holding harmful_train.json etc."
    )


def shared_refusal_split(name: str, limit: int | None = None, root: str | Path | None = None) -> list[str]:
    """Instructions of one shared split: ``harmful_train``, ``harmful_val``, ``harmless_train``, ``harmless_val``.

    ``root`` overrides the folder (see :func:`refusal_data_dir`).
    """
    if name not in REFUSAL_SPLITS:
        raise InputError(f"Unknown refusal split {name!r}; choose one of {', '.join(REFUSAL_SPLITS)}.")
    return load_instructions(refusal_data_dir(root) / f"{name}.json", limit=limit)


def demo_instructions() -> tuple[list[str], list[str]]:
    """The project's small offline demo set: ``(harmful, harmless)`` instructions (mild requests)."""
    rows = load_records(DEMO_INSTRUCTIONS)
    harmful = [r["instruction"] for r in rows if r.get("label") == "harmful"]
    harmless = [r["instruction"] for r in rows if r.get("label") == "harmless"]
    return harmful, harmless
