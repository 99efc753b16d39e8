"""GCG-style discrete optimiser over an adversarial suffix placed right after the user's instruction.

The prompt is split into three token slots: ``prefix`` (chat template up to and including the
instruction), the optimised ``suffix`` (``n_tokens`` ids) and ``post`` (end of the user turn plus the
assistant header). An objective (see :mod:`analysis.rerouting.losses`) says which activations it needs:
residual streams at some layers (the forward stops after the last of them: a forward hook raises once
that block has run, which is exact), attention patterns at some layers (eager attention is switched on
for that forward only), or full logits with extra target ids appended (GCG).

One step (:func:`gcg_step`): one-hot gradient of the loss at the best buffer entry, the top-k tokens per
position by negative gradient, ``search_width`` candidates that each swap ``n_replace`` random positions,
filtered (no special tokens, optional ASCII only, decode→encode stable), evaluated in batches; the buffer
keeps the best ``buffer_size`` distinct suffixes. With ``cache_prefix`` (default) the prefix's keys and
values are computed once per prompt (:func:`probes.architecture.prefix_kv`), so the gradient and every
candidate run only ``suffix + post (+ extra)``: the same losses to float precision, candidate forwards
2.5-4x faster on SmolLM2's chat prompts. :func:`optimise` is the loop: it draws the starting suffixes,
runs steps and shrinks ``n_replace`` as the loss falls (SSR's rule). Its result says why it
stopped (:data:`STOP_REASONS`) and the loss of the prompt with no suffix, so a search that had nothing
to do (the objective already met before step 1) is reported as such, not as a found suffix.

>>> OptimiserConfig(n_tokens=0)
Traceback (most recent call last):
probes.config.ConfigError: Bad OptimiserConfig: n_tokens (suffix length) must be >= 1, got 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

import torch
from jaxtyping import Float, Int
from pydantic import model_validator
from torch import Tensor

from probes.architecture import Forward, PrefixKV, prefix_kv, run_forward
from probes.config import Config
from probes.errors import InputError
from probes.handle import ModelHandle

__all__ = [
    "STOP_REASONS",
    "Buffer",
    "Objective",
    "OptimiseResult",
    "OptimiserConfig",
    "PromptSlots",
    "SlotForward",
    "allowed_tokens",
    "evaluate",
    "filter_candidates",
    "gcg_step",
    "optimise",
    "prompt_slots",
    "random_suffix",
    "retokenises",
    "sample_candidates",
    "slot_forward",
    "special_ids",
    "token_gradient",
]

Buffer = list[tuple[float, list[int]]]  # (loss, suffix ids), best first, distinct suffixes

_MARK = "\u2063SUFFIX\u2063"


# -- prompt slots --------------------------------------------------------------------------------------
@dataclass
class PromptSlots:
    """Token ids around the suffix: ``prefix + suffix + post (+ extra)``; ``kv`` (:meth:`cache`) holds the
    prefix's keys and values once computed, and forwards then run the suffix onwards only."""

    prefix: Int[Tensor, " n_prefix"]
    post: Int[Tensor, " n_post"]
    kv: PrefixKV | None = None

    def cache(self, handle: ModelHandle) -> PromptSlots:
        """Compute the prefix's keys and values once (only the suffix changes between candidates); ``kv``
        stays None where the model's cache cannot hold the whole prefix (see :func:`prefix_kv`)."""
        self.kv = prefix_kv(handle, handle.hf.get_input_embeddings()(self.prefix[None]))
        return self

    def assemble(
        self, suffix: Int[Tensor, "batch n_tokens"], extra: Tensor | None = None, with_prefix: bool = True
    ) -> Tensor:
        b = suffix.shape[0]
        parts = [self.prefix.expand(b, -1)] if with_prefix else []
        parts += [suffix, self.post.expand(b, -1)]
        if extra is not None and extra.numel():
            parts.append(extra.to(suffix.device).expand(b, -1))
        return torch.cat(parts, dim=1)

    def suffix_slice(self, n_tokens: int) -> slice:
        start = self.prefix.shape[0]
        return slice(start, start + n_tokens)


