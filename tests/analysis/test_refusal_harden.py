"""The refusal-hardening trainer on the tiny model: what it trains on, that it learns, and that the saved
LoRA adapter is exactly what gets merged."""

from __future__ import annotations

import pytest
import torch

from analysis.refusal.harden import (
    REFUSAL_REPLY,
    WRAPPERS,
    HardenConfig,
    _batch,
    train_adapter,
    train_examples,
)
from probes.testing import tiny_handle


@pytest.fixture
def tiny():
    torch.set_num_threads(1)
    return tiny_handle(seed=0, n_layers=2)


def test_loss_is_on_the_reply_only_and_only_refusals_end_the_turn(tiny):
    rows = [("the cat sat", REFUSAL_REPLY), ("Mary gave ball", "John went to the store")]
    ids, mask, labels, keep = _batch(tiny, rows)
    tok = tiny.tokenizer
    for i, (prompt, reply) in enumerate(rows):
        head = tok.encode(tiny.format_prompt(prompt), add_special_tokens=False)
        n = int(mask[i].sum())
        assert ids[i, : len(head)].tolist() == head
        assert (labels[i, : len(head)] == -100).all() and (labels[i, n:] == -100).all()
        assert labels[i, len(head) : n].tolist() == ids[i, len(head) : n].tolist()
        ends = int(ids[i, n - 1]) == tok.eos_token_id
        assert ends == (reply == REFUSAL_REPLY)  # a cut base answer does not teach the model to stop
        kept = n - 1 if reply != REFUSAL_REPLY else len(head) - 1  # the refusal reply may move off the base
        assert keep[i, :kept].all() and not keep[i, kept:].any()


def test_train_examples_mix(tiny):
    cfg = HardenConfig(n_wrapped=5, n_suffixed=3, suffix_tokens=[2, 4])
    harmful, harmless = ["the cat sat", "a dog went"], ["Mary gave ball", "Tom is it"]
    ex = train_examples(tiny, cfg, harmful, harmless, ["answer one", "answer two"])
    refusals = [p for p, r in ex if r == REFUSAL_REPLY]
    assert len(ex) == 2 + 5 + 3 + 2 + 3 and len(refusals) == 2 + 5 + 3
    wrapped = {w.format(p="")[:20] for w in WRAPPERS[1:]}
    assert sum(any(p.startswith(w) for w in wrapped if w) for p in refusals) >= 4
    answers = {"Mary gave ball": "answer one", "Tom is it": "answer two"}
    for p, r in ex:  # a harmless prompt, suffixed or not, keeps its own base answer
        if r != REFUSAL_REPLY:
            assert r == answers[next(h for h in harmless if p.startswith(h))]
    assert train_examples(tiny, cfg, harmful, harmless, ["answer one", "answer two"]) == ex  # seeded


def test_adapter_learns_and_merges_exactly(tiny, tmp_path):
    from peft import PeftModel

    base = {k: v.clone() for k, v in tiny.hf.state_dict().items()}
    cfg = HardenConfig(rank=4, epochs=80, batch_size=2, lr=5e-2, target_modules=["q_proj", "v_proj"])
    examples = [("the cat sat", REFUSAL_REPLY), ("Mary gave ball", "John went to the store")]
    model, losses = train_adapter(tiny, cfg, examples)
    assert losses[-1] < 0.9 * losses[0]  # a random tiny model has small logits: a loss near log(vocab)
    x = torch.tensor([[1, 7, 8, 9, 10]])
    with torch.no_grad():
        want = model(input_ids=x).logits
    model.save_pretrained(str(tmp_path / "adapter"))
    merged = model.merge_and_unload().eval()
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=x).logits, want, atol=1e-5)
    # only the targeted projections changed, by scale * B @ A of the saved adapter
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    scale = cfg.lora_alpha / cfg.rank
    changed = {k for k, v in merged.state_dict().items() if not torch.equal(v, base[k])}
    assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed)
    for k in changed:
        stem = "base_model.model." + k.removesuffix(".weight")
        a, b = saved[f"{stem}.lora_A.weight"].double(), saved[f"{stem}.lora_B.weight"].double()
        delta = merged.state_dict()[k].double() - base[k].double()
        assert torch.allclose(delta, scale * b @ a, atol=1e-6)
    fresh = tiny_handle(seed=0, n_layers=2).hf  # same seed: the same base weights
    reloaded = PeftModel.from_pretrained(fresh, str(tmp_path / "adapter")).merge_and_unload().eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=x).logits, want, atol=1e-5)


def test_kl_term_is_zero_at_the_start_and_holds_the_kept_positions_to_the_base():
    from analysis.refusal.harden import _kl_to_base

    rows = [("the cat sat", REFUSAL_REPLY), ("Mary gave ball", "John went to the store")]
    drift = {}
    for weight in (0.0, 100.0):
        h = tiny_handle(seed=0, n_layers=2)
        cfg = HardenConfig(rank=4, epochs=40, batch_size=2, lr=5e-2, kl_weight=weight)
        model, _ = train_adapter(h, cfg, rows)
        ids, mask, _, keep = _batch(h, rows)
        with torch.no_grad():
            drift[weight] = float(
                _kl_to_base(model, ids, mask, model(input_ids=ids, attention_mask=mask).logits, keep)
            )
    assert drift[100.0] < 0.5 * drift[0.0]  # the KL term keeps the prompts' and harmless answers' predictions
    fresh = tiny_handle(seed=0, n_layers=2)
    from peft import LoraConfig, get_peft_model

    untrained = get_peft_model(fresh.hf, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
    ids, mask, _, keep = _batch(fresh, rows)
    with torch.no_grad():
        logits = untrained(input_ids=ids, attention_mask=mask).logits
        assert float(_kl_to_base(untrained, ids, mask, logits, keep)) == pytest.approx(0.0, abs=1e-6)
