"""``sublens laundry eval MODEL``: Laundry List accuracy by N and by answer position, plus IOI."""

from __future__ import annotations

import typer
from rich.console import Console

from apps.cli import checks
from apps.cli.tables import print_frame

app = typer.Typer(help="The Laundry List task.", no_args_is_help=True)
console = Console()


@app.command("eval")
def evaluate(
    model: str = typer.Argument(..., help="packaged model name or local path"),
    n_min: int = typer.Option(2, help="smallest list length"),
    n_max: int = typer.Option(10, help="largest list length"),
    per_n: int = typer.Option(40, help="prompts per list length"),
    split: str = typer.Option("test", help="item vocabulary split: dev or test"),
    ioi_prompts: int = typer.Option(100, help="IOI prompts for the side table (0: skip)"),
    seed: int = typer.Option(0, help="prompt sampling seed"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
) -> None:
    """Score the model on Laundry List prompts (and IOI) and save the tables."""
    from analysis.tasks.evaluate import evaluate_ioi, evaluate_laundry
    from probes.loading import load_model
    from probes.runs import open_run

    ns = checks.list_lengths(n_min, n_max, "--n-min", "--n-max")
    checks.at_least(per_n, 1, "--per-n")
    checks.one_of(split, ("dev", "test"), "--split")
    checks.at_least(ioi_prompts, 0, "--ioi-prompts", "0 skips IOI")
    checks.at_least(seed, 0, "--seed")
    config = {
        "model": model,
        "n_min": n_min,
        "n_max": n_max,
        "per_n": per_n,
        "split": split,
        "ioi_prompts": ioi_prompts,
        "seed": seed,
    }
    with open_run("laundry eval", config, root=out, flag="--out" if out else None, seed=seed) as run:
        with console.status(f"loading {model} …"):
            handle = load_model(model, backend="hf")
        run.record(model=handle.name, pack_sha256=handle.pack_sha256)
        checks.check_list_vocab(handle.tokenizer, ns, split, "--n-max")
        res = evaluate_laundry(handle, n_items=ns, n_per_n=per_n, split=split, seed=seed)
        run.table(res.scored.astype({"items": str, "item_ids": str}), "laundry_scored.parquet")
        run.table(res.by_n, "laundry_by_n.parquet")
        run.table(res.by_position, "laundry_by_position.parquet")
        print_frame(res.by_n, f"Laundry List accuracy by N ({handle.name}, {split} items)", console)
        if ioi_prompts:
            scored, summary = evaluate_ioi(handle, n_prompts=ioi_prompts, seed=seed)
            run.table(scored, "ioi_scored.parquet")
            run.table(summary, "ioi_summary.parquet")
            print_frame(summary, f"IOI ({handle.name})", console)
    console.print(f"results: {run.dir}")
