"""The Talking-Heads model organism: a tiny GPT-2 trained in-repo on synthetic IOI + Laundry List prompts.

``load_organism()`` returns a :class:`probes.handle.ModelHandle` over the packaged weights in
:data:`ORGANISM_DIR` (safetensors only, a few MB, loads in well under a second). The architecture is
HF ``GPT2LMHeadModel`` with learned absolute positions, so static QK/OV composition scores are exact
(no rotary position dependence). The tokenizer is word-level: every IOI name, Laundry item and
template word is one token, and ``<bos>`` is prepended when encoding with special tokens (as in
training). Retrain with ``python -m analysis.tasks.train_organism``; see ``probes/organism/README.md`` for the
data, the held-out evaluation and the measured metrics (also in ``ORGANISM_DIR / "metrics.json"``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from probes.errors import InputError
from probes.handle import ModelHandle

__all__ = ["ORGANISM_DIR", "ORGANISM_NAME", "load_organism", "organism_metrics"]

ORGANISM_DIR = Path(__file__).resolve().parent / "weights"
ORGANISM_NAME = "talking-heads-organism"
_FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json")


def _check_folder(folder: Path) -> None:
    missing = [f for f in _FILES if not (folder / f).is_file()]
    if missing:
        raise InputError(
            f"no model organism in {folder} (missing {', '.join(missing)}); "
            "train one with `python -m analysis.tasks.train_organism --out DIR`."
        )


def load_organism(path: str | Path | None = None, *, dtype: torch.dtype = torch.float32) -> ModelHandle:
    """Load the model organism (default: the packaged weights) as a ``ModelHandle``.

    Weights are read from ``model.safetensors`` only (``use_safetensors=True``; no pickle), offline.

    >>> h = load_organism()
    >>> h.info.architecture, h.info.positional, h.tokenizer.encode(" Mary", add_special_tokens=False) != []
    ('GPT2LMHeadModel', 'learned absolute', True)
    """
    from transformers import AutoTokenizer, GPT2LMHeadModel

    folder = Path(path) if path is not None else ORGANISM_DIR
    _check_folder(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = GPT2LMHeadModel.from_pretrained(
        str(folder), use_safetensors=True, local_files_only=True, dtype=dtype
    ).eval()
    return ModelHandle(model, tokenizer, name=ORGANISM_NAME, source="local")


def organism_metrics(path: str | Path | None = None) -> dict:
    """The ``metrics.json`` written by the training run (held-out IOI and Laundry List scores)."""
    folder = Path(path) if path is not None else ORGANISM_DIR
    _check_folder(folder)
    return json.loads((folder / "metrics.json").read_text())