def prompt_slots(handle: ModelHandle, instruction: str, chat: bool = True) -> PromptSlots:
    """Split the chat-formatted prompt around the suffix position (right after ``instruction``)."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise InputError("instruction must be a non-empty string.")
    use_chat = chat and handle.has_chat_template
    text = handle.format_prompt(instruction + _MARK, chat=chat)
    if text.count(_MARK) != 1:
        raise InputError("The chat template altered the suffix marker; cannot place the suffix.")
    before, after = text.split(_MARK)
    tok = handle.tokenizer
    prefix = tok.encode(before, add_special_tokens=not use_chat)
    post = tok.encode(after, add_special_tokens=False) if after else []
    handle.check_context(len(prefix) + len(post), "the chat-formatted prompt")
    dev = handle.device
    return PromptSlots(torch.tensor(prefix, device=dev), torch.tensor(post, dtype=torch.long, device=dev))


# -- token filters -------------------------------------------------------------------------------------
_ALLOWED_CACHE: dict[tuple[int, bool], Tensor] = {}


def special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids or [])
    for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(t, "special", False):
            ids.add(int(i))
    return ids


def allowed_tokens(tokenizer, vocab_size: int, ascii_only: bool = True) -> Tensor:
    """Bool mask over the model vocabulary: no special tokens, no empty decodes, optionally ASCII only."""
    key = (id(tokenizer), ascii_only, vocab_size)
    if key in _ALLOWED_CACHE:
        return _ALLOWED_CACHE[key]
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    n = min(len(tokenizer), vocab_size)
    mask[:n] = True
    for i in special_ids(tokenizer):
        if i < vocab_size:
            mask[i] = False
    texts = tokenizer.batch_decode([[i] for i in range(n)])
    for i, s in enumerate(texts):
        if not s.strip() or (ascii_only and not (s.isascii() and s.isprintable())) or "\ufffd" in s:
            mask[i] = False
    if not mask.any():
        raise InputError("No token survives the filters (special/ASCII): the vocabulary cannot be searched.")
    _ALLOWED_CACHE[key] = mask
    return mask


def retokenises(tokenizer, ids: list[int]) -> bool:
    """True when ``encode(decode(ids)) == ids`` (the suffix survives a round trip through text)."""
    return tokenizer.encode(tokenizer.decode(ids), add_special_tokens=False) == list(ids)


def sample_candidates(
    ids: Int[Tensor, " n_tokens"],
    grad: Float[Tensor, "n_tokens vocab"],
    allowed: Tensor,
    width: int,
    topk: int,
    n_replace: int,
    generator: torch.Generator,
) -> Int[Tensor, "width n_tokens"]:
    """``width`` copies of ``ids``, each with ``n_replace`` random positions set to a random one of that
    position's top-``topk`` allowed tokens by negative gradient."""
    n = ids.shape[0]
    n_replace = max(1, min(n_replace, n))
    g = grad.detach().float().cpu().clone()
    g[:, ~allowed[: g.shape[1]]] = math.inf
    k = max(1, min(topk, int(allowed.sum())))
    top = (-g).topk(k, dim=1).indices  # (n, k)
    cand = ids.cpu().repeat(width, 1)
    pos = torch.argsort(torch.rand(width, n, generator=generator), dim=1)[:, :n_replace]
    choice = torch.randint(0, k, (width, n_replace), generator=generator)
    cand.scatter_(1, pos, top[pos, choice])
    return cand


def filter_candidates(tokenizer, cand: Tensor, seen: set[tuple[int, ...]] | None = None) -> Tensor:
    """Drop candidates that do not survive decode→encode, and duplicates (of each other and ``seen``)."""
    keep, out = set(seen or ()), []
    for row in cand.tolist():
        t = tuple(row)
        if t in keep or not retokenises(tokenizer, row):
            continue
        keep.add(t)
        out.append(row)
    return torch.tensor(out, dtype=torch.long).reshape(-1, cand.shape[1])


