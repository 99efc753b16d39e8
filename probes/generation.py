"""Batched greedy generation with residual-stream edits (direction ablation / addition) as module hooks.

Generation needs the KV cache to be affordable, so edits are plain PyTorch forward hooks on the HF
modules (the embedding, each block's attention output projection and MLP, or a block's output)
rather than TransformerLens bridge hooks. They apply at every position of every forward pass while
the context manager is open, during generation included.

- :func:`ablate_direction`: ``x ← x − (x·r̂) r̂`` on the embedding output and on every attention and
  MLP output, so the residual stream has no component along ``r̂`` anywhere (Arditi et al.'s
  directional ablation).
- :func:`add_to_residual`: ``resid_post.L ← resid_post.L + v`` at every position.

>>> from probes.testing import tiny_handle
>>> h = tiny_handle()
>>> r = torch.nn.functional.normalize(torch.randn(32), dim=0)
>>> ids, _ = h.tokenize(["the cat sat"], chat=False)
>>> with ablate_direction(h, r), torch.no_grad():
...     hs = h.hf(ids, output_hidden_states=True).hidden_states
>>> max(float((x @ r).abs().max()) for x in hs[:-1]) < 1e-5
True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from jaxtyping import Float
from torch import Tensor

from probes.architecture import decoder_layers, mlp, out_proj
from probes.errors import InputError
from probes.handle import ModelHandle

__all__ = ["ablate_direction", "add_to_residual", "generate_batch"]


def _unit(handle: ModelHandle, direction: Tensor) -> Tensor:
    d = handle.info.d_model
    if not isinstance(direction, Tensor) or direction.shape != (d,) or not direction.is_floating_point():
        raise InputError(
            f"direction must be a float tensor [d_model={d}], got {getattr(direction, 'shape', direction)}."
        )
    n = direction.norm()
    if not torch.isfinite(n) or n == 0:
        raise InputError("direction has zero or non-finite norm; pass a non-zero vector.")
    return (direction / n).to(handle.device, next(handle.hf.parameters()).dtype)


def _map_output(fn):
    def hook(module, args, output):
        if isinstance(output, tuple):
            return (fn(output[0]), *output[1:])
        return fn(output)

    return hook


@contextmanager
def ablate_direction(handle: ModelHandle, direction: Float[Tensor, " d_model"]) -> Iterator[None]:
    """Project ``direction`` (normalised here) out of everything written into the residual stream."""
    r = _unit(handle, direction)

    def project_out(x: Tensor) -> Tensor:
        return x - (x @ r)[..., None] * r

    modules = [handle.hf.get_input_embeddings()]
    for layer in decoder_layers(handle.hf):
        modules += [out_proj(layer), mlp(layer)]
    handles = [m.register_forward_hook(_map_output(project_out)) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def add_to_residual(handle: ModelHandle, vector: Float[Tensor, " d_model"], layer: int) -> Iterator[None]:
    """Add ``vector`` to ``resid_post.<layer>`` (the block's output) at every position."""
    layer = handle.check_layer(layer)
    d = handle.info.d_model
    if not isinstance(vector, Tensor) or vector.shape != (d,):
        raise InputError(f"vector must be a tensor [d_model={d}], got {getattr(vector, 'shape', vector)}.")
    v = vector.to(handle.device, next(handle.hf.parameters()).dtype)
    h = decoder_layers(handle.hf)[layer].register_forward_hook(_map_output(lambda x: x + v))
    try:
        yield
    finally:
        h.remove()


@torch.no_grad()
def generate_batch(
    handle: ModelHandle,
    prompts: list[str],
    max_new_tokens: int = 24,
    *,
    batch_size: int = 16,
    chat: bool = True,
) -> list[str]:
    """Greedy continuations (left-padded batches, KV cache), decoded without special tokens.

    Edits opened with :func:`ablate_direction` / :func:`add_to_residual` apply. As in
    :meth:`ModelHandle.generate`, the KV cache is off once ``handle.tl`` has been built.
    """
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}.")
    ids, lengths = handle.tokenize(prompts, chat=chat, reserve=max_new_tokens)  # validates; right-padded
    tok = handle.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: int(lengths[i]))
    out: list[str | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = int(lengths[idx].max())
        batch = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            n = int(lengths[i])
            batch[row, width - n :] = ids[i, :n]
            mask[row, width - n :] = 1
        gen = handle.hf.generate(
            batch.to(handle.device),
            attention_mask=mask.to(handle.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            use_cache="tl" not in handle.__dict__,
        )
        for row, i in enumerate(idx):
            out[i] = tok.decode(gen[row, width:], skip_special_tokens=True)
    return [str(s) for s in out]
