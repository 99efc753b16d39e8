"""The run lifecycle: :func:`open_run`, which every command that writes a run folder goes through.

The output root is checked for writability before any work; the folder and a ``run.json`` with status
``running`` are written at the start; the block's outcome sets the final status: ``ok``, ``interrupted``
(Ctrl-C; records what was kept and the command that resumes) or ``failed`` (records the error; leftover
``*.tmp`` files are removed). Every run folder therefore ends with a ``run.json`` whose status is ``ok``,
``failed`` or ``interrupted``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from probes.errors import InputError
from probes.runs.files import (
    _ACTIVE,
    JsonlLog,
    new_run_dir,
    runs_root,
    write_sidecar,
    write_table,
)

STATUSES = ("running", "ok", "failed", "interrupted")
_BASE_KEYS = (
    "command",
    "status",
    "model",
    "pack_sha256",
    "seed",
    "config",
    "versions",
    "started",
    "finished",
)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _describe_root(root: Path, flag: str | None) -> str:
    if flag:
        return f"{flag} {root}"
    return f"the run folder root {root} (the default; choose another with --out or SUBLENS_RUNS)"


def _unwritable(root: Path, flag: str | None, err: OSError) -> str:
    where, fix = _describe_root(root, flag), flag or "--out"
    if isinstance(err, (FileExistsError, NotADirectoryError)) or err.errno in (errno.EEXIST, errno.ENOTDIR):
        what = f"{err.filename or root} is a file, not a folder"
        return f"{where}: {what}; pass a folder to {fix} (it is created if missing)."
    if err.errno in _DISK_FULL:
        what = f"the disk is full ({err.strerror})"
        return f"{where}: {what}; free some space or pass a folder on another disk to {fix}."
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = f"the folder is not writable ({err.strerror})"
        return f"{where}: {what}; pass a folder you can write to with {fix}, or fix its permissions."
    return f"{where}: cannot write there ({err.strerror or err}); pass a writable folder to {fix}."


def check_writable(root: str | Path, flag: str | None = "--out") -> Path:
    """Create ``root`` if needed and write, fsync and remove a small probe file in it.

    Raises :class:`InputError` naming ``flag`` (the CLI option that chose the folder) and the fix when the
    path is a file, the folder is read-only or the disk is full. Call it before loading or computing."""
    root = Path(root)
    probe = root / f".sublens-write-test-{os.getpid()}-{threading.get_ident()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        raise InputError(_unwritable(root, flag, err)) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return root


@contextlib.contextmanager
def _sigint_deferred(reraise: bool = True) -> Iterator[list[int]]:
    """Hold a Ctrl-C that arrives inside the block until it ends (main thread only); yields the list of
    held signals, and raises KeyboardInterrupt after the block when one was held and ``reraise``."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, old)
    if caught and reraise:
        raise KeyboardInterrupt


@dataclass
class Run:
    """An open run folder (see :func:`open_run`); ``record`` adds fields to its ``run.json``."""

    dir: Path
    command: str
    folder: str
    root: Path | None
    config: Any = None
    model: str | None = None
    pack_sha256: str | None = None
    seed: int | None = None
    started: float = field(default_factory=time.time)
    extra: dict = field(default_factory=dict)
    resume: str | None = None  # the command line that resumes this run (None: it does not resume)

    def record(self, **fields: Any) -> None:
        """Set ``model``/``pack_sha256``/``seed``/``config``; any other field goes into ``run.json`` as is."""
        for key in ("model", "pack_sha256", "seed", "config"):
            if key in fields:
                setattr(self, key, fields.pop(key))
        self.extra.update(fields)

    def table(self, df: pd.DataFrame, name: str) -> Path:
        """Write ``df`` as ``<run folder>/<name>`` (atomic parquet)."""
        return write_table(df, self.dir / name)

    def kept(self) -> list[str]:
        """What the folder holds besides ``run.json`` (JSONL files with their record counts)."""
        out = []
        for p in sorted(self.dir.iterdir()):
            if p.name == "run.json" or p.name.endswith(".tmp"):
                continue
            if p.suffix == ".jsonl":
                out.append(f"{p.name} ({len(JsonlLog(p).read())} records)")
            else:
                out.append(p.name + ("/" if p.is_dir() else ""))
        return out

    def write(self, status: str, *, merge: bool = True, **more: Any) -> Path:
        """Write ``run.json`` with ``status``, keeping fields other code wrote there during the run
        (``merge=False``: drop what the file held, e.g. a resumed run's previous record)."""
        extra = {**(_foreign_fields(self.dir / "run.json") if merge else {}), **self.extra, **more}
        for key in ("model", "pack_sha256", "seed"):
            if getattr(self, key) is None and key in extra:
                setattr(self, key, extra[key])
        extra = {k: v for k, v in extra.items() if k not in _BASE_KEYS}
        return write_sidecar(
            self.dir,
            command=self.command,
            config=self.config,
            model=self.model,
            pack_sha256=self.pack_sha256,
            seed=self.seed,
            status=status,
            started=self.started,
            extra=extra,
        )


