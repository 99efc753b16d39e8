"""Activation capture on a tiny random model: exact identities, backend agreement, truncation, caching."""

from __future__ import annotations

import pytest
import torch

from probes.activation_cache import ActivationCache
from probes.architecture import decoder_layers
from probes.capture import capture
from probes.errors import InputError
from probes.lens import logit_lens

PROMPTS = ["the cat sat on the mat", "a dog", "Mary gave ball to John and then went to the store"]
ALL = ["resid_pre.*", "z.*", "head_out.*", "attn_out.*", "mlp_out.*", "resid_post.*"]


@pytest.fixture(scope="module")
def full(tiny):
    return capture(tiny, PROMPTS, ALL, mode="all", progress=False)


def test_shapes(tiny, full):
    T = max(full.lengths.tolist())
    assert full["resid_post.1"].shape == (3, T, 32)
    assert full["z.0"].shape == (3, T, 4, 8)
    assert full["head_out.0"].shape == (3, T, 4, 32)
    last = capture(tiny, PROMPTS, ALL, mode="last", progress=False)
    assert last["resid_pre.0"].shape == (3, 32)


@pytest.mark.parametrize("backend", ["tl", "nnsight"])
def test_backends_agree_exactly(tiny, full, backend):
    other = capture(tiny, PROMPTS, ALL, mode="all", backend=backend, progress=False)
    for site in full.sites:
        torch.testing.assert_close(other[site], full[site], rtol=0, atol=1e-6)


def test_residual_identities(tiny, full):
    # resid_post = resid_pre + attn_out + mlp_out (Llama: no post-norms), and it feeds the next layer.
    for L in range(2):
        torch.testing.assert_close(
            full[f"resid_pre.{L}"] + full[f"attn_out.{L}"] + full[f"mlp_out.{L}"],
            full[f"resid_post.{L}"],
            atol=1e-5,
            rtol=0,
        )
    torch.testing.assert_close(full["resid_post.0"], full["resid_pre.1"], atol=0, rtol=0)
    # per-head writes sum to the attention output (o_proj has no bias here)
    torch.testing.assert_close(full["head_out.1"].sum(-2), full["attn_out.1"], atol=1e-5, rtol=0)


def test_last_mode_is_last_real_token_and_padding_is_invisible(tiny, full):
    last = capture(tiny, PROMPTS, ["resid_post.1"], mode="last", batch_size=1, progress=False)
    batched = capture(tiny, PROMPTS, ["resid_post.1"], mode="last", batch_size=3, progress=False)
    gathered = full["resid_post.1"][torch.arange(3), full.lengths - 1]
    torch.testing.assert_close(last["resid_post.1"], gathered, atol=1e-5, rtol=0)
    torch.testing.assert_close(batched["resid_post.1"], last["resid_post.1"], atol=1e-5, rtol=0)
    # padded positions are zeros, not garbage
    short = int(full.lengths[1])
    assert full["resid_post.1"][1, short:].abs().sum() == 0


def test_chat_template_changes_tokens(tiny):
    plain, _ = tiny.tokenize(["the cat"], chat=False)
    chat, _ = tiny.tokenize(["the cat"], chat=True)
    assert plain.tolist() == [[6, 8]]
    assert chat[0, 0] == tiny.tokenizer.bos_token_id and chat.shape[1] == 5


def test_logit_lens_of_final_residual_is_the_model_output(tiny):
    acts = capture(tiny, PROMPTS[:1], ["resid_post.1"], chat=False, progress=False)
    ids, _ = tiny.tokenize(PROMPTS[:1], chat=False)
    with torch.no_grad():
        ref = tiny.hf(ids).logits[0, -1]
    torch.testing.assert_close(logit_lens(tiny, acts["resid_post.1"])[0], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["tl", "nnsight"])
def test_truncated_forward_stops_and_matches(tiny, backend):
    calls = []
    last_layer = decoder_layers(tiny.hf)[1]
    hook = last_layer.register_forward_hook(lambda *a: calls.append(1))
    try:
        trunc = capture(tiny, PROMPTS, ["resid_post.0"], backend=backend, truncate=True, progress=False)
        assert calls == []  # layer 1 never ran
        fullrun = capture(tiny, PROMPTS, ["resid_post.0"], backend=backend, truncate=False, progress=False)
        assert len(calls) > 0
    finally:
        hook.remove()
    torch.testing.assert_close(trunc["resid_post.0"], fullrun["resid_post.0"], atol=0, rtol=0)


def test_cache_roundtrip_and_corruption(tiny, tmp_path):
    store = ActivationCache(tmp_path)
    a = capture(tiny, PROMPTS, ["resid_post.0", "z.1"], cache=store, progress=False)
    b = capture(tiny, PROMPTS, ["resid_post.0", "z.1"], cache=store, progress=False)
    assert not a.from_cache and b.from_cache
    torch.testing.assert_close(a["z.1"], b["z.1"], atol=0, rtol=0)
    assert len(store.index()) == 1
    # a different prompt set or site set is a different entry
    capture(tiny, PROMPTS[:2], ["resid_post.0", "z.1"], cache=store, progress=False)
    assert len(store.index()) == 2

    key = store.index().iloc[0]["key"]
    path = tmp_path / f"{key}.safetensors"
    for damage in (
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),  # truncated
        lambda p: p.write_bytes(p.read_bytes()[:-8] + b"\x00" * 8),
    ):  # flipped bytes
        damage(path)
        with pytest.warns(UserWarning, match="Corrupt activation cache file"):
            c = capture(tiny, PROMPTS, ["resid_post.0", "z.1"], cache=store, progress=False)
        assert not c.from_cache
        torch.testing.assert_close(c["z.1"], a["z.1"], atol=0, rtol=0)
        assert capture(tiny, PROMPTS, ["resid_post.0", "z.1"], cache=store, progress=False).from_cache


