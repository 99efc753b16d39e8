"""Locate the Laundry List channel from data: **movers** (END attends to the missing item and writes it
into the answer logit) and **suppressors** (earlier heads whose END attends to the re-mentioned items),
then the suppressors' OV components that Q-compose with the movers (:func:`sender_components`: the
component scores and receiver null of :func:`analysis.channels.scan_channels`).

One recorded forward pass (:func:`record_end`) keeps, at each prompt's last token (END): every layer's
attention row, per-head ``z`` and ``resid_pre``, the final residual and the list items' logits. Prompts
are raw text (``chat=False``), right-padded, as :func:`analysis.tasks.evaluate.evaluate_laundry` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from analysis.circuits.clean_run import BRIDGE_ONLY
from probes.architecture import final_norm, norm_eps, norm_gain, norm_kind
from probes.errors import InputError
from probes.hooks import bridge_hooks
from probes.sites import head_out_from_z
from probes.weights import raw_attention_weights

__all__ = [
    "EndRecord",
    "LaundryBatch",
    "head_roles",
    "laundry_batch",
    "locate_channel",
    "record_end",
    "sender_components",
]


@dataclass
class LaundryBatch:
    """Tokenised Laundry List prompts with the token position of every list item and re-mention."""

    prompts: pd.DataFrame
    ids: Tensor  # [batch, pos], right-padded
    lengths: Tensor  # [batch]
    item_pos: Tensor  # [batch, n_max]: first-list token position of each item, list order; -1 padding
    remention_pos: Tensor  # [batch, n_max - 1]: token positions of the re-mentions; -1 padding

    @property
    def end(self) -> Tensor:
        return self.lengths - 1

    @property
    def answer_pos(self) -> Tensor:
        pos = torch.tensor(self.prompts["position"].to_numpy())
        return self.item_pos[torch.arange(len(pos)), pos]


def laundry_batch(handle, prompts: pd.DataFrame) -> LaundryBatch:
    """Find each item's token positions (first list, re-mention) in ``prompts`` (laundry_list_prompts)."""
    prompts = prompts.reset_index(drop=True)
    ids, lengths = handle.tokenize(list(prompts["prompt"]), chat=False)
    n_max = int(prompts["n_items"].max())
    item_pos = torch.full((len(prompts), n_max), -1, dtype=torch.long)
    rem_pos = torch.full((len(prompts), max(n_max - 1, 1)), -1, dtype=torch.long)
    for b, row in enumerate(prompts.itertuples()):
        toks = ids[b, : int(lengths[b])].tolist()
        hits = [[i for i, t in enumerate(toks) if t == tid] for tid in row.item_ids]
        want = [1 if k == row.position else 2 for k in range(row.n_items)]
        firsts = [h[0] for h in hits if h]
        if [len(h) for h in hits] != want or firsts != sorted(firsts):
            raise InputError(
                f"prompt {b} mentions its items in an unexpected way ({row.prompt!r}); each template must name "
                "every item only through {items} and {rest} (a template word equal to an item confuses this)."
            )
        item_pos[b, : row.n_items] = torch.tensor(firsts)
        rem = sorted(h[1] for h in hits if len(h) == 2)
        rem_pos[b, : len(rem)] = torch.tensor(rem)
    return LaundryBatch(prompts, ids, lengths, item_pos, rem_pos)


@dataclass
class EndRecord:
    """What one pass leaves at END (CPU, fp32): attention rows, ``z``, ``resid_pre``, final residual."""

    attn: dict[int, Tensor]  # layer -> [batch, n_heads, pos]
    z: dict[int, Tensor]  # layer -> [batch, n_heads, d_head]
    resid_pre: dict[int, Tensor]  # layer -> [batch, d_model]
    resid_final: Tensor  # [batch, d_model]
    item_logits: Tensor  # [batch, n_max]: logits of the list items (NaN padding)


