"""LoRA adapters shipped in this repository on top of a packaged base model, each pinned by SHA-256.

An adapter folder holds ``adapter_model.safetensors`` and ``adapter_config.json`` (``peft``'s format).
:func:`load_adapted` loads the base pack (verified as usual), checks every adapter file against its
pinned hash (a mismatch raises :class:`~probes.errors.PackHashMismatchError` naming the file; nothing is
loaded), applies the adapter with ``peft`` and merges it into the weights, so the handle is a plain
model of the base architecture (TransformerLens and nnsight views work unchanged).
``handle.pack_sha256`` is the base pack's hash and ``handle.adapter_sha256`` the adapter weights'.

>>> sorted(ADAPTERS)
['smollm2-135m-refusal']
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from probes.errors import PackHashMismatchError, UnknownModelError

__all__ = ["ADAPTERS", "AdapterSpec", "adapter_file_hashes", "load_adapted", "model_hashes", "verify_adapter"]

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
_HERE = Path(__file__).parent / "adapters"


@dataclass(frozen=True)
class AdapterSpec:
    """A named base pack + adapter folder, with the SHA-256 pinned for each adapter file."""

    name: str  # what load_model takes
    base: str  # the packaged base model (probes.packs)
    folder: Path  # the adapter folder
    sha256: dict[str, str]  # file name -> pinned SHA-256
    title: str  # what it is
    reported: dict[str, float]  # val numbers of its training run (harden.json), what tests reproduce

    @property
    def weights_sha256(self) -> str:
        return self.sha256["adapter_model.safetensors"]


ADAPTERS: dict[str, AdapterSpec] = {
    a.name: a
    for a in [
        AdapterSpec(
            name="smollm2-135m-refusal",
            base="smollm2-135m-instruct",
            folder=_HERE / "smollm2-135m-refusal",
            sha256={
                "adapter_model.safetensors": "34d906c9dff47373e4d9f1a584bf9dea0da4409990e174218bebda3c34528088",
                "adapter_config.json": "4daff419e2cd0e756510eee29f652e6dd2c003e82eb129b55109b3f5909bec48",
            },
            title="SmolLM2-135M-Instruct + refusal-hardening LoRA (analysis.refusal.harden)",
            reported={  # `sublens refusal harden` with its defaults (2-core CPU, 15 min of training)
                "refused_harmful_val": 39 / 39,  # 32 greedy tokens, phrase matcher
                "refused_harmless_val": 6 / 60,  # the first 60 harmless val prompts
                "lm_loss_change": 0.0086,  # held-out LM loss 3.858 -> 3.891
            },
        )
    ]
}


def adapter_file_hashes(folder: str | Path) -> dict[str, str]:
    """SHA-256 of each adapter file in ``folder`` (what :class:`AdapterSpec` pins)."""
    from probes.packs import sha256_file

    return {f: sha256_file(Path(folder) / f) for f in ADAPTER_FILES}


def get_adapter(name: str) -> AdapterSpec:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise UnknownModelError(f"Unknown adapter model {name!r}; known: {', '.join(ADAPTERS)}.") from None


def verify_adapter(spec: AdapterSpec, folder: str | Path | None = None) -> None:
    """Check every file of the adapter against its pin; raise naming the first missing or changed one."""
    from probes.packs import sha256_file

    folder = Path(folder) if folder is not None else spec.folder
    for name, pinned in spec.sha256.items():
        path = folder / name
        if not path.is_file():
            raise PackHashMismatchError(
                f"Adapter {spec.name!r}: {path} is missing. Restore it from the repository "
                f"(git checkout -- {path.name}) or retrain it with `sublens refusal harden`."
            )
        digest = sha256_file(path)
        if digest != pinned:
            raise PackHashMismatchError(
                f"Adapter {spec.name!r} is corrupted: {path} has SHA-256 {digest[:12]}…, the pinned file has "
                f"{pinned[:12]}…. It was not loaded. Restore the file from the repository, or pin a "
                "retrained adapter in probes/adapters.py."
            )


def load_adapted(
    name: str, *, dtype: torch.dtype = torch.float32, fetch: bool = True, progress: bool = True, folder=None
):
    """``(merged HF model, tokenizer, base pack SHA-256, adapter SHA-256)`` of adapter model ``name``."""
    from peft import PeftModel

    from probes.loading import load_hf

    spec = get_adapter(name)
    verify_adapter(spec, folder)  # before the base is loaded: a bad adapter costs nothing
    model, tok, _, base_sha = load_hf(spec.base, dtype=torch.float32, fetch=fetch, progress=progress)
    with warnings.catch_warnings():  # peft 0.21 calls a transformers method deprecated in 5.x
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        merged = PeftModel.from_pretrained(model, str(folder or spec.folder)).merge_and_unload()
    return merged.to(dtype).eval(), tok, base_sha, spec.weights_sha256


def model_hashes(handle) -> dict[str, str | None]:
    """What a run records about the weights: the base pack's and (if any) the adapter's SHA-256."""
    return {"pack_sha256": handle.pack_sha256, "adapter_sha256": handle.adapter_sha256}
