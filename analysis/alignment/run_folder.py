"""The run folder of an alignment experiment (``sublens align run``): tables, summary, figures, ``run.json``
with the SHA-256 of every encoder's weights."""

from __future__ import annotations

from pathlib import Path

from .experiment import AlignmentConfig, AlignmentResults, summary_table

__all__ = ["write_run"]


def write_run(
    res: AlignmentResults,
    config: AlignmentConfig,
    *,
    root: str | Path | None = None,
    started: float | None = None,
) -> Path:
    """Write a run directory: parquet tables, ``summary.parquet``, HTML figures and ``run.json``."""
    from probes.runs import new_run_dir, write_sidecar, write_table

    from .figures import point_cloud_figure, retrieval_vs_anchors_figure, retrieval_vs_d_figure

    run_dir = new_run_dir("align", config, root=root)
    for name, df in res.tables().items():
        if len(df):
            write_table(df, run_dir / f"{name}.parquet")
    write_table(summary_table(res.results), run_dir / "summary.parquet")
    figs = {
        "retrieval_vs_d": retrieval_vs_d_figure(res.results),
        "retrieval_vs_anchors": retrieval_vs_anchors_figure(res.results),
        "matching_vs_d": retrieval_vs_d_figure(res.results, "matching"),
        "example_shape": point_cloud_figure(res.example_points, res.example_caption),
    }
    for name, fig in figs.items():
        fig.write_html(run_dir / f"{name}.html", include_plotlyjs="directory")
    write_sidecar(
        run_dir,
        command="align run",
        config=config,
        seed=config.seed,
        started=started,
        extra={
            "seconds": {k: round(v, 2) for k, v in res.seconds.items()},
            "weights_sha256": _weight_hashes(config),
        },
    )
    return run_dir


def _weight_hashes(cfg: AlignmentConfig) -> dict[str, str | None]:
    """SHA-256 of the weights behind each encoder of ``cfg`` (None where not applicable or missing)."""
    from probes.packs import sha256_file
    from probes.text_encoders import MINILM

    from .pointnet import DEFAULT_AE_WEIGHTS, DEFAULT_WEIGHTS, default_modelnet_checkpoint

    paths = {
        "pointnet": Path(cfg.pointnet_weights or DEFAULT_WEIGHTS).with_suffix(".safetensors"),
        "pointnet-ae": DEFAULT_AE_WEIGHTS.with_suffix(".safetensors"),
        "modelnet": Path(cfg.modelnet_checkpoint)
        if cfg.modelnet_checkpoint
        else default_modelnet_checkpoint(),
    }
    out: dict[str, str | None] = {}
    for name in [*cfg.encoders_3d, *cfg.encoders_text]:
        if name == "minilm":
            out[name] = MINILM.files["model.safetensors"].sha256
        elif name in paths:
            out[name] = sha256_file(paths[name]) if paths[name] and paths[name].is_file() else None
        else:
            out[name] = None  # smollm2: see the pack registry; tfidf: no weights
    return out
