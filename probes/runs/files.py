"""Run-folder files: the ``run.json`` sidecar (versions, model, pack hash, seed, config), atomic JSON and
parquet writes, and :class:`JsonlLog`, the append-only record log long jobs resume from.

Layout: ``runs/<command>/<timestamp>-<short-hash>/`` (root overridable with ``SUBLENS_RUNS``).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from probes.runs.lifecycle import Run


_ACTIVE: contextvars.ContextVar[Run | None] = contextvars.ContextVar("sublens_active_run", default=None)

_TRACKED = [
    "subspace-lens",
    "torch",
    "transformers",
    "transformer-lens",
    "nnsight",
    "gguf",
    "numpy",
    "pandas",
]


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that shape results (None where not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _TRACKED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _jsonable(config: Any) -> Any:
    if config is None:
        return None
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    if is_dataclass(config):
        return asdict(config)
    return config


def runs_root(root: str | Path | None = None) -> Path:
    """``root``, else ``$SUBLENS_RUNS``, else ``./runs``."""
    return Path(root or os.environ.get("SUBLENS_RUNS", "runs"))


def new_run_dir(command: str, config: Any = None, root: str | Path | None = None) -> Path:
    """Create ``<root>/<command>/<timestamp>-<hash of config>/`` and return it.

    Inside :func:`open_run` for the same ``command`` folder this returns the open run's folder, so
    library code that makes its own folder (e.g. ``analysis.alignment.write_run``) joins the run."""
    active = _ACTIVE.get()
    if active is not None and active.folder == command and (root is None or Path(root) == active.root):
        return active.dir
    root = runs_root(root)
    digest = hashlib.sha256(json.dumps(_jsonable(config), sort_keys=True, default=str).encode()).hexdigest()[
        :8
    ]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / command / f"{stamp}-{digest}"
    n = 1
    while path.exists():
        path = root / command / f"{stamp}-{digest}-{n}"
        n += 1
    path.mkdir(parents=True)
    return path


def write_sidecar(
    run_dir: str | Path,
    *,
    command: str,
    config: Any = None,
    model: str | None = None,
    pack_sha256: str | None = None,
    seed: int | None = None,
    status: str = "ok",
    started: float | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``run.json`` next to a run's results; returns its path."""
    now = time.time()
    record = {
        "command": command,
        "status": status,
        "model": model,
        "pack_sha256": pack_sha256,
        "seed": seed,
        "config": _jsonable(config),
        "versions": package_versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started or now)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)),
        **(extra or {}),
    }
    path = Path(run_dir) / "run.json"
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2, default=str)))
    return path


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` then rename onto ``path``; the temp file is removed when anything fails."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON atomically (a killed write leaves the old file or none)."""
    path = Path(path)
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n"))
    return path


def write_table(df: pd.DataFrame, path: str | Path, **parquet: Any) -> Path:
    """Write a DataFrame as parquet atomically (temp file + rename; no temp file is left on failure).
    ``parquet``: passed to the writer (e.g. ``row_group_size``)."""
    path = Path(path)
    _atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False, **parquet))
    return path


class JsonlLog:
    """An append-only JSON-lines file that survives being killed at any point.

    Each record is one ``os.write`` of a whole line followed by ``fsync``, so the file holds complete
    lines plus, after a kill mid-write, at most one torn last line (no trailing newline). :meth:`read`
    returns the complete records (a line that does not decode is skipped, so its work is redone);
    :meth:`append` cuts a torn tail off before writing, so a resumed job never glues two records.

    >>> import tempfile
    >>> log = JsonlLog(Path(tempfile.mkdtemp()) / "log.jsonl")
    >>> log.append({"key": "a", "score": 1.5})
    >>> with open(log.path, "ab") as f:
    ...     _ = f.write(b'{"key": "b", "sco')  # killed mid-write
    >>> log.read()
    [{'key': 'a', 'score': 1.5}]
    >>> log.append({"key": "b", "score": 2.0})
    >>> [r["key"] for r in log.read()]
    ['a', 'b']
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        """The complete records, in file order."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_bytes().splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # a torn last line
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def repair(self) -> None:
        """Cut a torn last line (one without a trailing newline) off the file."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
        data = self.path.read_bytes()
        with open(self.path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())

    def append(self, record: dict) -> None:
        """Write ``record`` as one line and fsync it (numpy/torch scalars are written as floats)."""
        self.repair()
        line = (json.dumps(record, default=float) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------------- lifecycle
