"""``sublens attack run CONFIG.toml`` and ``sublens attack report RUN_DIR``: SSR / GCG campaigns."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from apps.cli.tables import print_frame

app = typer.Typer(help="Subspace-rerouting (SSR) and GCG suffix attacks.", no_args_is_help=True)
console = Console()


@app.command("run")
def run(
    config: str = typer.Argument(..., help="campaign TOML (see analysis.rerouting.CampaignConfig)"),
    run_dir: str = typer.Option(None, help="run directory; an existing one is resumed"),
    out: str = typer.Option(None, help="run directory root when --run-dir is not given (default ./runs)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Run (or resume) a campaign: one attempt per (prompt, seed), appended to attempts.jsonl."""
    import torch

    from analysis.rerouting import load_config, report, run_campaign
    from probes.runs import new_run_dir, write_sidecar

    started = time.time()
    cfg = load_config(config)
    cfg.prompt_list()  # fail early on an empty prompt set
    if torch.get_num_threads() > 4:
        torch.set_num_threads(4)
    run_dir = run_dir or new_run_dir("attack", cfg, root=out)
    console.print(f"run directory: {run_dir}")
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_sidecar(
        run_dir,
        command="attack run",
        config=cfg,
        model=cfg.model,
        seed=cfg.seed,
        status="running",
        started=started,
    )
    run_campaign(cfg, run_dir, progress=progress)
    tab = report(run_dir)
    write_sidecar(
        run_dir,
        command="attack run",
        config=cfg,
        model=cfg.model,
        seed=cfg.seed,
        started=started,
        extra={"report": tab.to_dict(orient="records")},
    )
    _print_report(tab, f"attack report ({cfg.method}, {cfg.model})")


def _print_report(tab, title: str) -> None:
    """One column per (model, method), one row per metric: readable on any terminal width."""
    wide = tab.set_index("method").drop(columns="model").astype(object).T.reset_index(names="metric")
    print_frame(wide, title, console)


@app.command("report")
def report_cmd(
    run_dir: str = typer.Argument(..., help="a campaign run directory"),
    strict: bool = typer.Option(False, help="add the final-layer probe readout judge (loads the model)"),
    judge_model: str = typer.Option(
        None, help="also run the rubric LLM judge with this packaged model, e.g. qwen2.5-coder-1.5b-instruct"
    ),
    readout_layer: int = typer.Option(None, help="layer of the readout probe (default: the final layer)"),
    defence: bool = typer.Option(
        False, help="detection rate of per-layer probe monitors at --fpr (loads the model)"
    ),
    fpr: float = typer.Option(0.01, help="false-positive rate on harmless val prompts for the defence view"),
    n_harmless: int = typer.Option(200, help="harmless val prompts that set the monitors' thresholds"),
) -> None:
    """Summarise a campaign: ASR (phrase matcher; stricter judges on request), time to first success,
    losses; optionally the defence view. Tables are saved next to the attempts."""
    from analysis.rerouting import campaign_defence, load_handle, report, stored_config, strict_judge
    from probes.runs import write_table

    handle = None
    if strict or judge_model or defence:
        cfg = stored_config(run_dir)
        with console.status(f"loading {cfg.model} …"):
            handle = load_handle(cfg)
    if strict or judge_model:
        strict_judge(run_dir, handle, judge_model=judge_model, readout_layer=readout_layer, progress=True)
    tab = report(run_dir)
    write_table(tab, Path(run_dir) / "report.parquet")
    _print_report(tab, f"attack report ({run_dir}, {', '.join(tab['model'].unique())})")
    if defence:
        d = campaign_defence(run_dir, handle, n_harmless=n_harmless, fpr=fpr)
        cols = ["layer", "targeted", "val_acc", "fpr", "detect_plain", "detect_attacked"]
        print_frame(d[cols], f"defence view: probe monitors at {fpr:.0%} FPR on harmless val", console)
