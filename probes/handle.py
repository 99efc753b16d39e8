"""``ModelHandle``: one loaded HF causal LM with TransformerLens and nnsight views over the same weights.

The HF model is the single owner of the weights. ``handle.tl`` (a TransformerLens 4.x
``TransformerBridge``) and ``handle.nnsight`` (an nnsight ``LanguageModel``) wrap that same module, so
their numerics are the raw HF ones (TL max |logit diff| to HF is 0.0 on SmolLM2) and no weights are
copied. Do not call ``handle.tl.enable_compatibility_mode()`` on a shared handle: it folds LayerNorm
into the shared weights in place.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from probes.errors import InputError, check_index
from probes.model_info import model_info_from_config

BACKENDS = ("tl", "nnsight", "hf")


class ModelHandle:
    """A loaded model: HF module + tokenizer + lazily built TransformerLens / nnsight views.

    >>> from probes.testing import tiny_handle
    >>> h = tiny_handle()
    >>> h.info.n_layers, h.info.gqa_groups
    (2, 2)
    >>> ids, lengths = h.tokenize(["the cat sat", "a dog"], chat=False)
    >>> ids.shape[0], lengths.tolist()
    (2, [3, 2])
    """

    def __init__(
        self,
        hf_model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str,
        source: str = "in-memory",
        pack_sha256: str | None = None,
    ):
        if not getattr(hf_model.config, "architectures", None):
            hf_model.config.architectures = [type(hf_model).__name__]  # GGUF configs leave this empty
        self.hf = hf_model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.source = source  # "pack", "local", "hub" or "in-memory"
        self.pack_sha256 = pack_sha256
        self.adapter_sha256: str | None = None  # a merged adapter's pinned hash (probes.adapters)
        self.info = model_info_from_config(hf_model.config, name)

    def __repr__(self) -> str:
        i = self.info
        return (
            f"ModelHandle({self.name!r}, {i.architecture}, layers={i.n_layers}, heads={i.n_heads}/"
            f"{i.n_kv_heads}kv, d_model={i.d_model}, device={self.device})"
        )

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def weights_id(self) -> str | None:
        """What caches key on: the pack's pinned hash, joined with a merged adapter's (so a retrained
        adapter never reads its predecessor's cached activations); None for unpinned weights."""
        if self.pack_sha256 and self.adapter_sha256:
            return f"{self.pack_sha256}+{self.adapter_sha256}"
        return self.pack_sha256

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @cached_property
    def tl(self):
        """TransformerLens ``TransformerBridge`` over the same HF module (hook names as in TL)."""
        from transformer_lens.model_bridge import TransformerBridge

        self.nnsight  # noqa: B018 -- mirror the plain HF tree in nnsight before the bridge wraps it
        return TransformerBridge.boot_transformers(
            f"local/{self.name}",
            hf_model=self.hf,
            tokenizer=self.tokenizer,
            device=str(self.device),
            dtype=next(self.hf.parameters()).dtype,
        )

    @cached_property
    def nnsight(self):
        """nnsight ``TransformersModel`` (the successor of ``LanguageModel``) over the same HF module."""
        from nnsight import TransformersModel

        return TransformersModel(self.hf, tokenizer=self.tokenizer)

    def view(self, backend: str):
        """The object for ``backend`` in ``("tl", "nnsight", "hf")``."""
        if backend not in BACKENDS:
            raise InputError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
        return {"tl": lambda: self.tl, "nnsight": lambda: self.nnsight, "hf": lambda: self.hf}[backend]()

    # -- checks ---------------------------------------------------------------------------------------
    def check_layer(self, layer: int) -> int:
        return check_index(layer, self.info.n_layers, "layer")

    def check_head(self, head: int) -> int:
        return check_index(head, self.info.n_heads, "head")

    # -- text -----------------------------------------------------------------------------------------
    def format_prompt(self, prompt: str, chat: bool = True) -> str:
        """Apply the chat template (user turn + generation prompt) when ``chat`` and the model has one."""
        if chat and self.has_chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def check_context(self, n_tokens: int, what: str = "the prompt", reserve: int = 0) -> None:
        """Refuse ``n_tokens`` (plus ``reserve`` tokens still to generate) beyond the model's context.

        Learned-position models (GPT-2, the organism) cannot index past ``n_ctx`` at all; rotary models
        run on but were never trained there, so their outputs are unreliable. Both are refused, never
        truncated silently: the caller shortens or splits the text.
        """
        n_ctx = self.info.n_ctx
        if n_ctx is None or n_tokens + reserve <= n_ctx:
            return
        extra = f" plus {reserve} new tokens to generate" if reserve else ""
        raise InputError(
            f"{what} is {n_tokens} tokens long{extra}, but {self.name} has a context of {n_ctx} tokens "
            f"({self.info.positional} positions); shorten it to at most {max(n_ctx - reserve, 0)} tokens or "
            "split it into several prompts."
        )

    def tokenize(
        self,
        prompts: list[str],
        chat: bool = True,
        *,
        reserve: int = 0,
        truncate_to: int | None = None,
    ) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, " batch"]]:
        """Token ids, right-padded, and each prompt's length.

        Right padding keeps every real token's computation identical to an unpadded run (causal
        attention never looks ahead), so no attention mask is needed for the real positions.
        With a chat template the formatted text already holds its special tokens; without one the
        tokenizer's own specials (e.g. BOS) are added. Every place prompts enter the model comes through
        here, so this is where a prompt longer than the model's context (``reserve``: tokens still to be
        generated after it) is refused (:meth:`check_context`); ``truncate_to`` cuts each sequence to
        that many tokens first, for callers that document truncation (:func:`probes.lm_loss.lm_loss`).
        Empty and whitespace-only prompts are refused.
        """
        if isinstance(prompts, str) or not prompts:
            raise InputError(
                "prompts must be a non-empty list of strings (got "
                f"{'a single string' if isinstance(prompts, str) else 'an empty list'})."
            )
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise InputError(f"prompt {i} is a {type(p).__name__}, not a string; pass text prompts.")
            if not p.strip():
                raise InputError(
                    f"prompt {i} is {'empty' if not p else 'only whitespace'}; remove it (blank lines in a "
                    "prompt file are skipped) or write a prompt there."
                )
        use_chat = chat and self.has_chat_template
        seqs = [
            self.tokenizer.encode(self.format_prompt(p, chat), add_special_tokens=not use_chat)
            for p in prompts
        ]
        if truncate_to is not None:
            seqs = [s[:truncate_to] for s in seqs]
        longest = max(range(len(seqs)), key=lambda i: len(seqs[i]))
        where = " (with the chat template)" if use_chat else ""
        self.check_context(
            len(seqs[longest]), f"prompt {longest}{where} ({prompts[longest][:40]!r}…)", reserve
        )
        lengths = torch.tensor([len(s) for s in seqs])
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id or 0
        ids = torch.full((len(seqs), int(lengths.max())), pad, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
        return ids, lengths

    @torch.no_grad()
    def generate(self, prompt: str, max_new_tokens: int = 32, chat: bool = True) -> str:
        """Greedy continuation of one prompt (chat template applied), decoded without special tokens.

        Once ``handle.tl`` has been built, HF's KV-cached generation through the bridge-wrapped modules
        goes wrong (TransformerLens 4.3: "The capital" -> "The-----"), so the cache is turned off then;
        the output is then identical to a cached run on the pristine model, only slower.
        """
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
        ids, _ = self.tokenize([prompt], chat=chat, reserve=max_new_tokens)
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        out = self.hf.generate(
            ids.to(self.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            use_cache="tl" not in self.__dict__,
        )
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
