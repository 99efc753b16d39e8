"""Mean next-token cross-entropy of a model on raw text (a side-effect check for weight edits).

Texts are tokenized without a chat template (the tokenizer's own specials, e.g. BOS, are added),
truncated to ``max_tokens`` tokens each (at most the model's context length), right-padded and batched; padded positions are masked out of
both the attention and the loss. The result is the token-weighted mean over every predicted token of
every text (nats per token).

>>> from probes.testing import tiny_handle
>>> round(lm_loss(tiny_handle(), ["the cat sat on the mat", "a dog"]), 4) > 0
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from probes.errors import InputError

__all__ = ["lm_loss", "lm_token_losses"]


@torch.no_grad()
def lm_token_losses(handle, texts: list[str], *, max_tokens: int = 256, batch_size: int = 8) -> torch.Tensor:
    """Per-token cross-entropies (nats, fp32, CPU) of every predicted token of every text, concatenated.

    Runs ``handle.hf``, so weight edits applied to the handle take effect.
    """
    if max_tokens < 2:
        raise InputError(f"max_tokens must be >= 2 (one token of context, one to predict), got {max_tokens}.")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}.")
    n_ctx = handle.info.n_ctx
    if n_ctx is not None and max_tokens > n_ctx:
        max_tokens = n_ctx  # a model with learned positions cannot see past its context
    ids, lengths = handle.tokenize(texts, chat=False, truncate_to=max_tokens)
    if int(lengths.max()) < 2:
        raise InputError("every text is a single token: give texts with at least two tokens to score.")
    out: list[torch.Tensor] = []
    for start in range(0, len(texts), batch_size):
        batch_len = lengths[start : start + batch_size]
        width = int(batch_len.max())
        batch = ids[start : start + batch_size, :width]
        mask = torch.arange(width)[None, :] < batch_len[:, None]
        logits = handle.hf(
            input_ids=batch.to(handle.device), attention_mask=mask.long().to(handle.device)
        ).logits.float()
        losses = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            batch[:, 1:].reshape(-1).to(logits.device),
            reduction="none",
        ).view(batch.shape[0], width - 1)
        out.append(losses.cpu()[mask[:, 1:]])
    flat = torch.cat(out)
    if not torch.isfinite(flat).all():
        raise InputError(f"{handle.name} produced NaN/inf losses; check the dtype and any applied edits.")
    return flat


def lm_loss(handle, texts: list[str], *, max_tokens: int = 256, batch_size: int = 8) -> float:
    """Mean next-token cross-entropy (nats/token) of ``handle`` on raw ``texts`` (see module docstring)."""
    return float(lm_token_losses(handle, texts, max_tokens=max_tokens, batch_size=batch_size).mean())
