"""U3 on real TransformerLens objects: our head-level scores == TransformerBridge.all_composition_scores.

Tiny randomly initialised HF models (GPT-2 and a grouped-query Llama) wrapped offline in a
TransformerBridge; our scores use the bridge's own W_Q/W_K/W_V/W_O.
"""

import pytest
import torch

from analysis.channels import head_composition_scores
from probes.head_weights import HeadWeights

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
bridge_mod = pytest.importorskip("transformer_lens.model_bridge")


def _tokenizer():
    vocab = {f"w{i}": i for i in range(99)} | {"[UNK]": 99}
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="[UNK]", pad_token="[UNK]", eos_token="[UNK]"
    )


def _boot(model, name):
    model.config.architectures = [type(model).__name__]
    return bridge_mod.TransformerBridge.boot_transformers(
        name, hf_model=model, tokenizer=_tokenizer(), device="cpu"
    )


@pytest.fixture(scope="module")
def gpt2_bridge():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        n_layer=3, n_head=4, n_embd=32, vocab_size=100, n_positions=32, bos_token_id=None, eos_token_id=None
    )
    return _boot(transformers.GPT2LMHeadModel(cfg), "local/tiny-gpt2")


@pytest.fixture(scope="module")
def gqa_bridge():
    torch.manual_seed(1)
    cfg = transformers.LlamaConfig(
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_size=32,
        intermediate_size=64,
        vocab_size=100,
        max_position_embeddings=32,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    return _boot(transformers.LlamaForCausalLM(cfg), "local/tiny-llama-gqa")


def _weights(bridge):
    return HeadWeights.from_weights(bridge.W_Q, bridge.W_K, bridge.W_V, bridge.W_O)


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_gpt2_head_scores_equal_bridge(gpt2_bridge, mode):
    ours = head_composition_scores(_weights(gpt2_bridge), mode)
    theirs = gpt2_bridge.all_composition_scores(mode).scores.detach()
    assert ours.shape == theirs.shape == (3, 4, 3, 4)
    assert (ours - theirs).abs().max() < 1e-5
    assert theirs[1, :, 2].abs().min() > 0  # non-trivial: later-layer pairs are scored


def test_gpt2_circuits_equal_bridge(gpt2_bridge):
    w = _weights(gpt2_bridge)
    assert torch.allclose(w.OV.AB, gpt2_bridge.OV.AB.detach(), atol=1e-6)
    assert torch.allclose(w.QK.AB, gpt2_bridge.QK.AB.detach(), atol=1e-6)


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_gqa_head_scores_equal_bridge(gqa_bridge, mode):
    """The bridge stores 2 K/V heads for 4 query heads; our expand_kv must pair them as TL/HF do."""
    assert gqa_bridge.W_K.shape[1] == 2 and gqa_bridge.W_Q.shape[1] == 4
    ours = head_composition_scores(_weights(gqa_bridge), mode)
    theirs = gqa_bridge.all_composition_scores(mode).scores.detach()
    assert (ours - theirs).abs().max() < 1e-5


def test_gqa_wrong_mapping_would_disagree(gqa_bridge):
    b = gqa_bridge
    wrong = HeadWeights(b.W_Q, b.W_K.repeat(1, 2, 1, 1), b.W_V.repeat(1, 2, 1, 1), b.W_O)
    theirs = b.all_composition_scores("K").scores.detach()
    assert (head_composition_scores(wrong, "K") - theirs).abs().max() > 1e-3
