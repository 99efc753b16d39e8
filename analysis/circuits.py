"""Locate the IOI circuit's name-mover and S-inhibition heads from data, and check the weight channels.

Conventions (row vectors, as in :mod:`analysis.interventions`): a head's write at a position is
``y_h = z_h W_O^h`` (``head_out``); prompts are raw text (``chat=False``), right-padded; ``END`` is each
prompt's last real token, ``IO``/``S1``/``S2`` the positions of the indirect object and the two subject
mentions (found from the token ids of :func:`analysis.tasks.ioi.ioi_prompts`).

- :func:`direct_logit_attribution`: every component's write at ``END`` (embedding, each head, each
  layer's attention bias, each MLP) read out along ``W_U[IO] − W_U[S]`` through the final norm
  **linearised at the clean run**: the norm's per-prompt scale ``s(x) = sqrt(mean(x²) + eps)`` (LayerNorm:
  also the mean) is frozen, so the map is linear and the attributions (plus the norm's bias term) sum to
  the true logit difference exactly (up to float error).
- :func:`head_attention`: attention weight from ``END`` to ``IO``, ``S1``, ``S2`` of every head.
- :func:`head_ablation_effects`: logit-difference change when one head's ``z`` is replaced by its mean
  over all real tokens of a reference set (mean ablation), or by its value on corrupted ABC prompts at
  the same position (activation patching).
- :func:`query_path_patch` / :func:`inhibition_scores`: path patching sender → receiver *query*: the
  sender's output change ``δ`` at ``END`` is added only to the residual input of the receiver head's
  query (norm → ``W_Q`` → RoPE recomputed), keys, values and every other head untouched. Computed
  analytically from the clean run's residual, rotated keys and RoPE tables, and checked against the
  model's own attention pattern at ``δ = 0`` (raises if they disagree, e.g. an architecture whose
  attention this does not reproduce). Inhibition score of a sender: ``m(clean) − m(patched)`` with
  ``m = mean_prompts[A_r(END→IO) − A_r(END→S1) − A_r(END→S2)]``.
- :func:`sender_ranks`: rank senders of a receiver by their best component's Q-mode z
  (:func:`analysis.channels.scan_channels` output).
- :func:`component_vs_head`: mover inhibition effect of removing one OV component of a sender vs
  ablating the whole sender head (query path and full forward, zero and mean variants).

>>> attention_to_positions(torch.tensor([[[0.1, 0.2, 0.5]]]), torch.tensor([2])).tolist()
[[0.5]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from analysis.interventions import ComponentMeanAblation, ComponentRescale, HeadMeanAblation, _Context
from analysis.tasks.ioi import ioi_names
from probes.architecture import decoder_layers, final_norm, input_norm, norm_kind
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.hooks import bridge_hooks
from probes.weights import attention_input_gain, raw_attention_weights

__all__ = [
    "CleanRun",
    "IOIBatch",
    "abc_prompts",
    "attention_to_positions",
    "component_vs_head",
    "direct_logit_attribution",
    "dla_matrix",
    "head_ablation_effects",
    "head_attention",
    "inhibition_scores",
    "ioi_batch",
    "mover_heads",
    "query_path_patch",
    "run_clean",
    "sender_ranks",
]

# ------------------------------------------------------------------------------------------ prompts


@dataclass
class IOIBatch:
    """Tokenised IOI prompts with the positions of END, IO, S1 and S2 (one entry per prompt)."""

    prompts: pd.DataFrame
    ids: Int[Tensor, "batch pos"]
    lengths: Int[Tensor, " batch"]
    io_pos: Int[Tensor, " batch"]
    s1_pos: Int[Tensor, " batch"]
    s2_pos: Int[Tensor, " batch"]

    @property
    def end_pos(self) -> Tensor:
        return self.lengths - 1

    @property
    def answer_ids(self) -> Tensor:
        return torch.tensor([int(x) for x in self.prompts["answer_id"]], dtype=torch.long)

    @property
    def distractor_ids(self) -> Tensor:
        return torch.tensor([int(x) for x in self.prompts["distractor_id"]], dtype=torch.long)


def ioi_batch(handle: ModelHandle, prompts: pd.DataFrame, chat: bool = False) -> IOIBatch:
    """Tokenise ``prompts`` (from ``ioi_prompts``) and locate IO (once) and S (twice) by token id."""
    for col in ("prompt", "answer_id", "distractor_id"):
        if col not in prompts.columns:
            raise InputError(f"prompts must come from ioi_prompts; missing column {col!r}.")
    prompts = prompts.reset_index(drop=True)
    ids, lengths = handle.tokenize(list(prompts["prompt"]), chat=chat)
    io, s1, s2 = [], [], []
    for b, (a, d) in enumerate(zip(prompts["answer_id"], prompts["distractor_id"], strict=True)):
        row = ids[b, : int(lengths[b])]
        pio = (row == int(a)).nonzero().flatten().tolist()
        ps = (row == int(d)).nonzero().flatten().tolist()
        if len(pio) != 1 or len(ps) != 2:
            raise InputError(
                f"prompt {b} ({prompts['prompt'][b]!r}) must hold the IO token once and the S token twice; "
                f"found {len(pio)} and {len(ps)}."
            )
        io.append(pio[0])
        s1.append(ps[0])
        s2.append(ps[1])
    t = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    return IOIBatch(prompts, ids, lengths, t(io), t(s1), t(s2))


def abc_prompts(prompts: pd.DataFrame, tokenizer, seed: int = 0) -> pd.DataFrame:
    """Corrupted copies of IOI prompts: the second subject mention S2 becomes a third name C.

    Same token count and positions (names are single tokens), no repeated name: the reference
    distribution of Wang et al.'s path patching (``IO S ... C``). ``distractor``/``distractor_id`` stay S.
    """
    pool = ioi_names(tokenizer)
    rng = np.random.default_rng(seed)
    out = prompts.reset_index(drop=True).copy()
    new = []
    for p, io, s in zip(out["prompt"], out["answer"], out["distractor"], strict=True):
        choices = [n for n in pool if n not in (io, s)]
        c = choices[int(rng.integers(len(choices)))]
        head, sep, tail = p.rpartition(f" {s}")
        if not sep:
            raise InputError(f"subject {s!r} not found in prompt {p!r}.")
        new.append(f"{head} {c}{tail}")
    out["prompt"] = new
    return out


# ------------------------------------------------------------------------------------------ forward pass


@dataclass
class CleanRun:
    """What one forward pass leaves for the analyses (values at END unless said otherwise; CPU, fp32)."""

    logit_diff: Float[Tensor, " batch"]  # logit(IO) − logit(S) at END
    pattern_end: dict[int, Tensor]  # layer -> [batch, n_heads, pos]: attention row of END
    resid_pre: dict[int, Tensor]  # layer -> [batch, d_model]
    head_out: dict[int, Tensor]  # layer -> [batch, n_heads, d_model]
    attn_out: dict[int, Tensor]  # layer -> [batch, d_model] (incl. b_O)
    mlp_out: dict[int, Tensor]  # layer -> [batch, d_model]
    resid_final: Tensor  # [batch, d_model]: last layer's resid_post
    head_out_mean: dict[int, Tensor]  # layer -> [n_heads, d_model]: mean over all real tokens
    z_mean: dict[int, Tensor]  # layer -> [n_heads, d_head]: mean over all real tokens
    rot_k: dict[int, Tensor] = field(default_factory=dict)  # layer -> [batch, pos, n_kv, d_head]
    cos: dict[int, Tensor] = field(default_factory=dict)  # layer -> [batch, rot_dim] at END
    sin: dict[int, Tensor] = field(default_factory=dict)


def run_clean(
    handle: ModelHandle,
    batch: IOIBatch,
    key_layers: Sequence[int] = (),
    extra_hooks: Sequence[tuple[str, Callable]] = (),
) -> CleanRun:
    """One forward pass recording what every analysis here needs.

    ``key_layers``: layers whose rotated keys and RoPE tables are kept (receivers for
    :func:`query_path_patch`). ``extra_hooks``: site-named hooks (e.g. from an intervention's ``hooks``)
    applied before recording, so the record is *after* the intervention.
    """
    info = handle.info
    n_layers, n_heads = info.n_layers, info.n_heads
    ids, lengths = batch.ids, batch.lengths
    bidx = torch.arange(ids.shape[0])
    end = batch.end_pos
    real = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).float()  # [batch, pos]
    n_real = real.sum()
    rec: dict[str, Tensor] = {}
    W_O = {L: raw_attention_weights(handle, L).W_O.float().cpu() for L in range(n_layers)}
    z_mean: dict[int, Tensor] = {}

    def at_end(x: Tensor) -> Tensor:
        return x.detach().float().cpu()[bidx, end]

    def keep(name: str, fn=at_end):
        def hook(x: Tensor, hook=None) -> Tensor:
            rec[name] = fn(x)
            return x

        return hook

    def z_hook(L: int):
        def hook(x: Tensor, hook=None) -> Tensor:
            z = x.detach().float().cpu()
            z = z.reshape(*z.shape[:2], n_heads, -1)
            z_mean[L] = (z * real[:, :, None, None]).sum(dim=(0, 1)) / n_real
            rec[f"z.{L}"] = z[bidx, end]
            return x

        return hook

    def pattern_hook(x: Tensor, hook=None) -> Tensor:
        rec[hook.name] = x.detach().float().cpu()[bidx, :, end]  # [batch, head, key]
        return x

    fwd = bridge_hooks(handle, extra_hooks)
    for L in range(n_layers):
        fwd += [
            (f"blocks.{L}.hook_resid_pre", keep(f"resid_pre.{L}")),
            (f"blocks.{L}.attn.hook_z", z_hook(L)),
            (f"blocks.{L}.attn.hook_out", keep(f"attn_out.{L}")),
            (f"blocks.{L}.mlp.hook_out", keep(f"mlp_out.{L}")),
            (f"blocks.{L}.attn.hook_pattern", pattern_hook),
        ]
    fwd.append((f"blocks.{n_layers - 1}.hook_resid_post", keep("resid_final")))
    for L in key_layers:
        fwd += [
            (f"blocks.{L}.attn.hook_rot_k", keep(f"rot_k.{L}", lambda x: x.detach().float().cpu())),
            (f"blocks.{L}.attn.hook_cos", keep(f"cos.{L}", lambda x: _end_rows(x, bidx, end))),
            (f"blocks.{L}.attn.hook_sin", keep(f"sin.{L}", lambda x: _end_rows(x, bidx, end))),
        ]
    with torch.no_grad():
        logits = handle.tl.run_with_hooks(ids.to(handle.device), fwd_hooks=fwd)
    last = logits.detach().float().cpu()[bidx, end]
    ld = last[bidx, batch.answer_ids] - last[bidx, batch.distractor_ids]
    head_out = {L: torch.einsum("bhd,hdm->bhm", rec[f"z.{L}"], W_O[L]) for L in range(n_layers)}
    return CleanRun(
        logit_diff=ld,
        pattern_end={L: rec[f"blocks.{L}.attn.hook_pattern"] for L in range(n_layers)},
        resid_pre={L: rec[f"resid_pre.{L}"] for L in range(n_layers)},
        head_out=head_out,
        attn_out={L: rec[f"attn_out.{L}"] for L in range(n_layers)},
        mlp_out={L: rec[f"mlp_out.{L}"] for L in range(n_layers)},
        resid_final=rec["resid_final"],
        head_out_mean={L: torch.einsum("hd,hdm->hm", z_mean[L], W_O[L]) for L in range(n_layers)},
        z_mean=z_mean,
        rot_k={L: rec[f"rot_k.{L}"] for L in key_layers},
        cos={L: rec[f"cos.{L}"] for L in key_layers},
        sin={L: rec[f"sin.{L}"] for L in key_layers},
    )


def _end_rows(x: Tensor, bidx: Tensor, end: Tensor) -> Tensor:
    x = x.detach().float().cpu()
    if x.shape[0] == 1 and bidx.numel() > 1:
        x = x.expand(bidx.numel(), *x.shape[1:])
    return x[bidx, end]


# ------------------------------------------------------------------------------------------ attribution


def _norm_parts(handle: ModelHandle) -> tuple[str, Tensor, Tensor, float]:
    """Final norm kind, effective gain γ, bias β (zeros if none) and eps."""
    norm = final_norm(handle.hf)
    kind = norm_kind(norm)
    d = handle.info.d_model
    w = getattr(norm, "weight", None)
    gain = torch.ones(d) if w is None else w.detach().float().cpu().clone()
    if kind == "rms_offset":
        gain = 1.0 + gain
    b = getattr(norm, "bias", None)
    bias = torch.zeros(d) if b is None else b.detach().float().cpu()
    eps = float(getattr(norm, "eps", getattr(norm, "variance_epsilon", 1e-6)))
    return kind, gain, bias, eps


def dla_matrix(
    handle: ModelHandle, run: CleanRun, batch: IOIBatch
) -> tuple[Float[Tensor, "batch n_comp"], list[dict], Float[Tensor, " batch"]]:
    """Per-prompt direct logit attribution of every component onto ``W_U[IO] − W_U[S]``.

    Returns ``(A, components, constant)``: ``A[b, c]`` the attribution of component ``c`` (rows of
    ``components``: ``kind`` embed/head/attn_bias/mlp, ``layer``, ``head``), and ``constant[b]`` the
    final norm's bias term (plus the unembedding bias). With the norm scale frozen at the clean run,
    ``A.sum(1) + constant`` is the logit difference computed from ``resid_final`` (see module doc).
    """
    kind, gain, beta, eps = _norm_parts(handle)
    W_U = handle.hf.get_output_embeddings()
    W = W_U.weight.detach().float().cpu()  # [vocab, d_model]
    bidx = torch.arange(batch.ids.shape[0])
    dirs = W[batch.answer_ids] - W[batch.distractor_ids]  # [batch, d_model]
    x = run.resid_final
    if kind == "layernorm":
        xc = x - x.mean(-1, keepdim=True)
        scale = (xc.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    else:
        scale = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    read = dirs * gain / scale  # [batch, d_model]: d logit-diff / d component (frozen scale)

    def center(c: Tensor) -> Tensor:
        return c - c.mean(-1, keepdim=True) if kind == "layernorm" else c

    cols, comps = [], []
    emb = run.resid_pre[0]
    cols.append((center(emb) * read).sum(-1))
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
    del bidx
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


def attention_to_positions(pattern: Float[Tensor, "batch head key"], pos: Int[Tensor, " batch"]) -> Tensor:
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


def head_ablation_effects(
    handle: ModelHandle,
    batch: IOIBatch,
    run: CleanRun,
    heads: Sequence[tuple[int, int]] | None = None,
    corrupted: IOIBatch | None = None,
) -> pd.DataFrame:
    """Logit-difference effect of ablating each head (one forward pass per head).

    Without ``corrupted``: mean ablation, ``z_h`` ← its mean over every real token of ``batch``
    (``run.z_mean``) at every position. With ``corrupted`` (e.g. :func:`abc_prompts`, same positions):
    ``z_h`` ← its value on the corrupted prompt at the same position (activation patching).
    Columns ``layer, head, method, logit_diff_clean, logit_diff_ablated, effect`` (clean − ablated, so a
    head that helps IOI has a positive effect).
    """
    info = handle.info
    heads = [(L, h) for L in range(info.n_layers) for h in range(info.n_heads)] if heads is None else heads
    z_corr: dict[int, Tensor] = {}
    if corrupted is not None:
        if corrupted.ids.shape != batch.ids.shape:
            raise InputError("corrupted prompts must tokenise to the same shape as the clean ones.")
        layers = sorted({L for L, _ in heads})

        def grab(L):
            def hook(x, hook=None):
                z_corr[L] = x.detach().reshape(*x.shape[:2], info.n_heads, -1).clone()
                return x

            return hook

        with torch.no_grad():
            handle.tl.run_with_hooks(
                corrupted.ids.to(handle.device),
                fwd_hooks=[(f"blocks.{L}.attn.hook_z", grab(L)) for L in layers],
            )
    bidx = torch.arange(batch.ids.shape[0])
    end = batch.end_pos
    ans, dis = batch.answer_ids, batch.distractor_ids
    clean = float(run.logit_diff.mean())
    rows = []
    for L, h in heads:
        if corrupted is None:
            value = run.z_mean[L][h]

            def fn(z: Tensor, _v=value, _h=h) -> Tensor:
                z = z.clone()
                z[..., _h, :] = _v.to(z.device, z.dtype)
                return z

        else:

            def fn(z: Tensor, _L=L, _h=h) -> Tensor:
                z = z.clone()
                z[..., _h, :] = z_corr[_L][..., _h, :].to(z.dtype)
                return z

        with torch.no_grad():
            logits = handle.tl.run_with_hooks(
                batch.ids.to(handle.device), fwd_hooks=bridge_hooks(handle, [(f"z.{L}", fn)])
            )
        last = logits.float().cpu()[bidx, end]
        ld = float((last[bidx, ans] - last[bidx, dis]).mean())
        rows.append((L, h, "mean" if corrupted is None else "patch_abc", clean, ld, clean - ld))
    return pd.DataFrame(
        rows, columns=["layer", "head", "method", "logit_diff_clean", "logit_diff_ablated", "effect"]
    )


def mover_heads(
    attention: pd.DataFrame, dla: pd.DataFrame, top_k: int = 3, min_gap: float = 0.05
) -> pd.DataFrame:
    """Name-mover-like heads: attend END→IO more than END→S (``io_minus_s > min_gap``) and write the IO
    name (positive DLA), ranked by DLA; the top ``top_k`` rows."""
    heads = dla[dla["kind"] == "head"][["layer", "head", "dla_mean"]]
    df = attention.merge(heads, on=["layer", "head"])
    df = df[(df["io_minus_s"] > min_gap) & (df["dla_mean"] > 0)]
    return df.sort_values("dla_mean", ascending=False).head(top_k).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ path patching


def _rotate(q: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Llama/NeoX rotary (rotate_half) on the first ``cos.shape[-1]`` dims of ``q``."""
    r = cos.shape[-1]
    qr, qp = q[..., :r], q[..., r:]
    x1, x2 = qr[..., : r // 2], qr[..., r // 2 :]
    rot = torch.cat([-x2, x1], dim=-1)
    return torch.cat([qr * cos + rot * sin, qp], dim=-1)


def query_path_patch(
    handle: ModelHandle,
    run: CleanRun,
    batch: IOIBatch,
    receiver: tuple[int, int],
    deltas: Float[Tensor, "n batch d_model"],
    check_atol: float = 2e-3,
) -> Float[Tensor, "n batch pos"]:
    """Receiver's END attention row when ``deltas[i]`` is added to its *query* input only (at END).

    ``q = RMSNorm(x + δ) W_Q^r`` (γ folded), rotated with the clean run's RoPE tables, scored against the
    clean run's rotated keys with scale ``1/√d_head``. ``run`` must hold ``rot_k``/``cos``/``sin`` of the
    receiver layer (``run_clean(..., key_layers=[L])``). At ``δ = 0`` the result is checked against the
    model's recorded pattern (``check_atol``); a mismatch raises (unsupported attention variant).
    """
    L, r = receiver
    if L not in run.rot_k:
        raise InputError(f"run has no keys for layer {L}: call run_clean(..., key_layers=[{L}]).")
    info = handle.info
    block_norm_kind = norm_kind(input_norm(decoder_layers(handle.hf)[L]))
    if block_norm_kind == "layernorm":
        raise InputError("query_path_patch supports RMSNorm models (Llama/Qwen/SmolLM) only.")
    eps = float(handle.hf.config.get_text_config().rms_norm_eps)
    gain = attention_input_gain(handle, L).float().cpu()
    W_Q = raw_attention_weights(handle, L).W_Q[r].float().cpu()  # [d_model, d_head]
    keys = run.rot_k[L]  # [batch, pos, n_kv, d_head]
    kv = r // (info.n_heads // keys.shape[2])
    k = keys[:, :, kv]  # [batch, pos, d_head]
    n_pos = k.shape[1]
    causal = torch.arange(n_pos)[None, :] <= batch.end_pos[:, None]  # [batch, pos]

    def pattern(d: Tensor) -> Tensor:  # d: [n, batch, d_model]
        x = run.resid_pre[L][None] + d
        xn = x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * gain
        q = _rotate(xn @ W_Q, run.cos[L][None], run.sin[L][None])  # [n, batch, d_head]
        s = torch.einsum("nbd,bpd->nbp", q, k) / math.sqrt(W_Q.shape[-1])
        s = s.masked_fill(~causal[None], float("-inf"))
        return s.softmax(-1)

    base = pattern(torch.zeros(1, *run.resid_pre[L].shape))[0]
    err = float((base - run.pattern_end[L][:, r, :n_pos]).abs().max())
    if not err <= check_atol:
        raise InputError(
            f"analytic query path for head {L}.{r} does not reproduce the model's attention (max err {err:.3g}); "
            "this attention variant (biases, q/k norms, soft-capping, scaling) is not supported."
        )
    return pattern(deltas.float())


def _inhib_metric(pat: Tensor, batch: IOIBatch) -> Tensor:
    """Per-prompt ``A(END→IO) − A(END→S1) − A(END→S2)`` of ``pat`` ``[..., batch, pos]``."""
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
    ``sender_layer, sender_head, receiver_layer, receiver_head, metric_clean, metric_patched, effect``
    (``effect = clean − patched``: positive when the sender helps the receiver prefer IO over S).
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


# ------------------------------------------------------------------------------------------ weights vs data


def sender_ranks(scan: pd.DataFrame, receiver: tuple[int, int], mode: str = "Q") -> pd.DataFrame:
    """Senders of ``receiver`` ranked by their best component's z (``scan_channels`` output).

    Columns ``sender_layer, sender_head, component, score, z, rank`` (rank 1 = highest z).
    """
    sel = scan[
        (scan["receiver_layer"] == receiver[0])
        & (scan["receiver_head"] == receiver[1])
        & (scan["mode"] == mode)
    ]
    if sel.empty:
        raise InputError(f"scan has no {mode}-mode rows for receiver {receiver[0]}.{receiver[1]}.")
    best = sel.loc[sel.groupby(["sender_layer", "sender_head"], observed=True)["z"].idxmax().to_numpy()]
    best = best.sort_values("z", ascending=False).reset_index(drop=True)
    best["rank"] = np.arange(1, len(best) + 1)
    cols = ["sender_layer", "sender_head", "component", "score", "z", "rank"]
    return best[cols].astype({"sender_layer": int, "sender_head": int, "component": int})


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
        ctx = _Context(batch.lengths, batch.ids.shape[1])
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
