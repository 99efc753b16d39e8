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
import math
import mmap
import os
import re
import shutil
import struct
import warnings
from pathlib import Path

import torch

from probes.adapters import ADAPTERS
from probes.errors import InputError, UnknownModelError
from probes.handle import BACKENDS, ModelHandle
from probes.packs import (
    PACKS,
    ensure_verified,
    file_stamp,
    get_pack,
    pack_dir,
    pack_path,
    resolve_pack,
    sha256_file,
    write_json_atomic,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DERIVED = "hf-fp32"
_DERIVED_MARKER = "sublens-derived.json"
_LOCAL_FIX = (
    "Pass a .gguf model file, or a folder saved with save_pretrained (config.json, weights, tokenizer)."
)


# --- the dequantised copy of a pack (derived data: checked like a pack, rebuilt when damaged) ----------


def _derived_dir(name: str) -> Path:
    return pack_dir(get_pack(name)) / _DERIVED


def _derived_files(folder: Path) -> dict[str, dict]:
    """Size, mtime and SHA-256 of every file of a derived folder (its marker excluded)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != _DERIVED_MARKER)
    return {str(p.relative_to(folder)): {**file_stamp(p), "sha256": sha256_file(p)} for p in files}


def _derived_damaged(folder: Path, what: str) -> bool:
    warnings.warn(
        f"The dequantised copy {folder} is damaged ({what}); it is rebuilt from the verified GGUF.",
        stacklevel=3,
    )
    return False


def _adopt_legacy(folder: Path, marker: Path, record: dict) -> bool:
    """A marker from before per-file records: trust the files only if none changed after the marker."""
    written = marker.stat().st_mtime_ns
    if any(p.stat().st_mtime_ns > written for p in folder.rglob("*") if p.is_file()):
        return _derived_damaged(folder, "a file changed after it was written")
    write_json_atomic({**record, "files": _derived_files(folder)}, marker)
    return True


def _derived_ok(name: str) -> bool:
    """The derived folder is usable: made from the pinned GGUF, every file as recorded (re-hashed if its
    size or mtime changed). A damaged folder gives a warning and False (the caller rebuilds it)."""
    folder = _derived_dir(name)
    marker = folder / _DERIVED_MARKER
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("gguf_sha256") != get_pack(name).sha256:
        return False
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return _adopt_legacy(folder, marker, record)
    changed = False
    for rel, rec in files.items():
        path = folder / rel
        if not path.is_file():
            return _derived_damaged(folder, f"{rel} is missing")
        stamp = file_stamp(path)
        if stamp == {"size": rec.get("size"), "mtime_ns": rec.get("mtime_ns")}:
            continue
        if stamp["size"] != rec.get("size") or sha256_file(path) != rec.get("sha256"):
            return _derived_damaged(folder, f"{rel} changed since it was written")
        rec.update(stamp)
        changed = True
    if changed:
        write_json_atomic(record, marker)
    return True


def verify_derived(name: str) -> str | None:
    """Re-hash a pack's dequantised copy, if there is one (``sublens models verify``).

    Returns None when there is none or it matches its record; a damaged copy is removed (the next load
    rebuilds it from the GGUF) and a note saying so is returned."""
    folder = _derived_dir(name)
    if not folder.exists():
        return None
    try:
        files = json.loads((folder / _DERIVED_MARKER).read_text())["files"]
        recorded = {rel: (r["size"], r["sha256"]) for rel, r in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        recorded = None
    if recorded is None and _derived_ok(name):
        return None  # a copy from before per-file records, unchanged since written: recorded now
    current = {rel: (r["size"], r["sha256"]) for rel, r in _derived_files(folder).items()}
    if recorded == current:
        return None
    shutil.rmtree(folder, ignore_errors=True)
    return f"its dequantised copy {folder} was damaged and was removed (the next load rebuilds it)"


def _save_derived(model, tokenizer, name: str) -> None:
    """Write the dequantised model as a safetensors folder, atomically (temp folder + rename), with each
    file's size, mtime and SHA-256 recorded in its marker."""
    final = _derived_dir(name)
    tmp = final.with_name(f"{_DERIVED}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.hf_quantizer = None  # weights are plain fp32 after dequantisation
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record = {"gguf_sha256": get_pack(name).sha256, "files": _derived_files(tmp)}
        (tmp / _DERIVED_MARKER).write_text(json.dumps(record))
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


# --- local files: checked before transformers sees them; its errors are converted in one place --------


class _Short(Exception):
    """The GGUF header needs bytes beyond the end of the file."""


class _GgufCursor:
    """Reads a GGUF header from a memory map, refusing to read or skip past the end."""

    _SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def __init__(self, buf) -> None:
        self.buf, self.pos, self.size = buf, 0, len(buf)

    def skip(self, n: int, what: str) -> None:
        if self.pos + n > self.size:
            raise _Short(what)
        self.pos += n

    def unpack(self, fmt: str, what: str):
        n = struct.calcsize("<" + fmt)
        start = self.pos
        self.skip(n, what)
        return struct.unpack_from("<" + fmt, self.buf, start)[0]

    def count(self, what: str, min_bytes: int = 8) -> int:
        """A u64 count whose items (``min_bytes`` each at least) must fit in the rest of the file."""
        n = self.unpack("Q", what)
        if n * min_bytes > self.size - self.pos:
            raise _Short(f"{what} ({n:,} entries)")
        return n

    def string(self, what: str) -> bytes:
        n = self.count(what, 1)
        start = self.pos
        self.skip(n, what)
        return bytes(self.buf[start : self.pos])

    def value(self, vtype: int, what: str):
        if vtype in self._SCALAR:
            return self.unpack(self._SCALAR[vtype], what)
        if vtype == 8:
            return self.string(what)
        if vtype != 9:
            raise ValueError(f"unknown metadata value type {vtype} in {what}")
        itype = self.unpack("I", what)
        if itype in self._SCALAR:
            width = struct.calcsize("<" + self._SCALAR[itype])
            self.skip(self.count(what, width) * width, what)
        else:
            for _ in range(self.count(what, 8)):
                self.value(itype, what)
        return None


def _gguf_data_end(path: Path, buf) -> int:
    """Parse a GGUF header (v2/v3); return the byte where its tensor data ends. Raises ``_Short`` or
    ``ValueError`` describing what is wrong."""
    import gguf

    cur = _GgufCursor(buf)
    cur.skip(4, "magic")
    version = cur.unpack("I", "version")
    if version not in (2, 3):
        hint = " (a big-endian file?)" if version > 0xFFFF else ""
        raise ValueError(f"GGUF version {version} is not supported (2 or 3){hint}")
    n_tensors, n_kv = cur.count("tensor count", 8), cur.count("metadata count", 8)
    meta = {}
    for _ in range(n_kv):
        key = cur.string("a metadata key").decode("utf-8", "replace")
        meta[key] = cur.value(cur.unpack("I", f"metadata {key!r}"), f"metadata {key!r}")
    if "general.architecture" not in meta:
        raise ValueError("its metadata has no general.architecture (not a model file)")
    end = 0
    for i in range(n_tensors):
        name = cur.string(f"tensor {i}'s name").decode("utf-8", "replace")
        dims = [cur.unpack("Q", f"tensor {name!r}") for _ in range(cur.unpack("I", f"tensor {name!r}"))]
        ttype, offset = cur.unpack("I", f"tensor {name!r}"), cur.unpack("Q", f"tensor {name!r}")
        try:
            block, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ttype)]
        except (ValueError, KeyError):
            raise ValueError(f"tensor {name!r} has unknown type {ttype}") from None
        end = max(end, offset + math.prod(dims) // block * nbytes)
    align = int(meta.get("general.alignment") or 32)
    return (cur.pos + align - 1) // align * align + end


def check_gguf(path: Path) -> None:
    """Refuse an empty, truncated, garbage or non-GGUF file with a message naming the file and the problem."""
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes). {_LOCAL_FIX}")
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic != b"GGUF":
            raise InputError(
                f"{path}: not a GGUF file (magic bytes {magic!r}, expected b'GGUF'). {_LOCAL_FIX}"
            )
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                end = _gguf_data_end(path, buf)
            except _Short as err:
                raise InputError(
                    f"{path}: truncated or corrupt GGUF: the file ends ({size:,} bytes) inside its header "
                    f"(reading {err}). Copy or download the file again."
                ) from None
            except ValueError as err:
                raise InputError(f"{path}: not a usable GGUF file: {err}. {_LOCAL_FIX}") from None
    if end > size:
        raise InputError(
            f"{path}: truncated: header says the tensor data ends at byte {end:,} but the file has {size:,} "
            "bytes. Copy or download the file again."
        )


