"""Run directories the dashboard reads: ``$SUBLENS_RUNS`` (or ``./runs``) and the runs found under it."""

from __future__ import annotations

import os
from pathlib import Path


def runs_root() -> Path:
    """Where run directories live (``$SUBLENS_RUNS`` or ``./runs``)."""
    return Path(os.environ.get("SUBLENS_RUNS", "runs"))


def _newest_first(paths) -> list[Path]:
    return sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)


def campaign_dirs() -> list[Path]:
    """Run directories of ``sublens attack run`` (any depth, those holding an ``attempts.jsonl``), newest first."""
    from analysis.rerouting import ATTEMPTS

    return _newest_first(p.parent for p in runs_root().glob(f"**/{ATTEMPTS}"))


def run_dirs(command: str, table: str) -> list[Path]:
    """Run directories ``runs/<command>/*`` that hold ``<table>.parquet``, newest first."""
    return _newest_first(p.parent for p in (runs_root() / command).glob(f"*/{table}.parquet"))