def record_end(
    handle,
    batch: LaundryBatch,
    batch_size: int = 16,
    extra_hooks: Sequence | Callable[[slice, Tensor, int], Sequence] = (),
    progress: bool = False,
) -> EndRecord:
    """One forward pass (in chunks) recording :class:`EndRecord`; ``extra_hooks`` (``(site, fn)``, see
    :func:`probes.hooks.bridge_hooks`) run before recording: a list, or a function of each chunk
    ``(rows slice, lengths, padded width)`` returning one (per-prompt interventions); ``progress``
    shows a bar over prompts."""
    from tqdm.auto import tqdm

    n_layers, n_pos = handle.info.n_layers, batch.ids.shape[1]
    keys = ("attn", "z", "resid_pre")
    out: dict[str, dict[int, list[Tensor]]] = {k: {L: [] for L in range(n_layers)} for k in keys}
    finals, logits_items = [], []
    item_ids = _item_id_matrix(batch)
    bar = tqdm(total=len(batch.prompts), desc=f"laundry {handle.name}", unit="prompt", disable=not progress)
    for start in range(0, len(batch.prompts), batch_size):
        sl = slice(start, start + batch_size)
        ids, lengths = batch.ids[sl], batch.lengths[sl]
        width = int(lengths.max())
        ids = ids[:, :width]
        bidx, end = torch.arange(ids.shape[0]), lengths - 1

        def keep(what, L, fn):
            def hook(x, hook=None):
                out[what][L].append(fn(x.detach().float().cpu()))
                return x

            return hook

        site_hooks = []
        for L in range(n_layers):
            site_hooks.append((f"z.{L}", keep("z", L, lambda x, b=bidx, e=end: x[b, e])))
            site_hooks.append((f"resid_pre.{L}", keep("resid_pre", L, lambda x, b=bidx, e=end: x[b, e])))
        site_hooks.append((f"resid_post.{n_layers - 1}", lambda x, b=bidx, e=end: _append(finals, x, b, e)))
        pad = lambda x, b=bidx, e=end: torch.nn.functional.pad(x[b, :, e], (0, n_pos - x.shape[-1]))  # noqa: E731
        extra = extra_hooks(sl, lengths, width) if callable(extra_hooks) else extra_hooks
        fwd = bridge_hooks(handle, [*extra, *site_hooks])
        fwd += [(BRIDGE_ONLY["pattern"].format(L=L), keep("attn", L, pad)) for L in range(n_layers)]
        with torch.no_grad():
            logits = handle.tl.run_with_hooks(ids.to(handle.device), fwd_hooks=fwd)
        last = logits.detach().float().cpu()[bidx, end]
        ii = item_ids[sl]
        logits_items.append(torch.where(ii >= 0, last.gather(1, ii.clamp_min(0)), torch.nan))
        bar.update(ids.shape[0])
    bar.close()
    cat = {k: {L: torch.cat(v) for L, v in d.items()} for k, d in out.items()}
    return EndRecord(cat["attn"], cat["z"], cat["resid_pre"], torch.cat(finals), torch.cat(logits_items))


def _append(store: list, x: Tensor, bidx: Tensor, end: Tensor) -> Tensor:
    store.append(x.detach().float().cpu()[bidx, end])
    return x


def _item_id_matrix(batch: LaundryBatch) -> Tensor:
    n_max = batch.item_pos.shape[1]
    rows = [list(t) + [-1] * (n_max - len(t)) for t in batch.prompts["item_ids"]]
    return torch.tensor(rows, dtype=torch.long)


def _gather_rows(attn: Tensor, pos: Tensor) -> Tensor:
    """``attn[b, h, pos[b, j]]`` → ``[batch, n_heads, j]`` (0 where ``pos`` is -1)."""
    idx = pos.clamp_min(0)[:, None, :].expand(-1, attn.shape[1], -1)
    return attn.gather(2, idx) * (pos >= 0)[:, None, :]


def _logit_read(handle, batch: LaundryBatch, rec: EndRecord) -> Tensor:
    """``d(answer logit − mean other-item logit) / d(write)`` through the final norm frozen at END."""
    norm = final_norm(handle.hf)
    W = handle.hf.get_output_embeddings().weight.detach().float().cpu()
    ids = _item_id_matrix(batch)
    pos = torch.tensor(batch.prompts["position"].to_numpy())
    n = torch.tensor(batch.prompts["n_items"].to_numpy())
    others = (ids >= 0).float()
    others[torch.arange(len(pos)), pos] = 0
    dirs = (
        W[ids[torch.arange(len(pos)), pos]]
        - (others[..., None] * W[ids.clamp_min(0)]).sum(1) / (n - 1)[:, None]
    )
    x = rec.resid_final
    if norm_kind(norm) == "layernorm":
        x = x - x.mean(-1, keepdim=True)
        dirs = dirs - dirs.mean(-1, keepdim=True)  # centring is self-adjoint: read the centred write
    scale = (x.pow(2).mean(-1, keepdim=True) + norm_eps(norm)).sqrt()
    return dirs * norm_gain(norm).cpu() / scale


