"""What one head's OV components do: the tokens they read and write, and the effect of removing them.

A head's OV circuit (LayerNorm folded, :func:`probes.weights.head_ov_svd`) is ``Σ_i s_i u_i v_iᵀ``;
component ``i`` reads the residual stream along ``u_i`` and writes along ``v_i`` (0 = largest ``s_i``).
Removal is the hook :class:`analysis.interventions.ComponentRescale` with ``α = 0`` (the head's output
projected off ``v_i``); the model's weights are never touched.

>>> from probes.testing import tiny_handle
>>> h = tiny_handle()
>>> component_tokens(h, 1, 2, (0, 1), k=3)[["component", "writes"]].shape
(2, 2)
"""

from __future__ import annotations

import pandas as pd
import torch

from analysis.interventions import ComponentRescale, run_with_interventions
from analysis.tasks.scoring import logit_difference
from probes.architecture import unwrap
from probes.handle import ModelHandle
from probes.weights import head_ov_svd

__all__ = ["component_tokens", "removal_effects"]


def _token_strings(tokenizer, ids) -> list[str]:
    return [repr(tokenizer.decode([int(i)])) for i in ids]


@torch.no_grad()
def component_tokens(
    handle: ModelHandle, layer: int, head: int, components: tuple[int, ...], k: int = 5
) -> pd.DataFrame:
    """Top ``k`` tokens each OV component writes (``W_U v_i``) and reads (``W_E u_i``).

    One row per component: ``component, singular_value, writes, reads`` (token reprs joined by ", ").
    The SVD's joint sign makes both lists the tokens the component moves (a token read along ``+u_i``
    is written along ``+v_i``).
    """
    U, S, V = head_ov_svd(handle, layer, head)
    W_E = unwrap(handle.hf.get_input_embeddings()).weight.float()  # [d_vocab, d_model]
    W_U = unwrap(handle.hf.get_output_embeddings()).weight.float()  # [d_vocab, d_model]
    rows = []
    for c in components:
        write = W_U @ V[:, c].to(W_U)  # [d_vocab]
        read = W_E @ U[:, c].to(W_E)  # [d_vocab]
        rows.append(
            {
                "component": int(c),
                "singular_value": float(S[c]),
                "writes": ", ".join(_token_strings(handle.tokenizer, write.topk(k).indices)),
                "reads": ", ".join(_token_strings(handle.tokenizer, read.topk(k).indices)),
            }
        )
    return pd.DataFrame(rows)


def removal_effects(
    handle: ModelHandle,
    prompt: str,
    answer_id: int,
    distractor_id: int,
    layer: int,
    head: int,
    components: tuple[int, ...],
) -> pd.DataFrame:
    """Logit difference (answer − distractor) at ``prompt``'s last token, clean and with each of
    ``components`` of head ``(layer, head)`` removed on its own (raw text, no chat template).

    One row per component: ``component, logit_diff_clean, logit_diff_removed, effect`` (removed − clean).
    """

    def diff(interventions) -> float:
        run = run_with_interventions(handle, [prompt], interventions)
        logits = run.last_logits().float().numpy()  # [1, d_vocab]
        return float(logit_difference(logits, [answer_id], [distractor_id])[0])

    clean = diff([])
    rows = [
        {
            "component": int(c),
            "logit_diff_clean": clean,
            "logit_diff_removed": diff([ComponentRescale.from_component(handle, layer, head, c, 0.0)]),
        }
        for c in components
    ]
    out = pd.DataFrame(rows)
    out["effect"] = out["logit_diff_removed"] - out["logit_diff_clean"]
    return out
