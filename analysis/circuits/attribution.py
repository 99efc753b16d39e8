"""Which heads write the answer and where they look: direct logit attribution through the final norm
linearised at the clean run, END's attention to IO/S1/S2, and the name-mover pick combining the two.

>>> attention_to_positions(torch.tensor([[[0.1, 0.2, 0.5]]]), torch.tensor([2])).tolist()
[[0.5]]
"""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from analysis.circuits.batch import IOIBatch
from analysis.circuits.clean_run import CleanRun
from probes.architecture import final_norm, norm_eps, norm_gain, norm_kind
from probes.handle import ModelHandle

__all__ = [
    "attention_to_positions",
    "direct_logit_attribution",
    "dla_matrix",
    "head_attention",
    "mover_heads",
]


def _norm_parts(
    handle: ModelHandle,
) -> tuple[str, Float[Tensor, " d_model"], Float[Tensor, " d_model"], float]:
    """Final norm kind, effective gain γ, bias β (zeros if none) and eps (CPU, fp32)."""
    norm = final_norm(handle.hf)
    b = getattr(norm, "bias", None)
    bias = torch.zeros(handle.info.d_model) if b is None else b.detach().float().cpu()
    return norm_kind(norm), norm_gain(norm).cpu(), bias, norm_eps(norm)


def dla_matrix(
    handle: ModelHandle, run: CleanRun, batch: IOIBatch
) -> tuple[Float[Tensor, "batch n_comp"], list[dict], Float[Tensor, " batch"]]:
    """Per-prompt direct logit attribution of every component onto ``W_U[IO] − W_U[S]``.

    Returns ``(A, components, constant)``: ``A[b, c]`` the attribution of component ``c`` (rows of
    ``components``: ``kind`` embed/head/attn_bias/mlp, ``layer``, ``head``), and ``constant[b]`` the
    final norm's bias term (plus the unembedding bias). The norm's per-prompt scale
    ``s(x) = sqrt(mean(x²) + eps)`` (LayerNorm: also the mean) is frozen at the clean run, so the map
    is linear and ``A.sum(1) + constant`` is the logit difference computed from ``resid_final``.
    """
    kind, gain, beta, eps = _norm_parts(handle)
    W_U = handle.hf.get_output_embeddings()
    W = W_U.weight.detach().float().cpu()  # [vocab, d_model]
    dirs = W[batch.answer_ids] - W[batch.distractor_ids]  # [batch, d_model]
    x = run.resid_final
    if kind == "layernorm":
        x = x - x.mean(-1, keepdim=True)
    scale = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    read = dirs * gain / scale  # [batch, d_model]: d logit-diff / d component (frozen scale)

    def center(c: Tensor) -> Tensor:
        return c - c.mean(-1, keepdim=True) if kind == "layernorm" else c

    cols, comps = [], []
    cols.append((center(run.resid_pre[0]) * read).sum(-1))
    comps.append({"kind": "embed", "layer": -1, "head": -1})
    for L in range(handle.info.n_layers):
        ho = run.head_out[L]  # [batch, H, d]
        for h in range(handle.info.n_heads):
            cols.append((center(ho[:, h]) * read).sum(-1))
            comps.append({"kind": "head", "layer": L, "head": h})
        bias = run.attn_out[L] - ho.sum(1)
        cols.append((center(bias) * read).sum(-1))
        comps.append({"kind": "attn_bias", "layer": L, "head": -1})
        cols.append((center(run.mlp_out[L]) * read).sum(-1))
        comps.append({"kind": "mlp", "layer": L, "head": -1})
    const = (beta * dirs).sum(-1)
    ub = getattr(W_U, "bias", None)
    if ub is not None:
        ub = ub.detach().float().cpu()
        const = const + ub[batch.answer_ids] - ub[batch.distractor_ids]
    return torch.stack(cols, 1), comps, const


def direct_logit_attribution(handle: ModelHandle, run: CleanRun, batch: IOIBatch) -> pd.DataFrame:
    """Tidy DLA table: ``kind, layer, head, dla_mean, dla_std`` (one row per component, clean run).

    ``attrs``: ``logit_diff`` (true mean), ``dla_total`` (mean of the attributions plus the norm bias term),
    ``decomposition_error`` (max |resid_final − Σ components|, 0 for pre-norm models without post-norms).
    """
    A, comps, const = dla_matrix(handle, run, batch)
    df = pd.DataFrame(comps)
    df["dla_mean"] = A.mean(0).numpy()
    df["dla_std"] = A.std(0).numpy() if A.shape[0] > 1 else 0.0
    total = run.resid_pre[0] + sum(run.attn_out[L] + run.mlp_out[L] for L in range(handle.info.n_layers))
    df.attrs.update(
        logit_diff=float(run.logit_diff.mean()),
        dla_total=float((A.sum(1) + const).mean()),
        decomposition_error=float((total - run.resid_final).abs().max()),
    )
    return df


def attention_to_positions(
    pattern: Float[Tensor, "batch head key"], pos: Int[Tensor, " batch"]
) -> Float[Tensor, "batch head"]:
    """``pattern[b, h, pos[b]]``: attention weight of every head to one key position per prompt."""
    return pattern[torch.arange(pattern.shape[0]), :, pos]


def head_attention(run: CleanRun, batch: IOIBatch) -> pd.DataFrame:
    """Per head: mean attention from END to IO, S1, S2; ``attn_s = S1 + S2``; ``io_minus_s``."""
    rows = []
    for L, pat in run.pattern_end.items():
        a_io = attention_to_positions(pat, batch.io_pos).mean(0)
        a_s1 = attention_to_positions(pat, batch.s1_pos).mean(0)
        a_s2 = attention_to_positions(pat, batch.s2_pos).mean(0)
        for h in range(pat.shape[1]):
            rows.append((L, h, float(a_io[h]), float(a_s1[h]), float(a_s2[h])))
    df = pd.DataFrame(rows, columns=["layer", "head", "attn_io", "attn_s1", "attn_s2"])
    df["attn_s"] = df["attn_s1"] + df["attn_s2"]
    df["io_minus_s"] = df["attn_io"] - df["attn_s"]
    return df


def mover_heads(
    attention: pd.DataFrame, dla: pd.DataFrame, top_k: int = 3, min_gap: float = 0.05
) -> pd.DataFrame:
    """Name-mover-like heads: attend END→IO more than END→S (``io_minus_s > min_gap``) and write the IO
    name (positive DLA), ranked by DLA; the top ``top_k`` rows."""
    heads = dla[dla["kind"] == "head"][["layer", "head", "dla_mean"]]
    df = attention.merge(heads, on=["layer", "head"])
    df = df[(df["io_minus_s"] > min_gap) & (df["dla_mean"] > 0)]
    return df.sort_values("dla_mean", ascending=False).head(top_k).reset_index(drop=True)
