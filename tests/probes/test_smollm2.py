"""Real checks on the packaged SmolLM2-135M-Instruct (fetched from PyPI as data on first use)."""

from __future__ import annotations

import pytest
import torch

from probes.capture import capture

pytestmark = pytest.mark.pack

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "When Mary and John went to the store, John gave a drink to",
]


def test_architecture(smollm2):
    i = smollm2.info
    assert (i.architecture, i.n_layers, i.n_heads, i.n_kv_heads, i.d_model, i.d_head) == (
        "LlamaForCausalLM",
        30,
        9,
        3,
        576,
        64,
    )
    assert i.positional == "rotary (theta=100000)" and smollm2.has_chat_template
    assert smollm2.pack_sha256.startswith("b179c952")


def test_generates_a_real_answer(smollm2):
    assert "Paris" in smollm2.generate("What is the capital of France?", max_new_tokens=12)


def test_three_backends_agree_on_logits(smollm2):
    with torch.no_grad():
        for p in PROMPTS:
            ids, _ = smollm2.tokenize([p], chat=False)
            ref = smollm2.hf(ids).logits
            tl = smollm2.tl(ids)
            with smollm2.nnsight.trace(ids):
                nn_logits = smollm2.nnsight.lm_head.output.save()
            assert (tl - ref).abs().max().item() < 1e-3
            assert (nn_logits - ref).abs().max().item() < 1e-4
            assert ref[0, -1].argmax() == tl[0, -1].argmax()


def test_capture_shapes_and_backend_agreement(smollm2):
    sites = ["resid_post.*", "z.10", "head_out.10", "mlp_out.29"]
    a = capture(smollm2, PROMPTS, sites, mode="all", progress=False)
    b = capture(smollm2, PROMPTS, sites, mode="all", backend="nnsight", progress=False)
    T = int(a.lengths.max())
    assert a["resid_post.29"].shape == (3, T, 576)
    assert a["z.10"].shape == (3, T, 9, 64) and a["head_out.10"].shape == (3, T, 9, 576)
    for s in a.sites:
        assert (a[s] - b[s]).abs().max().item() < 1e-3, s


@pytest.mark.parametrize("layer", [3, 17])
def test_truncated_equals_full_forward(smollm2, layer):
    full = capture(smollm2, PROMPTS, [f"resid_post.{layer}"], truncate=False, progress=False)
    for backend in ("tl", "nnsight"):
        trunc = capture(
            smollm2, PROMPTS, [f"resid_post.{layer}"], truncate=True, backend=backend, progress=False
        )
        torch.testing.assert_close(
            trunc[f"resid_post.{layer}"], full[f"resid_post.{layer}"], atol=1e-4, rtol=0
        )


def test_derived_copy_matches_gguf_load(smollm2):
    """The dequantised safetensors copy loads to exactly the weights of a fresh GGUF load."""
    from probes.loading import load_hf

    model, _, _, _ = load_hf("smollm2-135m-instruct", derived=False, progress=False)
    ids, _ = smollm2.tokenize(PROMPTS[:1])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, smollm2.hf(ids).logits, atol=1e-4, rtol=0)
