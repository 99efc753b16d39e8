"""Run directories: tidy results plus a ``run.json`` sidecar (versions, model, pack hash, seed, config).

Layout: ``runs/<command>/<timestamp>-<short-hash>/`` (root overridable with ``SUBLENS_RUNS``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

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


def new_run_dir(command: str, config: Any = None, root: str | Path | None = None) -> Path:
    """Create ``<root>/<command>/<timestamp>-<hash of config>/`` and return it."""
    root = Path(root or os.environ.get("SUBLENS_RUNS", "runs"))
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
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, path)
    return path


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a DataFrame as parquet atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path
