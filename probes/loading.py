"""``load_model``: packaged models (offline), local folders/GGUF files, and hub ids into a ModelHandle.

Packaged models load from their verified GGUF (transformers dequantises it to fp32, 15-55 s). After
the first load we save the dequantised weights once as a safetensors folder next to the GGUF
(``<cache>/packs/<name>/hf-fp32/``, about 4x the GGUF on disk), so later loads take about a second.
Set ``SUBLENS_NO_DERIVED=1`` (or ``derived=False``) to skip that folder.

Everything runs offline: ``HF_HUB_OFFLINE=1`` is set here and ``local_files_only=True`` is passed,
unless ``allow_hub=True`` (for users with network access to a hub).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch

from probes.errors import InputError, UnknownModelError
from probes.handle import BACKENDS, ModelHandle
from probes.packs import PACKS, get_pack, pack_dir, resolve_pack

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DERIVED = "hf-fp32"


def _derived_dir(name: str) -> Path:
    return pack_dir(get_pack(name)) / _DERIVED


def _derived_ok(name: str) -> bool:
    marker = _derived_dir(name) / "sublens-derived.json"
    try:
        return json.loads(marker.read_text()).get("gguf_sha256") == get_pack(name).sha256
    except (OSError, ValueError):
        return False


def _save_derived(model, tokenizer, name: str) -> None:
    """Write the dequantised model as a safetensors folder, atomically (temp folder + rename)."""
    final = _derived_dir(name)
    tmp = final.with_name(f"{_DERIVED}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.hf_quantizer = None  # weights are plain fp32 after dequantisation
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "sublens-derived.json").write_text(json.dumps({"gguf_sha256": get_pack(name).sha256}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _from_pretrained(path: str, gguf_file: str | None, dtype: torch.dtype, local_only: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(path, local_files_only=local_only, **kw)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=local_only, **kw)
    return model.eval(), tok


def load_hf(
    name_or_path: str,
    *,
    dtype: torch.dtype = torch.float32,
    fetch: bool = True,
    derived: bool | None = None,
    allow_hub: bool = False,
    progress: bool = True,
):
    """Load ``(hf_model, tokenizer, source, pack_sha256)`` without building any view."""
    if derived is None:
        derived = os.environ.get("SUBLENS_NO_DERIVED", "") in ("", "0")
    if name_or_path in PACKS:
        spec = get_pack(name_or_path)
        if derived and _derived_ok(name_or_path):
            model, tok = _from_pretrained(str(_derived_dir(name_or_path)), None, dtype, True)
            return model, tok, "pack", spec.sha256
        gguf = resolve_pack(name_or_path, fetch=fetch, progress=progress)
        model, tok = _from_pretrained(str(gguf.parent), gguf.name, torch.float32, True)
        if derived:
            _save_derived(model, tok, name_or_path)
        return model.to(dtype), tok, "pack", spec.sha256
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        model, tok = _from_pretrained(str(path.parent), path.name, dtype, True)
        return model, tok, "local", None
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and len(ggufs) == 1:
            model, tok = _from_pretrained(str(path), ggufs[0].name, dtype, True)
        elif (path / "config.json").is_file():
            model, tok = _from_pretrained(str(path), None, dtype, True)
        else:
            raise InputError(
                f"Folder {path} holds neither a HF model (config.json) nor exactly one .gguf file."
            )
        return model, tok, "local", None
    if _HUB_ID.match(name_or_path) and not path.exists():
        try:
            model, tok = _from_pretrained(name_or_path, None, dtype, not allow_hub)
        except OSError as err:
            raise UnknownModelError(
                f"Hub model {name_or_path!r} is not in the local Hugging Face cache and hub access is off. "
                f"Use a packaged model ({', '.join(PACKS)}), a local folder, or allow_hub=True with network "
                f"access. ({err.__class__.__name__})"
            ) from None
        return model, tok, "hub", None
    raise UnknownModelError(
        f"Unknown model {name_or_path!r}: not a packaged model ({', '.join(PACKS)}), not an existing "
        "path, not a hub id of the form org/name."
    )


def load_model(
    name_or_path: str,
    backend: str = "tl",
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    fetch: bool = True,
    derived: bool | None = None,
    allow_hub: bool = False,
    progress: bool = True,
) -> ModelHandle:
    """Load a model and return a :class:`ModelHandle` whose ``backend`` view is built eagerly.

    Args:
        name_or_path: a packaged model name (``sublens models list``), ``"organism"`` (the small GPT-2
            trained in this repo, :mod:`probes.organism`), a local HF folder, a ``.gguf``
            file (or a folder holding one), or a hub id whose weights are in the local HF cache.
        backend: ``"tl"`` (TransformerLens bridge), ``"nnsight"`` or ``"hf"``; every view stays
            available on the handle, this only picks which one is built now.
        fetch: fetch a packaged model from the package index if it is not cached yet.
        derived: keep/use the dequantised safetensors copy of a pack (default on).
    """
    if backend not in BACKENDS:
        raise InputError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if name_or_path in ("organism", "talking-heads-organism"):
        from probes.organism import load_organism

        handle = load_organism(dtype=dtype)
        handle.hf.to(device)
        handle.view(backend)
        return handle
    model, tok, source, sha = load_hf(
        name_or_path, dtype=dtype, fetch=fetch, derived=derived, allow_hub=allow_hub, progress=progress
    )
    handle = ModelHandle(model.to(device), tok, name=str(name_or_path), source=source, pack_sha256=sha)
    handle.view(backend)
    return handle


def model_config(name: str):
    """The HF config of a packaged model, read from its GGUF header (no weights are dequantised)."""
    from transformers import AutoConfig

    if _derived_ok(name):
        return AutoConfig.from_pretrained(str(_derived_dir(name)), local_files_only=True)
    gguf = resolve_pack(name, fetch=False)
    return AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