def _foreign_fields(path: Path) -> dict:
    """The fields of an existing ``run.json`` (written by library code inside the run), or {}."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    for key in ("status", "versions", "started", "finished", "command", "config", "error", "kept", "resume"):
        data.pop(key, None)
    return {k: v for k, v in data.items() if v is not None}


def _remove_tmp(run_dir: Path) -> None:
    for tmp in run_dir.rglob("*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def _rerun_command() -> str:
    return shlex.join(["sublens", *sys.argv[1:]])


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _finish(run: Run, status: str, **more: Any) -> None:
    """Write the final ``run.json``; on a full disk fall back to overwriting the old one in place."""
    try:
        run.write(status, **more)
    except OSError as err:
        path = run.dir / "run.json"
        text = json.dumps({"command": run.command, "status": status, **more}, default=str)
        try:
            with open(path, "r+") as f:  # reuses the blocks of the "running" record
                f.write(text)
                f.truncate()
        except OSError:
            _say(f"warning: could not record status {status!r} in {path}: {err}")


def _interrupted(run: Run) -> None:
    kept = run.kept()
    resume = run.resume or _rerun_command()
    verb = "resume with" if run.resume else "this command does not resume; rerun with"
    _finish(run, "interrupted", kept=kept, resume=run.resume)
    what = ", ".join(kept) if kept else "nothing but run.json"
    _say(f"interrupted: kept {what} in {run.dir}\n{verb}: {resume}")


def _failed(run: Run, err: BaseException) -> BaseException | None:
    """Record the failure; returns a clearer error to raise instead (disk full), or None."""
    _remove_tmp(run.dir)
    _finish(run, "failed", error=f"{type(err).__name__}: {err}")
    if isinstance(err, OSError) and err.errno in _DISK_FULL:
        return InputError(
            f"writing to {run.dir} failed: the disk is full ({err.strerror}). Partial files were removed "
            "and run.json says failed; free some space or pass --out on another disk, then run again."
        )
    return None


def _exit_ok(err: BaseException) -> bool:
    """``SystemExit``/``typer.Exit`` with code 0 end a run normally."""
    if isinstance(err, SystemExit):
        return err.code in (0, None)
    return type(err).__name__ == "Exit" and getattr(err, "exit_code", 1) == 0


def _create(
    folder: str, config: Any, root: Path | None, run_dir: str | Path | None, flag: str | None
) -> Path:
    if run_dir is not None:
        return check_writable(run_dir, flag)
    check_writable(runs_root(root), flag)
    return new_run_dir(folder, config, root=root)


@contextlib.contextmanager
def open_run(
    command: str,
    config: Any = None,
    *,
    folder: str | None = None,
    root: str | Path | None = None,
    run_dir: str | Path | None = None,
    flag: str | None = "--out",
    model: str | None = None,
    seed: int | None = None,
    resume: str | None = None,
) -> Iterator[Run]:
    """The lifecycle of a run folder (module docstring): yields a :class:`Run`.

    ``folder``: the subfolder of ``root`` (default ``command`` with dashes); ``run_dir``: an existing or
    chosen folder instead (a resumed run); ``flag``: the CLI option that chose the folder, named in the
    error when it is not writable (None: the default root); ``resume``: the command line that resumes
    the run, recorded and printed on Ctrl-C. Ctrl-C and errors are recorded and re-raised.
    """
    folder = folder or command.replace(" ", "-")
    base = Path(root) if root else None
    with _sigint_deferred(reraise=False) as held:  # no Ctrl-C between the folder and its run.json
        path = _create(folder, config, base, run_dir, flag)
        run = Run(path, command, folder, base, config, model=model, seed=seed, resume=resume)
        run.write("running", merge=False)
        token = _ACTIVE.set(run)
    try:
        if held:
            raise KeyboardInterrupt
        yield run
    except KeyboardInterrupt:
        with _sigint_deferred():
            _interrupted(run)
        raise
    except BaseException as err:
        if _exit_ok(err):
            run.write("ok")
            raise
        with _sigint_deferred():
            clearer = _failed(run, err)
        if clearer is not None:
            raise clearer from err
        raise
    else:
        with _sigint_deferred():
            run.write("ok")
    finally:
        _ACTIVE.reset(token)
