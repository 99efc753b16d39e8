"""Tiny randomly initialised models for fast, exact tests (no files, no network).

>>> h = tiny_handle(seed=0)
>>> h.info.architecture, h.info.n_heads, h.info.n_kv_heads
('LlamaForCausalLM', 4, 2)
"""

from __future__ import annotations

import tempfile

import torch

from probes.handle import ModelHandle

WORDS = (
    "the a cat dog sat on mat and then gave ball to Mary John Anna Tom shirt sock hat towel "
    "went store bought put laundry list answer is was of in it he she they we you I"
).split()
SPECIALS = ["<unk>", "<bos>", "<eos>", "<pad>", "<user>", "<assistant>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def tiny_tokenizer(chat_template: bool = True):
    """A word-level tokenizer over :data:`WORDS` (one token per word), optionally with a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + list(dict.fromkeys(WORDS)))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    # TransformerLens re-opens tokenizers from ``name_or_path``: give it a real folder.
    folder = tempfile.mkdtemp(prefix="sublens-tiny-tok-")
    tok.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def tiny_handle(seed: int = 0, n_layers: int = 2, chat_template: bool = True) -> ModelHandle:
    """A 2-layer Llama (d_model 32, 4 query heads sharing 2 KV heads, RoPE) with random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer(chat_template)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).float().eval()
    return ModelHandle(model, tok, name=f"tiny-llama-s{seed}", source="in-memory")
