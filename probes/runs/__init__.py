"""Run directories: tidy results plus a ``run.json`` sidecar (versions, model, pack hash, seed, config),
atomic parquet writes, :class:`JsonlLog` (the append-only record log long jobs resume from), and
:func:`open_run`, the lifecycle every command that writes a run folder goes through.

Layout: ``runs/<command>/<timestamp>-<short-hash>/`` (root overridable with ``SUBLENS_RUNS``).
:mod:`probes.runs.files` holds the files (sidecar, atomic writes, JSONL log), :mod:`probes.runs.lifecycle`
the statuses (``running`` → ``ok`` / ``failed`` / ``interrupted``).
"""

from probes.runs.files import (
    JsonlLog,
    new_run_dir,
    package_versions,
    runs_root,
    write_json,
    write_sidecar,
    write_table,
)
from probes.runs.lifecycle import STATUSES, Run, check_writable, open_run

__all__ = [
    "STATUSES",
    "JsonlLog",
    "Run",
    "check_writable",
    "new_run_dir",
    "open_run",
    "package_versions",
    "runs_root",
    "write_json",
    "write_sidecar",
    "write_table",
]