# -- forward over the slots ---------------------------------------------------------------------------
@dataclass
class SlotForward(Forward):
    """A truncated forward (:func:`probes.architecture.run_forward`) plus where the slots sit in it."""

    suffix: slice = field(default_factory=lambda: slice(0, 0))  # suffix positions
    extra_start: int = 0  # first position of the appended extra ids (GCG target)


# -- objectives ----------------------------------------------------------------------------------------
class Objective:
    """What the optimiser minimises. Subclasses set the needs and implement :meth:`loss` (per row)."""

    resid_layers: list[int] = []
    attn_layers: list[int] = []
    needs_logits: bool = False
    extra_ids: Tensor | None = None  # ids appended after the prompt (GCG target)

    def loss(self, fw: SlotForward) -> Float[Tensor, " batch"]:
        raise NotImplementedError

    def check(self, handle: ModelHandle) -> None:
        for layer in [*self.resid_layers, *self.attn_layers]:
            handle.check_layer(layer)


# -- the search ----------------------------------------------------------------------------------------
class OptimiserConfig(Config):
    """The suffix search's settings (a campaign's ``[optimiser]`` table)."""

    n_tokens: int = 5  # suffix length in tokens
    steps: int = 30  # maximum optimisation steps (0: only evaluate the starting suffixes)
    search_width: int = 64  # candidates sampled per step
    topk: int = 64  # tokens kept per position by negative gradient
    buffer_size: int = 8  # best distinct suffixes kept
    replace_coefficient: float = 1.8  # n_replace = n * (best/initial)^(1/coef)
    early_stop_loss: float | None = 0.05  # stop once the best loss is below this
    ascii_only: bool = True  # restrict candidate tokens to printable ASCII
    batch_size: int = 64  # candidates per forward
    cache_prefix: bool = True  # compute the prompt's prefix once (keys/values reused; same losses)
    seed: int = 0  # candidate sampling and starting suffixes

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.n_tokens < 1:
            raise ValueError(f"n_tokens (suffix length) must be >= 1, got {self.n_tokens}.")
        for name in ("search_width", "topk", "buffer_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}.")
        if self.replace_coefficient <= 0:
            raise ValueError(
                f"replace_coefficient must be > 0 (SSR uses 1.8), got {self.replace_coefficient}."
            )
        return self


STOP_REASONS = {
    "already_met": "the prompt with no suffix is already below the early-stop loss: nothing to optimise",
    "start_met": "a random starting suffix is already below the early-stop loss (no step was needed)",
    "early_stop": "the best loss fell below the early-stop loss",
    "max_steps": "the step budget ran out",
    "callback": "stopped by the caller",
}  # OptimiseResult.stopped -> what it means


@dataclass
class OptimiseResult:
    """What :func:`optimise` found: the best suffix, its loss, the loss history and why it stopped."""

    best_ids: list[int]
    best_suffix: str
    best_loss: float
    initial_loss: float  # best loss among the starting suffixes (before step 1)
    losses: list[float]  # best loss after each step
    steps: int
    stopped: str  # a key of STOP_REASONS
    elapsed_s: float
    buffer: Buffer
    prompt_loss: float = math.nan  # loss of the prompt with no suffix at all
    early_stop_loss: float | None = None  # the threshold the search ran with

    @property
    def optimised(self) -> bool:
        """True when at least one step ran (so ``best_suffix`` is a search result, not a random start)."""
        return self.steps > 0

    @property
    def reason(self) -> str:
        """Why the search stopped, in words, with the losses that decided it."""
        text = STOP_REASONS.get(self.stopped, self.stopped)
        if self.stopped in ("already_met", "start_met", "early_stop"):
            text += f" ({self.early_stop_loss:g})"
        return f"{text}; loss {self.initial_loss:.4g} at the start, {self.best_loss:.4g} at the end"


def _embed_matrix(handle: ModelHandle) -> Tensor:
    return handle.hf.get_input_embeddings().weight


