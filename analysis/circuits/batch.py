"""IOI prompts as a batch: token ids plus the positions of END, IO, S1 and S2, and corrupted (ABC) copies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Int
from torch import Tensor

from analysis.tasks.ioi import ioi_names
from probes.errors import InputError
from probes.handle import ModelHandle

__all__ = ["IOIBatch", "abc_prompts", "ioi_batch"]


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
    def end_pos(self) -> Int[Tensor, " batch"]:
        """Each prompt's last real token."""
        return self.lengths - 1

    @property
    def answer_ids(self) -> Int[Tensor, " batch"]:
        """Token id of the indirect object (the correct answer)."""
        return torch.tensor([int(x) for x in self.prompts["answer_id"]], dtype=torch.long)

    @property
    def distractor_ids(self) -> Int[Tensor, " batch"]:
        """Token id of the subject (the wrong answer)."""
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
