"""Logit lens: read residual-stream vectors out through the model's final norm and unembedding.

>>> from probes.testing import tiny_handle
>>> h = tiny_handle()
>>> logit_lens(h, torch.zeros(1, 32)).shape
torch.Size([1, 44])
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from probes.architecture import final_norm, unwrap
from probes.errors import InputError


@torch.no_grad()
def logit_lens(handle, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... vocab"]:
    """Logits the model would give if ``resid`` were the final residual stream."""
    if resid.shape[-1] != handle.info.d_model:
        raise InputError(f"resid has d_model={resid.shape[-1]}, the model has {handle.info.d_model}.")
    x = resid.to(handle.device, next(handle.hf.parameters()).dtype)
    logits = unwrap(handle.hf.get_output_embeddings())(final_norm(handle.hf)(x))
    cap = getattr(getattr(handle.hf.config, "text_config", handle.hf.config), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
