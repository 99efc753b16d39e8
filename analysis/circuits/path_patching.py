"""Path patching sender → receiver *query*: a sender's output change ``δ`` at END reaches only the
receiver head's query input (norm → ``W_Q`` → RoPE recomputed); keys, values and every other head keep
their clean values.

Computed analytically from the clean run's residual, rotated keys and RoPE tables, with the model's own
attention input norm module (:func:`probes.architecture.input_norm`, fp32 on CPU) and
:func:`probes.architecture.apply_rotary`, and checked against the model's attention pattern at ``δ = 0``
(raises if they disagree, e.g. an attention variant this does not reproduce). Inhibition metric of the
receiver: ``m = A(END→IO) − A(END→S1) − A(END→S2)``; a sender's effect is ``m(clean) − m(patched)``.
"""

from __future__ import annotations

import copy
import math

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.circuits.batch import IOIBatch
from analysis.circuits.clean_run import CleanRun, run_clean
from analysis.interventions import ComponentMeanAblation, ComponentRescale, HeadMeanAblation, PromptContext
from probes.architecture import apply_rotary, decoder_layers, input_norm
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.weights import raw_attention_weights

__all__ = ["component_vs_head", "inhibition_scores", "query_path_patch"]


def query_path_patch(
    handle: ModelHandle,
    run: CleanRun,
    batch: IOIBatch,
    receiver: tuple[int, int],
    deltas: Float[Tensor, "n batch d_model"],
    check_atol: float = 2e-3,
) -> Float[Tensor, "n batch pos"]:
    """Receiver's END attention row when ``deltas[i]`` is added to its *query* input only (at END).

    ``q = norm(x + δ) W_Q^r`` (the block's own input norm), rotated with the clean run's RoPE tables,
    scored against the clean run's rotated keys with scale ``1/√d_head``. ``run`` must hold
    ``rot_k``/``cos``/``sin`` of the receiver layer (``run_clean(..., key_layers=[L])``). At ``δ = 0`` the
    result is checked against the model's recorded pattern (``check_atol``); a mismatch raises.
    """
    L, r = receiver
    if L not in run.rot_k:
        raise InputError(f"run has no keys for layer {L}: call run_clean(..., key_layers=[{L}]).")
    # the block's own input norm (Gemma's 1 + γ included) as a frozen fp32 CPU copy
    norm = copy.deepcopy(input_norm(decoder_layers(handle.hf)[L]))
    norm = norm.to(device="cpu", dtype=torch.float32).requires_grad_(False)
    W_Q = raw_attention_weights(handle, L).W_Q[r].float().cpu()  # [d_model, d_head]
    keys = run.rot_k[L]  # [batch, pos, n_kv, d_head]
    k = keys[:, :, r // (handle.info.n_heads // keys.shape[2])]  # [batch, pos, d_head]
    causal = torch.arange(k.shape[1])[None, :] <= batch.end_pos[:, None]  # [batch, pos]

    def pattern(d: Float[Tensor, "n batch d_model"]) -> Float[Tensor, "n batch pos"]:
        q = apply_rotary(norm(run.resid_pre[L][None] + d) @ W_Q, run.cos[L][None], run.sin[L][None])
        s = torch.einsum("nbd,bpd->nbp", q, k) / math.sqrt(W_Q.shape[-1])
        return s.masked_fill(~causal[None], float("-inf")).softmax(-1)

    base = pattern(torch.zeros(1, *run.resid_pre[L].shape))[0]
    err = float((base - run.pattern_end[L][:, r, : k.shape[1]]).abs().max())
    if not err <= check_atol:
        raise InputError(
            f"analytic query path for head {L}.{r} does not reproduce the model's attention (max err {err:.3g}); "
            "this attention variant (biases, q/k norms, soft-capping, scaling) is not supported."
        )
    return pattern(deltas.float())


def _inhib_metric(pat: Float[Tensor, "... batch pos"], batch: IOIBatch) -> Float[Tensor, "... batch"]:
    """Per-prompt ``A(END→IO) − A(END→S1) − A(END→S2)`` of ``pat``."""
    b = torch.arange(pat.shape[-2])
    return pat[..., b, batch.io_pos] - pat[..., b, batch.s1_pos] - pat[..., b, batch.s2_pos]


def inhibition_scores(
    handle: ModelHandle,
    run: CleanRun,
    batch: IOIBatch,
    receiver: tuple[int, int],
    corrupted_run: CleanRun | None = None,
) -> pd.DataFrame:
    """Path-patch every earlier head into ``receiver``'s query (at END) and measure its inhibition role.

    ``δ_s = ref_s − y_s(END)`` with ``ref_s`` the head's mean write over all real tokens (mean ablation)
    or, given ``corrupted_run``, its write at END on the corrupted (ABC) prompts. Columns
    ``sender_layer, sender_head, receiver_layer, receiver_head, reference, metric_clean, metric_patched,
    effect`` (``effect = clean − patched``: positive when the sender helps the receiver prefer IO over S).
    """
    L_r, r = receiver
    senders = [(L, h) for L in range(L_r) for h in range(handle.info.n_heads)]
    if not senders:
        return pd.DataFrame()
    deltas = []
    for L, h in senders:
        y = run.head_out[L][:, h]
        ref = run.head_out_mean[L][h][None] if corrupted_run is None else corrupted_run.head_out[L][:, h]
        deltas.append(ref - y)
    pats = query_path_patch(handle, run, batch, receiver, torch.stack(deltas))
    clean = float(_inhib_metric(run.pattern_end[L_r][:, r], batch).mean())
    patched = _inhib_metric(pats, batch).mean(-1)
    df = pd.DataFrame(senders, columns=["sender_layer", "sender_head"])
    df["receiver_layer"], df["receiver_head"] = L_r, r
    df["reference"] = "mean" if corrupted_run is None else "abc"
    df["metric_clean"] = clean
    df["metric_patched"] = patched.numpy()
    df["effect"] = clean - df["metric_patched"]
    return df.sort_values("effect", ascending=False).reset_index(drop=True)


def component_vs_head(
    handle: ModelHandle,
    run: CleanRun,
    batch: IOIBatch,
    sender: tuple[int, int],
    receiver: tuple[int, int],
    direction: Float[Tensor, " d_model"],
    full_forward: bool = True,
) -> pd.DataFrame:
    """Receiver inhibition effect (drop of ``A(END→IO) − A(END→S1) − A(END→S2)``) of removing one write
    direction ``v`` of the sender vs ablating the whole sender head.

    Rows (``scope``, ``variant``): ``query_path`` (sender → receiver query only, analytic) and
    ``full`` (an ordinary forward pass with hook interventions, every path); ``zero``: component
    projected off (:class:`ComponentRescale` α=0) vs head output zeroed; ``mean``: component coordinate
    / head ``z`` set to its mean over all real tokens. Columns ``effect_component, effect_head,
    fraction`` (component / head) and, for ``full``, the logit-difference drops.
    """
    (Ls, s), (Lr, r) = sender, receiver
    v = (direction / direction.norm()).float().cpu()
    y = run.head_out[Ls][:, s]  # [batch, d]
    y_mean = run.head_out_mean[Ls][s]
    c = y @ v
    c_mean = float(y_mean @ v)
    deltas = torch.stack(
        [
            -c[:, None] * v,  # component removed (zero)
            -y,  # head zeroed
            (c_mean - c)[:, None] * v,  # component mean-ablated
            y_mean[None] - y,  # head mean-ablated
        ]
    )
    pats = query_path_patch(handle, run, batch, receiver, deltas)
    clean = float(_inhib_metric(run.pattern_end[Lr][:, r], batch).mean())
    eff = (clean - _inhib_metric(pats, batch).mean(-1)).tolist()
    rows = [
        ("query_path", "zero", eff[0], eff[1], math.nan, math.nan),
        ("query_path", "mean", eff[2], eff[3], math.nan, math.nan),
    ]
    if full_forward:
        ctx = PromptContext(batch.lengths, batch.ids.shape[1])
        ivs = {
            "comp_zero": ComponentRescale(Ls, s, v, 0.0),
            "head_zero": HeadMeanAblation(Ls, s, torch.zeros_like(run.z_mean[Ls][s])),
            "comp_mean": ComponentMeanAblation(Ls, s, v, c_mean),
            "head_mean": HeadMeanAblation(Ls, s, run.z_mean[Ls][s]),
        }
        res = {}
        for name, iv in ivs.items():
            out = run_clean(handle, batch, extra_hooks=iv.hooks(handle, ctx))
            res[name] = (
                clean - float(_inhib_metric(out.pattern_end[Lr][:, r], batch).mean()),
                float(run.logit_diff.mean() - out.logit_diff.mean()),
            )
        for variant in ("zero", "mean"):
            ec, lc = res[f"comp_{variant}"]
            eh, lh = res[f"head_{variant}"]
            rows.append(("full", variant, ec, eh, lc, lh))
    df = pd.DataFrame(
        rows,
        columns=[
            "scope",
            "variant",
            "effect_component",
            "effect_head",
            "logit_drop_component",
            "logit_drop_head",
        ],
    )
    df["fraction"] = df["effect_component"] / df["effect_head"]
    df.insert(0, "sender", f"{Ls}.{s}")
    df.insert(1, "receiver", f"{Lr}.{r}")
    df.attrs["metric_clean"] = clean
    return df