def check_safetensors(path: Path) -> None:
    """Refuse a safetensors file whose header does not parse or whose data is cut short."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < n <= size - 8:
            raise InputError(
                f"{path}: not a safetensors file (no valid header length). Save the model again."
            )
        try:
            header = json.loads(f.read(n))
            end = max([0] + [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"])
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise InputError(
                f"{path}: not a safetensors file (its header does not parse). Save the model again."
            ) from None
    if 8 + n + end > size:
        raise InputError(
            f"{path}: truncated: header says the tensor data ends at byte {8 + n + end:,} but the file has "
            f"{size:,} bytes. Copy or save the model again."
        )


def _check_folder(path: Path) -> str | None:
    """Check a local model folder; return the name of the GGUF to load from it, or None for a HF folder."""
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    config = path / "config.json"
    if not config.is_file():
        if len(ggufs) > 1:
            raise InputError(
                f"Folder {path} holds {len(ggufs)} .gguf files ({', '.join(ggufs)}); pass one of them."
            )
        if not ggufs:
            raise InputError(
                f"Folder {path} holds no model: neither a HF model (config.json) nor a .gguf file. {_LOCAL_FIX}"
            )
        check_gguf(path / ggufs[0])
        return ggufs[0]
    try:
        json.loads(config.read_text())
    except (ValueError, OSError) as err:
        raise InputError(f"{config}: not valid JSON ({err}). Save the model again.") from None
    weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("pytorch_model*.bin"))
    if not weights:
        raise InputError(
            f"Folder {path} has config.json but no weights (model.safetensors or pytorch_model.bin). {_LOCAL_FIX}"
        )
    for w in weights:
        if w.suffix == ".safetensors":
            check_safetensors(w)
    return None


def _local_target(path: Path) -> tuple[Path, str | None]:
    """``(folder, gguf file name or None)`` for a local model path, checked; bad input raises InputError."""
    if path.is_dir():
        return path, _check_folder(path)
    if not path.is_file():
        raise InputError(f"{path} is neither a regular file nor a folder. {_LOCAL_FIX}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GGUF" or path.suffix == ".gguf":
        check_gguf(path)
        return path.parent, path.name
    if path.suffix == ".safetensors":
        raise InputError(
            f"{path} holds weights only; pass the folder that holds it with config.json and the tokenizer files."
        )
    raise InputError(f"{path} is a file but not a GGUF model (magic bytes {magic!r}). {_LOCAL_FIX}")


def _unloadable(path: Path, err: BaseException) -> InputError:
    first = (str(err).strip().splitlines() or [""])[0][:300]
    return InputError(f"{path}: could not load it as a model ({type(err).__name__}: {first}). {_LOCAL_FIX}")


def _load_errors() -> tuple[type[BaseException], ...]:
    """What transformers, gguf, safetensors and torch raise on a bad local file (converted in one place)."""
    import pickle

    errors: list[type[BaseException]] = [struct.error, ValueError, IndexError, KeyError, OSError, EOFError]
    errors += [RuntimeError, pickle.UnpicklingError, UnicodeError]
    try:
        from safetensors import SafetensorError

        errors.append(SafetensorError)
    except ImportError:  # pragma: no cover - older safetensors
        pass
    return tuple(errors)


def _load_local(path: Path, dtype: torch.dtype):
    folder, gguf_file = _local_target(path)
    try:
        return _from_pretrained(str(folder), gguf_file, dtype, True)
    except _load_errors() as err:
        raise _unloadable(path, err) from err


def looks_like_path(text: str) -> bool:
    """Whether a model argument was meant as a path (a separator, a leading ``.``/``~``, a file suffix)."""
    seps = [os.sep] + ([os.altsep] if os.altsep else [])
    return any(s in text for s in seps) or text.startswith((".", "~")) or text.endswith(_FILE_SUFFIXES)


_FILE_SUFFIXES = (".gguf", ".safetensors", ".bin", ".json")


def no_such_path(text: str) -> InputError:
    return InputError(
        f"no such file or directory: {Path(text).expanduser().absolute()} (from {text!r}). Check the path, "
        f"or use a packaged model name ({', '.join(PACKS)}; see `sublens models list`)."
    )


def local_config(path: str | Path):
    """The HF config of a local model file or folder (checked like :func:`load_model` checks it)."""
    from transformers import AutoConfig

    path = Path(path).expanduser()
    if not path.exists():
        raise no_such_path(str(path))
    folder, gguf_file = _local_target(path)
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True, **kw)
    except _load_errors() as err:
        raise _unloadable(path, err) from err


# --- resolution --------------------------------------------------------------------------------------


def _load_pack(name: str, dtype: torch.dtype, fetch: bool, derived: bool, progress: bool):
    """A packaged model: its GGUF is checked first (re-hashed if changed), so a damaged pack is never used."""
    spec = get_pack(name)
    if pack_path(spec).is_file():
        ensure_verified(spec, progress=progress)
    if derived and _derived_ok(name):
        model, tok = _from_pretrained(str(_derived_dir(name)), None, dtype, True)
        return model, tok
    gguf = resolve_pack(name, fetch=fetch, progress=progress)
    model, tok = _from_pretrained(str(gguf.parent), gguf.name, torch.float32, True)
    if derived:
        _save_derived(model, tok, name)
    return model.to(dtype), tok


def load_hf(
    name_or_path: str,
    *,
    dtype: torch.dtype = torch.float32,
    fetch: bool = True,
    derived: bool | None = None,
    allow_hub: bool = False,
    progress: bool = True,
):
    """Load ``(hf_model, tokenizer, source, pack_sha256)`` without building any view.

    ``pack_sha256`` is the pinned hash only for a pack whose GGUF (or dequantised copy) was verified."""
    if derived is None:
        derived = os.environ.get("SUBLENS_NO_DERIVED", "") in ("", "0")
    if name_or_path in ADAPTERS:  # a packaged base + a pinned in-repo adapter (probes.adapters)
        from probes.adapters import load_adapted

        model, tok, sha, _ = load_adapted(name_or_path, dtype=dtype, fetch=fetch, progress=progress)
        return model, tok, "adapter", sha
    if name_or_path in PACKS:
        model, tok = _load_pack(name_or_path, dtype, fetch, derived, progress)
        return model, tok, "pack", get_pack(name_or_path).sha256
    path = Path(name_or_path).expanduser()
    if path.exists():
        model, tok = _load_local(path, dtype)
        return model, tok, "local", None
    if _HUB_ID.match(name_or_path):
        try:
            model, tok = _from_pretrained(name_or_path, None, dtype, not allow_hub)
        except OSError as err:
            raise UnknownModelError(
                f"Hub model {name_or_path!r} is not in the local Hugging Face cache and hub access is off, and "
                f"there is no file or folder {path.absolute()}. Use a packaged model ({', '.join(PACKS)}), a "
                f"local folder, or allow_hub=True with network access. ({err.__class__.__name__})"
            ) from None
        return model, tok, "hub", None
    if looks_like_path(name_or_path):
        raise no_such_path(name_or_path)
    raise UnknownModelError(
        f"Unknown model {name_or_path!r}: not a packaged model ({', '.join(PACKS)}; see `sublens models "
        "list`), no file or folder of that name exists, and it is not a hub id of the form org/name."
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
    if name_or_path in ADAPTERS:
        handle.adapter_sha256 = ADAPTERS[name_or_path].weights_sha256
    handle.view(backend)
    return handle


def model_config(name: str):
    """The HF config of a packaged model, read from its GGUF header (no weights are dequantised)."""
    from transformers import AutoConfig

    name = ADAPTERS[name].base if name in ADAPTERS else name  # an adapter keeps its base's shape
    spec = get_pack(name)
    if pack_path(spec).is_file():
        ensure_verified(spec)
    if _derived_ok(name):
        return AutoConfig.from_pretrained(str(_derived_dir(name)), local_files_only=True)
    gguf = resolve_pack(name, fetch=False)
    return AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