def head_roles(handle, batch: LaundryBatch, rec: EndRecord) -> pd.DataFrame:
    """Per head: END's attention to the answer, to each other list item (mean), to the re-mentions
    (total), the mover score (answer − mean other), and its direct logit attribution (answer − mean other)."""
    pos = torch.tensor(batch.prompts["position"].to_numpy())
    n = torch.tensor(batch.prompts["n_items"].to_numpy()).float()
    read = _logit_read(handle, batch, rec)
    rows = []
    for L in range(handle.info.n_layers):
        a_items = _gather_rows(rec.attn[L], batch.item_pos)  # [B, H, n_max]
        a_ans = a_items[torch.arange(len(pos)), :, pos]  # [B, H]
        a_other = (a_items.sum(-1) - a_ans) / (n - 1)[:, None]
        a_rem = _gather_rows(rec.attn[L], batch.remention_pos).sum(-1)
        W_O = raw_attention_weights(handle, L).W_O.float().cpu()
        dla = (head_out_from_z(rec.z[L], W_O) * read[:, None, :]).sum(-1)  # [B, H]
        for h in range(handle.info.n_heads):
            rows.append(
                (L, h, *(float(t[:, h].mean()) for t in (a_ans, a_other, a_rem, a_ans - a_other, dla)))
            )
    cols = ["layer", "head", "attn_answer", "attn_other_item", "attn_remention", "mover_score", "dla"]
    return pd.DataFrame(rows, columns=cols)


def locate_channel(roles: pd.DataFrame, n_movers: int = 3, n_suppressors: int = 4) -> dict[str, list[tuple]]:
    """Movers: the heads after layer 0 with the largest ``mover_score × dla`` (both positive);
    suppressors: the heads before the first mover's layer with the most attention to the re-mentioned
    items."""
    if not (
        isinstance(n_movers, int) and n_movers >= 1 and isinstance(n_suppressors, int) and n_suppressors >= 1
    ):
        raise InputError(f"need at least one mover and one suppressor, got {n_movers} and {n_suppressors}.")
    r = roles.assign(
        mover=np.where((roles.mover_score > 0) & (roles.dla > 0), roles.mover_score * roles.dla, 0)
    )
    movers = r[(r.mover > 0) & (r.layer > 0)].nlargest(n_movers, "mover")  # a mover reads earlier heads
    if movers.empty:
        raise InputError(
            "no head after layer 0 both attends to the missing item and writes it: no mover found."
        )
    first = int(movers["layer"].min())
    sup = r[r.layer < first].nlargest(n_suppressors, "attn_remention")
    return {
        "movers": [(int(a), int(b)) for a, b in movers[["layer", "head"]].to_numpy()],
        "suppressors": [(int(a), int(b)) for a, b in sup[["layer", "head"]].to_numpy()],
    }


def sender_components(
    scan: pd.DataFrame,
    suppressors: Sequence[tuple[int, int]],
    movers: Sequence[tuple[int, int]],
    per_head: int = 2,
) -> pd.DataFrame:
    """The suppressors' OV components that Q-compose most with the movers: for each suppressor, its
    ``per_head`` components with the largest ``z`` (against the receiver null) over the movers.

    ``scan``: a :func:`analysis.channels.scan_channels` table with mode ``Q``. Returns one row per chosen
    component: ``sender_layer, sender_head, component, singular_value, best_mover, score, z, p``.
    """
    if per_head < 1:
        raise InputError(f"components per suppressor must be >= 1, got {per_head}.")
    q = scan[scan["mode"] == "Q"]
    send = pd.MultiIndex.from_frame(q[["sender_layer", "sender_head"]].astype(int))
    recv = pd.MultiIndex.from_frame(q[["receiver_layer", "receiver_head"]].astype(int))
    q = q[send.isin(list(suppressors)) & recv.isin(list(movers))]
    if q.empty:
        raise InputError(
            "no Q-composition rows between the suppressors and the movers (movers must be later)."
        )
    best = q.sort_values("z", ascending=False).drop_duplicates(["sender_layer", "sender_head", "component"])
    top = best.groupby(["sender_layer", "sender_head"], sort=False).head(per_head)
    top = top.assign(
        best_mover=[f"L{a}.H{b}" for a, b in top[["receiver_layer", "receiver_head"]].to_numpy()]
    )
    cols = ["sender_layer", "sender_head", "component", "singular_value", "best_mover", "score", "z", "p"]
    return (
        top[cols]
        .sort_values(["sender_layer", "sender_head", "z"], ascending=[True, True, False])
        .reset_index(drop=True)
    )
