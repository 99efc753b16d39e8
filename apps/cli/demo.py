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
    from probes.capture import capture
    from probes.lens import logit_lens
    from probes.loading import load_model
    from probes.runs import new_run_dir, write_sidecar, write_table

    started = time.time()
    with console.status(f"loading {model} …"):
        handle = load_model(model, backend=backend)
    console.print(f"[green]loaded[/] {handle!r} in {time.time() - started:.1f} s")

    answer = handle.generate(prompt, max_new_tokens=max_new_tokens)
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
    df = pd.DataFrame(rows)

    table = Table(title=f"residual stream at the last prompt token ({handle.name}, {backend})")
    for col in ("layer", "‖resid‖", "logit-lens top token", "p"):
        table.add_column(col, justify="right" if col != "logit-lens top token" else "left")
    for r in rows:
        table.add_row(
            str(r["layer"]), f"{r['resid_norm']:.1f}", repr(r["lens_top_token"]), f"{r['lens_top_prob']:.3f}"
        )
    console.print(table)

    config = {
        "model": model,
        "prompt": prompt,
        "backend": backend,
        "max_new_tokens": max_new_tokens,
        "seed": 0,
    }
    run_dir = new_run_dir("demo", config, root=out)
    write_table(df, run_dir / "residual_stream.parquet")
    write_sidecar(
        run_dir,
        command="demo",
        config=config,
        model=handle.name,
        pack_sha256=handle.pack_sha256,
        seed=0,
        started=started,
        extra={"answer": answer},
    )
    console.print(f"results: {run_dir}")
