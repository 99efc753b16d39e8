"""``sublens attack run CONFIG.toml`` and ``sublens attack report RUN_DIR``: SSR / GCG campaigns."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer
from rich.console import Console

from apps.cli import checks
from apps.cli.tables import print_frame

app = typer.Typer(help="Subspace-rerouting (SSR) and GCG suffix attacks.", no_args_is_help=True)
console = Console()


@app.command("run")
def run(
    config: str = typer.Argument(..., help="campaign TOML (see analysis.rerouting.CampaignConfig)"),
    run_dir: str = typer.Option(None, help="run directory; an existing one is resumed"),
    out: str = typer.Option(None, help="run directory root when --run-dir is not given (default ./runs)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    ray: str = checks.RAY_OPTION,
    workers: int = checks.WORKERS_OPTION,
) -> None:
    """Run (or resume) a campaign: one attempt per (prompt, seed), appended to attempts.jsonl."""
    import torch

    from analysis.rerouting import load_config, report, run_campaign
    from probes.runs import open_run

    checks.input_file(config, "CONFIG", "campaign TOML")
    ray_cfg = checks.ray_config(ray, workers)
    cfg = load_config(config)
    cfg.prompt_list()  # fail early on an empty prompt set
    if run_dir is not None:
        _check_resume(Path(run_dir), cfg)
    if torch.get_num_threads() > 4:
        torch.set_num_threads(4)
    where = (
        {"run_dir": run_dir, "flag": "--run-dir"}
        if run_dir
        else {"root": out, "flag": "--out" if out else None}
    )
    with open_run("attack run", cfg, folder="attack", model=cfg.model, seed=cfg.seed, **where) as run:
        run.resume = shlex.join(["sublens", "attack", "run", config, "--run-dir", str(run.dir)])
        console.print(f"run directory: {run.dir}")
        run_campaign(cfg, run.dir, progress=progress, ray=ray_cfg)
        weights = run.dir / "weights.json"
        if weights.is_file():  # base pack and adapter SHA-256 of the attacked model
            run.record(**{k: v for k, v in json.loads(weights.read_text()).items() if k != "model"})
        tab = report(run.dir)
        run.record(report=tab.to_dict(orient="records"))
    _print_report(tab, f"attack report ({cfg.method}, {cfg.model})")


def _check_resume(run_dir: Path, cfg) -> None:
    """Refuse a resume whose config differs from the stored one, before anything is written."""
    from analysis.rerouting.campaign import check_resume

    check_resume(run_dir, cfg, flag="--run-dir")


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

    checks.input_folder(run_dir, "RUN_DIR", "campaign run")
    checks.between(fpr, 0.0, 1.0, "--fpr", "e.g. 0.01 for 1%")
    checks.at_least(n_harmless, 1, "--n-harmless")
    checks.at_least(readout_layer, 0, "--readout-layer")

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
