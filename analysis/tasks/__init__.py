"""Synthetic tasks for channel analysis: IOI and Laundry List prompts, their scoring, and the organism.

- :mod:`.common`: tokenizer helpers shared by the generators (single-token checks, ``ToyTokenizer``);
- :mod:`.ioi`: indirect-object-identification prompts (:func:`ioi_prompts`);
- :mod:`.laundry`: Laundry List prompts with disjoint dev/test item vocabularies
  (:func:`laundry_list_prompts`);
- :mod:`.scoring`: final-position logits ``[batch, vocab]`` → per-prompt scores and accuracy tables;
- :mod:`.evaluate`: run a task on a model handle and score it (:func:`evaluate_laundry`,
  :func:`evaluate_ioi`, :func:`laundry_gain` for before/after an edit);
- :mod:`.heldout`: a small held-out English sample for LM-loss checks (:func:`heldout_texts`);
- :mod:`.organism_model`, :mod:`.train_organism`: the Talking-Heads model organism, a tiny GPT-2
  trained on these tasks (:class:`OrganismConfig`, :func:`train`; ``python -m analysis.tasks.train_organism``).
"""

from analysis.tasks.evaluate import LaundryResult, evaluate_ioi, evaluate_laundry, laundry_gain
from analysis.tasks.heldout import heldout_texts
from analysis.tasks.ioi import ioi_prompts
from analysis.tasks.laundry import laundry_list_prompts
from analysis.tasks.organism_model import OrganismConfig, read_train_config
from analysis.tasks.scoring import (
    accuracy_by_n,
    accuracy_by_position,
    ioi_summary,
    item_accuracy,
    laundry_accuracy,
    logit_difference,
    score_ioi,
    score_laundry,
    vocab_accuracy,
)

__all__ = [
    "LaundryResult",
    "OrganismConfig",
    "accuracy_by_n",
    "accuracy_by_position",
    "evaluate_ioi",
    "evaluate_laundry",
    "heldout_texts",
    "ioi_prompts",
    "ioi_summary",
    "item_accuracy",
    "laundry_accuracy",
    "laundry_gain",
    "laundry_list_prompts",
    "logit_difference",
    "read_train_config",
    "score_ioi",
    "score_laundry",
    "train",
    "vocab_accuracy",
]


def __getattr__(name: str):
    # ``train`` is imported on first use, so ``python -m analysis.tasks.train_organism`` does not find
    # its own module already imported by this package (runpy warns about that)
    if name == "train":
        from analysis.tasks.train_organism import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