@torch.no_grad()
def evaluate(
    handle: ModelHandle, slots: PromptSlots, objective: Objective, cand: Tensor, batch_size: int = 64
) -> Float[Tensor, " batch"]:
    """Loss of each candidate suffix (rows of ``cand``), in batches (from the cached prefix if any)."""
    emb = handle.hf.get_input_embeddings()
    n = cand.shape[1]
    n_extra = 0 if objective.extra_ids is None else int(objective.extra_ids.numel())
    cached = slots.kv is not None and n + slots.post.numel() + n_extra > 0
    out = []
    for i in range(0, cand.shape[0], batch_size):
        ids = slots.assemble(cand[i : i + batch_size].to(handle.device), objective.extra_ids, not cached)
        fw = slot_forward(handle, emb(ids), objective, slots, n, cached)
        out.append(objective.loss(fw).detach().float().cpu())
    return torch.cat(out)


def slot_forward(
    handle: ModelHandle,
    embeds: Float[Tensor, "batch pos d_model"],
    objective: Objective,
    slots: PromptSlots,
    n: int,
    cached: bool = False,
) -> SlotForward:
    """The truncated forward ``objective`` needs on assembled prompts with an ``n``-token suffix
    (``cached``: ``embeds`` start at the suffix and continue ``slots.kv``)."""
    n_extra = 0 if objective.extra_ids is None else int(objective.extra_ids.numel())
    fw = run_forward(
        handle,
        embeds,
        objective.resid_layers,
        objective.attn_layers,
        logits=objective.needs_logits,
        logits_last=n_extra + 1 if n_extra else None,
        prefix=slots.kv if cached else None,
    )
    return SlotForward(
        **vars(fw),
        suffix=slots.suffix_slice(n),
        extra_start=slots.prefix.shape[0] + n + slots.post.shape[0],
    )


def token_gradient(
    handle: ModelHandle, slots: PromptSlots, objective: Objective, ids: Int[Tensor, " n_tokens"]
) -> Float[Tensor, "n_tokens vocab"]:
    """∂loss/∂one-hot of the suffix tokens (through the embedding matrix)."""
    W = _embed_matrix(handle)
    emb = handle.hf.get_input_embeddings()
    one_hot = torch.zeros(ids.shape[0], W.shape[0], device=W.device, dtype=W.dtype)
    one_hot[torch.arange(ids.shape[0]), ids.to(W.device)] = 1.0
    one_hot.requires_grad_(True)
    cached = slots.kv is not None  # the prefix's keys and values are reused: embed the suffix onwards
    with torch.no_grad():
        pre = [] if cached else [emb(slots.prefix[None])]
        post_ids = slots.post[None]
        if objective.extra_ids is not None and objective.extra_ids.numel():
            post_ids = torch.cat([post_ids, objective.extra_ids.to(post_ids.device)[None]], dim=1)
        post = emb(post_ids)
    embeds = torch.cat([*pre, (one_hot @ W)[None], post], dim=1)
    fw = slot_forward(handle, embeds, objective, slots, ids.shape[0], cached)
    (grad,) = torch.autograd.grad(objective.loss(fw).sum(), one_hot)
    return grad


def random_suffix(tokenizer, allowed: Tensor, n_tokens: int, generator: torch.Generator) -> list[int]:
    """A random allowed suffix that survives decode→encode (up to 200 tries)."""
    pool = allowed.nonzero().flatten()
    for _ in range(200):
        ids = pool[torch.randint(0, len(pool), (n_tokens,), generator=generator)].tolist()
        if retokenises(tokenizer, ids):
            return ids
    raise InputError(f"Could not draw a retokenisation-stable random suffix of {n_tokens} tokens.")


