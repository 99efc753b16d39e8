"""Next-token logits at each prompt's last position, batched and right-padded.

>>> from probes.testing import tiny_handle
>>> next_token_logits(tiny_handle(), ["the cat sat", "a dog"], progress=False).shape
torch.Size([2, 44])
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from probes.errors import InputError


@torch.no_grad()
def next_token_logits(
    handle, prompts: list[str], *, chat: bool = False, batch_size: int = 16, progress: bool = True
) -> Float[Tensor, "batch vocab"]:
    """Logits for the token after each prompt (raw text by default: tasks are completions).

    Runs ``handle.hf`` (so weight edits applied to the handle take effect); returned on CPU, fp32.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}.")
    from tqdm.auto import tqdm

    ids, lengths = handle.tokenize(prompts, chat=chat)
    order = sorted(range(len(prompts)), key=lambda i: int(lengths[i]))
    out = torch.empty(len(prompts), handle.hf.config.get_text_config().vocab_size)
    bar = tqdm(total=len(prompts), desc=f"logits {handle.name}", unit="prompt", disable=not progress)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch_len = lengths[idx]
        logits = handle.hf(ids[idx, : int(batch_len.max())].to(handle.device)).logits
        out[idx] = logits[torch.arange(len(idx)), batch_len - 1].float().cpu()
        bar.update(len(idx))
    bar.close()
    if not torch.isfinite(out).all():
        raise InputError(f"{handle.name} produced NaN/inf logits; check the dtype and any applied edits.")
    return out
