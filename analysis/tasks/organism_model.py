"""What the Talking-Heads model organism is: its config, word-level tokenizer and freshly built GPT-2.

:class:`OrganismConfig` holds everything that defines a training run (architecture, task mix,
optimisation, held-out evaluation) and is written into ``train_config.json`` next to the weights;
:func:`read_train_config` reads it back. The training loop is :mod:`analysis.tasks.train_organism`.

>>> cfg = read_train_config()  # the packaged weights' run
>>> cfg.n_layer, cfg.d_model, cfg.laundry_n[:3]
(3, 40, (2, 3, 4))
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from analysis.tasks.ioi import DEFAULT_NAMES, IOI_TEMPLATES, OBJECTS, PLACES
from analysis.tasks.laundry import DEFAULT_ITEMS, LAUNDRY_TEMPLATES
from probes.config import Config
from probes.errors import InputError
from probes.organism import ORGANISM_DIR

__all__ = [
    "SPECIALS",
    "OrganismConfig",
    "build_model",
    "build_tokenizer",
    "organism_vocab",
    "read_train_config",
]

SPECIALS = ("<unk>", "<bos>", "<eos>", "<pad>")


class OrganismConfig(Config):
    """Everything that defines a training run (written to ``train_config.json``)."""

    # -- architecture (HF GPT2LMHeadModel: learned absolute positions, tied embeddings, pre-LN) -------
    n_layer: int = 3  # transformer blocks
    n_head: int = 4  # attention heads per block
    d_model: int = 40  # residual width (d_head = d_model / n_head = 10); 48+ solves every N up to 10
    d_mlp: int = 160  # MLP hidden width (4 x d_model)
    n_positions: int = 96  # max sequence length; the longest prompt (Laundry N = 10) is ~60 tokens
    # -- task mix ----------------------------------------------------------------------------------
    ioi_frac: float = 0.35  # fraction of training sequences that are IOI (easy); the rest are Laundry List
    laundry_n: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10)  # list lengths N (uniform)
    laundry_splits: tuple[str, ...] = ("dev", "test")  # item vocabularies trained on (both, see README)
    # -- optimisation --------------------------------------------------------------------------------
    steps: int = 1500  # optimizer steps; each step sees batch_size fresh prompts (~2-5 CPU minutes)
    batch_size: int = 64
    lr: float = 3e-3  # AdamW peak learning rate (linear warm-up, cosine decay to 10%)
    warmup: int = 100  # warm-up steps
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    lm_weight: float = 1.0  # weight of the prompt next-token loss next to the answer loss
    seed: int = 0  # weight init, training-pool generator seeds and batch order
    threads: int = 1  # torch CPU threads (reproducible for a fixed value; >1 is slower on busy CPUs)
    # -- held-out evaluation --------------------------------------------------------------------------
    eval_ioi: int = 1000  # held-out IOI prompts (balanced ABBA/BABA)
    eval_laundry_per_n: int = 200  # held-out Laundry List prompts per N and item split
    eval_laundry_n: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10)  # list lengths N of the held-out prompts


def read_train_config(folder: str | Path | None = None) -> OrganismConfig:
    """The :class:`OrganismConfig` a model folder was trained with (default: the packaged weights).

    ``train_config.json`` is ``{"config": ..., "log": ..., "torch": ...}``; only the config part is read.
    """
    path = Path(folder if folder is not None else ORGANISM_DIR) / "train_config.json"
    if not path.is_file():
        raise InputError(f"{path} does not exist: not a folder written by analysis.tasks.train_organism.")
    return OrganismConfig.parse(json.loads(path.read_text())["config"])


# -- tokenizer ----------------------------------------------------------------------------------------
def organism_vocab() -> list[str]:
    """The organism's vocabulary: specials, then every word/punctuation mark of the task templates,
    places, objects, default IOI names and default Laundry items (deduplicated, in that order).

    >>> v = organism_vocab()
    >>> v[:4], "Mary" in v, "sock" in v, "," in v
    (['<unk>', '<bos>', '<eos>', '<pad>'], True, True, True)
    """
    words: list[str] = list(SPECIALS)
    for template in (*IOI_TEMPLATES, *LAUNDRY_TEMPLATES):
        words += re.findall(r"\w+|[^\w\s]+", re.sub(r"\{\w+\}", " ", template))
    words += [*PLACES, *OBJECTS, *DEFAULT_NAMES, *DEFAULT_ITEMS]
    return list(dict.fromkeys(words))


def build_tokenizer(folder: str | Path):
    """Save a word-level tokenizer over :func:`organism_vocab` into ``folder`` and load it back.

    Words split on whitespace and punctuation (``"store,"`` → ``store`` ``,``), so ``" Mary"`` and
    ``"Mary"`` are the same single token. Encoding with special tokens prepends ``<bos>``. Loading from
    a real folder matters: TransformerLens re-opens tokenizers from ``name_or_path``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(organism_vocab())}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    tok.model_max_length = OrganismConfig().n_positions
    Path(folder).mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(folder))
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


# -- model --------------------------------------------------------------------------------------------
def build_model(cfg: OrganismConfig, tokenizer):
    """A freshly initialised ``GPT2LMHeadModel`` (no dropout) seeded with ``cfg.seed``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=cfg.d_mlp,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(cfg.seed)
    model = GPT2LMHeadModel(config).float()
    model.config.architectures = ["GPT2LMHeadModel"]
    return model