def gcg_step(
    handle: ModelHandle,
    slots: PromptSlots,
    objective: Objective,
    buffer: Buffer,
    n_replace: int,
    cfg: OptimiserConfig,
    generator: torch.Generator,
    allowed: Tensor,
) -> Buffer:
    """One GCG step from the best suffix of ``buffer``: token gradient, ``cfg.search_width`` sampled
    candidates swapping ``n_replace`` positions, filtered and evaluated; returns the new buffer."""
    best_ids = torch.tensor(buffer[0][1])
    grad = token_gradient(handle, slots, objective, best_ids)
    cand = sample_candidates(best_ids, grad, allowed, cfg.search_width, cfg.topk, n_replace, generator)
    cand = filter_candidates(handle.tokenizer, cand, {tuple(ids) for _, ids in buffer})
    if cand.shape[0]:
        losses = evaluate(handle, slots, objective, cand, cfg.batch_size)
        buffer = _dedup(sorted(buffer + list(zip(losses.tolist(), cand.tolist(), strict=True))))
    return buffer[: cfg.buffer_size]


def optimise(
    handle: ModelHandle,
    instruction: str,
    objective: Objective,
    config: OptimiserConfig | None = None,
    init: list[int] | None = None,
    callback: Callable[[int, float, list[int]], bool] | None = None,
) -> OptimiseResult:
    """Minimise ``objective`` over a suffix of ``config.n_tokens`` tokens after ``instruction``:
    :func:`gcg_step` until ``config.steps``, the early-stop loss, or the callback.

    ``callback(step, best_loss, best_ids)`` runs after each step; returning True stops the search.
    """
    cfg = config or OptimiserConfig()
    objective.check(handle)
    started = time.perf_counter()
    tok = handle.tokenizer
    g = torch.Generator().manual_seed(cfg.seed)
    slots = prompt_slots(handle, instruction)
    if cfg.cache_prefix:
        slots.cache(handle)
    allowed = allowed_tokens(tok, _embed_matrix(handle).shape[0], cfg.ascii_only)
    n = cfg.n_tokens
    if init is not None and len(init) != n:
        raise InputError(f"init has {len(init)} tokens but n_tokens is {n}.")
    starts = [init] if init is not None else []
    while len(starts) < min(cfg.buffer_size, 4):
        starts.append(random_suffix(tok, allowed, n, g))
    start = torch.tensor(starts, dtype=torch.long)
    losses0 = evaluate(handle, slots, objective, start, cfg.batch_size)
    buffer = sorted(zip(losses0.tolist(), start.tolist(), strict=True), key=lambda x: x[0])
    buffer = _dedup(buffer)[: cfg.buffer_size]
    initial = buffer[0][0]
    bare = float(evaluate(handle, slots, objective, torch.zeros(1, 0, dtype=torch.long))[0])
    history: list[float] = []
    stopped = "max_steps"
    n_replace = n
    step = 0
    if cfg.early_stop_loss is not None and initial < cfg.early_stop_loss:
        stopped = "already_met" if bare < cfg.early_stop_loss else "start_met"
    else:
        for step in range(1, cfg.steps + 1):
            buffer = gcg_step(handle, slots, objective, buffer, n_replace, cfg, g, allowed)
            best = buffer[0][0]
            history.append(best)
            if initial > 0:
                ratio = min(max(best / initial, 0.0), 1.0)
                n_replace = max(1, int(n * ratio ** (1.0 / cfg.replace_coefficient)))
            if cfg.early_stop_loss is not None and best < cfg.early_stop_loss:
                stopped = "early_stop"
            if callback is not None and callback(step, best, buffer[0][1]):
                stopped = "callback"
            if stopped != "max_steps":
                break
    best_loss, best_ids = buffer[0]
    return OptimiseResult(
        best_ids=list(best_ids),
        best_suffix=tok.decode(best_ids),
        best_loss=float(best_loss),
        initial_loss=float(initial),
        losses=history,
        steps=step,
        stopped=stopped,
        elapsed_s=time.perf_counter() - started,
        buffer=[(float(v), list(i)) for v, i in buffer],
        prompt_loss=bare,
        early_stop_loss=cfg.early_stop_loss,
    )


def _dedup(buf: Buffer) -> Buffer:
    seen, out = set(), []
    for loss, ids in sorted(buf, key=lambda x: x[0]):
        if tuple(ids) in seen:
            continue
        seen.add(tuple(ids))
        out.append((loss, ids))
    return out
