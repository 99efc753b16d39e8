"""One channel scan per model, in one process or one Ray task per model; resumable by model name.

Each model's tables go to ``<run_dir>/<model>/{channels,head_pairs,top_channels}.parquet`` and one line
per finished model to ``<run_dir>/scans.jsonl`` (a :class:`probes.runs.JsonlLog` keyed by the model
name), written by the driver alone; a rerun on the same folder skips the models already there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from analysis.channels.null import top_channels
from analysis.channels.scan import ScanConfig, head_pair_summary, scan_channels
from probes.runs import JsonlLog, write_table
from probes.scaleout import RayConfig

__all__ = ["SCANS", "scan_model", "scan_models"]

SCANS = "scans.jsonl"


def scan_model(model: str, config: ScanConfig, center_writing: bool = False, top: int = 20) -> dict:
    """Load ``model``, read its folded head weights and scan them; returns the tables and the facts."""
    from probes.loading import load_model
    from probes.weights import head_weights

    handle = load_model(model, backend="hf", progress=False)
    weights = head_weights(handle, fold_ln=True, center_writing=center_writing)
    df = scan_channels(weights, config)
    return {
        "model": handle.name,
        "pack_sha256": handle.pack_sha256,
        "channels": df,
        "head_pairs": head_pair_summary(df),
        "top_channels": top_channels(df, top),
    }


def _folder(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"


def _save(run_dir: Path, model: str, result: dict) -> dict:
    """Write one model's tables (atomically) and return its JSON record."""
    folder = run_dir / _folder(model)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("channels", "head_pairs", "top_channels"):
        write_table(result[name], folder / f"{name}.parquet")
    top = result["top_channels"].iloc[0] if len(result["top_channels"]) else None
    return {
        "model": result["model"],
        "pack_sha256": result["pack_sha256"],
        "folder": folder.name,
        "n_scores": len(result["channels"]),
        "max_z": float(top["z"]) if top is not None else None,
    }


def _scan_worker(shared: tuple[ScanConfig, bool, int]):
    config, center_writing, top = shared
    return lambda model: scan_model(model, config, center_writing, top)


def scan_models(
    models: list[str],
    config: ScanConfig,
    run_dir: str | Path,
    *,
    center_writing: bool = False,
    top: int = 20,
    ray: RayConfig | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Scan every model not yet in ``run_dir/scans.jsonl``; returns one summary row per model."""
    run_dir = Path(run_dir)
    models = list(dict.fromkeys(models))  # each model once
    log = JsonlLog(run_dir / SCANS)
    log.repair()
    done = {r["key"] for r in log.read()}
    todo = [m for m in models if m not in done]
    if ray is not None and todo:
        from probes.scaleout import cluster, run_keyed

        with cluster(ray):
            run_keyed(
                [(m, m) for m in todo],
                _scan_worker,
                log,
                ray,
                shared=(config, center_writing, top),
                progress=progress,
                desc="channel scans",
                on_result=lambda m, res: _save(run_dir, m, res),
            )
    else:
        for m in todo:
            log.append({"key": m, **_save(run_dir, m, scan_model(m, config, center_writing, top))})
    rows = {r["key"]: r for r in log.read()}
    return pd.DataFrame([rows[m] for m in models if m in rows]).drop(columns="key")
