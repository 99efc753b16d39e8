"""Disk cache for captured activations: safetensors files plus a parquet index with checksums.

Key = SHA-256 of (model fingerprint, sites, prompts, chat template, mode, dtype, format version). The
model fingerprint is the pack's pinned SHA-256, or a hash of the weights for other models. Files are
written to a temp name and renamed, so a crash leaves no partial entry; a file whose checksum does not
match the index, or that safetensors cannot parse, is reported, deleted and recomputed. Nothing is ever
unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from probes.errors import CacheCorruptError
from probes.packs import cache_root, sha256_file

FORMAT_VERSION = 1
INDEX_COLUMNS = ["key", "model", "mode", "n_prompts", "sites", "file", "sha256", "bytes", "created"]


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    for name, t in list(model.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ActivationCache:
    """A folder of ``<key>.safetensors`` files and ``index.parquet``.

    >>> import tempfile
    >>> c = ActivationCache(tempfile.mkdtemp())
    >>> _ = c.save("k1", {"resid_post.0": torch.ones(2, 3)}, torch.tensor([1, 1]), meta={"model": "m"})
    >>> c.load("k1")[0]["resid_post.0"].shape
    torch.Size([2, 3])
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else cache_root() / "activations"
        self.root.mkdir(parents=True, exist_ok=True)
        self.index_path = self.root / "index.parquet"

    def key(
        self, handle, prompts: list[str], sites: list[str], *, mode: str, chat: bool, dtype: torch.dtype
    ) -> str:
        template = handle.tokenizer.chat_template if chat and handle.has_chat_template else None
        fingerprint = handle.weights_id or _handle_fingerprint(handle)
        payload = {
            "v": FORMAT_VERSION,
            "model": fingerprint,
            "sites": sorted(sites),
            "prompts": list(prompts),
            "template": template,
            "mode": mode,
            "dtype": str(dtype),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def index(self) -> pd.DataFrame:
        if not self.index_path.is_file():
            return pd.DataFrame(columns=INDEX_COLUMNS)
        try:
            return pd.read_parquet(self.index_path)
        except Exception as err:  # a corrupt index is rebuilt empty, files are re-validated on use
            warnings.warn(
                f"Activation cache index {self.index_path} is unreadable ({err}); starting a new one.",
                stacklevel=2,
            )
            self.index_path.unlink(missing_ok=True)
            return pd.DataFrame(columns=INDEX_COLUMNS)

    def _write_index(self, df: pd.DataFrame) -> None:
        tmp = self.index_path.with_name(f"index.{os.getpid()}.tmp")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, self.index_path)

    def load(self, key: str) -> tuple[dict[str, Tensor], Tensor] | None:
        """Return ``(acts, lengths)`` for ``key``, or None (missing, or corrupt and therefore dropped)."""
        df = self.index()
        row = df[df["key"] == key]
        path = self.root / f"{key}.safetensors"
        if row.empty or not path.is_file():
            return None
        try:
            if sha256_file(path) != row.iloc[-1]["sha256"]:
                raise CacheCorruptError(f"checksum mismatch for {path.name}")
            tensors = load_file(path)
        except (CacheCorruptError, SafetensorError, OSError, ValueError) as err:
            warnings.warn(
                f"Corrupt activation cache file {path} ({err}); it was removed and will be recomputed.",
                stacklevel=2,
            )
            path.unlink(missing_ok=True)
            self._write_index(df[df["key"] != key])
            return None
        lengths = tensors.pop("__lengths__")
        return tensors, lengths

    def save(self, key: str, acts: dict[str, Tensor], lengths: Tensor, meta: dict | None = None) -> Path:
        path = self.root / f"{key}.safetensors"
        tmp = path.with_name(f"{key}.{os.getpid()}.tmp")
        save_file(
            {**{k: v.contiguous() for k, v in acts.items()}, "__lengths__": lengths.contiguous()},
            tmp,
            metadata={"format": str(FORMAT_VERSION)},
        )
        os.replace(tmp, path)
        meta = meta or {}
        row = {
            "key": key,
            "model": meta.get("model"),
            "mode": meta.get("mode"),
            "n_prompts": meta.get("n_prompts"),
            "sites": meta.get("sites"),
            "file": path.name,
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        df = self.index()
        df = (
            pd.concat([df[df["key"] != key], pd.DataFrame([row])], ignore_index=True)
            if len(df)
            else pd.DataFrame([row], columns=INDEX_COLUMNS)
        )
        self._write_index(df)
        return path


def _handle_fingerprint(handle) -> str:
    fp = getattr(handle, "_weights_fingerprint", None)
    if fp is None:
        fp = weights_fingerprint(handle.hf)
        handle._weights_fingerprint = fp
    return fp