def test_corrupt_index_is_rebuilt(tiny, tmp_path):
    store = ActivationCache(tmp_path)
    capture(tiny, PROMPTS, ["resid_post.0"], cache=store, progress=False)
    store.index_path.write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match="unreadable"):
        again = capture(tiny, PROMPTS, ["resid_post.0"], cache=store, progress=False)
    assert not again.from_cache


def test_cache_key_tracks_weights(tiny, tmp_path):
    from probes.testing import tiny_handle

    store = ActivationCache(tmp_path)
    other = tiny_handle(seed=1)
    k0 = store.key(tiny, PROMPTS, ["resid_post.0"], mode="last", chat=True, dtype=torch.float32)
    k1 = store.key(other, PROMPTS, ["resid_post.0"], mode="last", chat=True, dtype=torch.float32)
    k2 = store.key(tiny, PROMPTS, ["resid_post.0"], mode="last", chat=False, dtype=torch.float32)
    assert len({k0, k1, k2}) == 3


def test_cache_key_tracks_a_merged_adapter(tmp_path):
    """A packaged base with a merged adapter keys on both hashes: a retrained adapter (same base pack,
    new adapter file) never reads its predecessor's activations."""
    from probes.testing import tiny_handle

    store = ActivationCache(tmp_path)
    keys = []
    for adapter in (None, "a" * 64, "b" * 64):
        h = tiny_handle(seed=0)
        h.pack_sha256, h.adapter_sha256 = "p" * 64, adapter
        keys.append(store.key(h, PROMPTS, ["resid_post.0"], mode="last", chat=True, dtype=torch.float32))
    assert len(set(keys)) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompts": []}, "non-empty list"),
        ({"prompts": "the cat"}, "single string"),
        ({"prompts": ["the cat", ""]}, "prompt 1 is empty; remove it"),
        ({"prompts": ["the cat", " \n "]}, "prompt 1 is only whitespace"),
        (
            {"prompts": ["the cat " * 200]},
            r"prompt 0 .* is \d+ tokens long, but .* has a context of 128 tokens \(rotary",
        ),
        ({"sites": ["resid_post.2"]}, r"layer 2 is out of range: this model has 2"),
        ({"sites": ["resid.0"]}, "Unknown site"),
        ({"sites": []}, "No sites"),
        ({"sites": ["z.one"]}, "layer must be an integer"),
        ({"mode": "first"}, "Unknown mode"),
        ({"backend": "pyvene"}, "backend must be"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_input_is_named(tiny, kwargs, match):
    args = {"prompts": PROMPTS, "sites": ["resid_post.0"], **kwargs}
    with pytest.raises(InputError, match=match):
        capture(tiny, args.pop("prompts"), args.pop("sites"), progress=False, **args)


def test_head_and_layer_checks(tiny):
    assert tiny.check_layer(-1) == 1
    with pytest.raises(InputError, match="head 4 is out of range"):
        tiny.check_head(4)


def test_backends_agree_on_gemma3_with_post_norms():
    """Gemma-3 has post-attention/post-MLP norms: both backends must report the pre-norm sublayer outputs."""
    import transformers

    from probes.handle import ModelHandle
    from probes.testing import tiny_tokenizer

    tok = tiny_tokenizer(chat_template=False)
    torch.manual_seed(0)
    cfg = transformers.Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    model = transformers.Gemma3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.5)
    g = ModelHandle(model, tok, name="tiny-gemma3")
    a = capture(g, PROMPTS, ALL, mode="all", backend="tl", progress=False)
    b = capture(g, PROMPTS, ALL, mode="all", backend="nnsight", progress=False)
    for site in a.sites:
        torch.testing.assert_close(a[site], b[site], atol=1e-5, rtol=0)
    torch.testing.assert_close(a["head_out.1"].sum(-2), a["attn_out.1"], atol=1e-5, rtol=0)


def test_nnsight_capture_after_the_bridge_wrapped_the_organism():
    """GPT-2 (Conv1D ``c_proj``, bridge alias ``attn.o``): nnsight still finds the plain HF modules."""
    from probes.loading import load_model

    handle = load_model("organism", backend="tl")
    handle.tl  # noqa: B018 -- build the bridge first: it wraps HF modules in place
    sites = ["z.0", "head_out.2", "attn_out.0", "mlp_out.1", "resid_post.1"]
    a = capture(handle, ["Mary gave the ball to John ."], sites, backend="nnsight", progress=False)
    b = capture(handle, ["Mary gave the ball to John ."], sites, backend="tl", progress=False)
    for s in sites:
        assert (a[s] - b[s]).abs().max().item() < 1e-5, s
