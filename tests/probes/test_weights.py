"""probes.weights: folded per-head weights reproduce the model's real projections, attention and writes."""

from __future__ import annotations

import pytest
import torch
import transformers

from probes.architecture import decoder_layers, norm_kind, rotary_params
from probes.capture import capture
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.head_weights import rotary_offset_matrix
from probes.testing import tiny_handle, tiny_tokenizer
from probes.weights import attention_input_gain, head_ov_svd, head_weights, raw_attention_weights

PROMPTS = ["the cat sat on the mat", "Mary gave ball to John and then went to the store"]


def _randomise_norms(model: torch.nn.Module, seed: int) -> None:
    """Random norm gains/biases so γ folding (and Gemma's 1 + γ) is actually exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name:
                p.copy_(
                    torch.randn(p.shape, generator=g) * 0.5
                    + (0.0 if "Gemma" in type(model).__name__ else 1.0)
                )


def _handle(arch: str, seed: int = 0) -> ModelHandle:
    tok = tiny_tokenizer(chat_template=False)
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    if arch == "llama":
        h = tiny_handle(seed=seed, chat_template=False)
        _randomise_norms(h.hf, seed)
        return h
    if arch == "qwen2":  # q/k/v biases
        cfg = transformers.Qwen2Config(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, **ids,
        )  # fmt: skip
        model = transformers.Qwen2ForCausalLM(cfg)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("_proj.bias"):
                    p.normal_()
    elif arch == "gemma3":  # (1 + γ) norms, q_norm/k_norm, local/global rotary bases, MQA
        cfg = transformers.Gemma3TextConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, head_dim=8, max_position_embeddings=64,
            layer_types=["sliding_attention", "full_attention"], **ids,
        )  # fmt: skip
        model = transformers.Gemma3ForCausalLM(cfg)
    elif arch == "gpt2":  # LayerNorm + fused Conv1D c_attn with biases
        cfg = transformers.GPT2Config(
            n_layer=2, n_head=4, n_embd=32, vocab_size=len(tok), n_positions=64,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        )  # fmt: skip
        model = transformers.GPT2LMHeadModel(cfg)
    else:
        raise ValueError(arch)
    _randomise_norms(model, seed)
    return ModelHandle(model.float().eval(), tok, name=f"tiny-{arch}")


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma3", "gpt2"])
def arch_handle(request):
    return _handle(request.param)


def _normalised(norm: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x̂ by hand: RMSNorm divides by the RMS; LayerNorm centres and divides by σ. No γ, no β."""
    eps = getattr(norm, "variance_epsilon", None) or getattr(norm, "eps", 1e-6)
    if norm_kind(norm) == "layernorm":
        x = x - x.mean(-1, keepdim=True)
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _record(handle: ModelHandle, layer: int):
    """Run PROMPTS[0]; return the residual entering the attention norm and the q/k/v (and q_norm) outputs."""
    block = decoder_layers(handle.hf)[layer]
    attn = getattr(block, "self_attn", None) or block.attn
    norm = getattr(block, "input_layernorm", None) or block.ln_1
    seen, hooks = {}, []

    def keep(name):
        def hook(module, args, output):
            seen[name], seen[name + "_in"] = output.detach(), args[0].detach()

        return hook

    hooks.append(norm.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0].detach())))
    names = ["q_proj", "k_proj", "v_proj", "q_norm", "k_norm"] if hasattr(attn, "q_proj") else ["c_attn"]
    hooks += [getattr(attn, n).register_forward_hook(keep(n)) for n in names if hasattr(attn, n)]
    ids, _ = handle.tokenize(PROMPTS[:1], chat=False)
    with torch.no_grad():
        handle.hf(ids)
    for hk in hooks:
        hk.remove()
    return norm, attn, seen


@pytest.mark.parametrize("layer", [0, 1])
def test_folded_qkv_reproduce_model_projections(arch_handle, layer):
    h = arch_handle
    w = head_weights(h)  # fold_ln=True
    norm, attn, seen = _record(h, layer)
    xhat = _normalised(norm, seen["x"])[0]  # [pos, d_model]
    H, g, d_head = h.info.n_heads, h.info.gqa_groups, h.info.d_head
    if "c_attn" in seen:
        bias = attn.c_attn.bias + norm.bias @ attn.c_attn.weight  # LayerNorm's β only feeds biases
        q, k, v = (seen["c_attn"][0] - bias).chunk(3, dim=-1)
    else:
        q, k, v = (seen[n][0] - (getattr(attn, n).bias if getattr(attn, n).bias is not None else 0) for n in
                   ("q_proj", "k_proj", "v_proj"))  # fmt: skip
    q, k, v = (t.reshape(t.shape[0], -1, d_head) for t in (q, k, v))
    if hasattr(attn, "q_norm"):  # Gemma-3: folded W_Q/W_K include the q_norm/k_norm gains (1 + w)
        q = q * (1 + attn.q_norm.weight)
        k = k * (1 + attn.k_norm.weight)
    for head in range(H):
        torch.testing.assert_close(xhat @ w.W_Q[layer, head], q[:, head], atol=1e-5, rtol=0)
        torch.testing.assert_close(xhat @ w.W_K[layer, head], k[:, head // g], atol=1e-5, rtol=0)
        torch.testing.assert_close(xhat @ w.W_V[layer, head], v[:, head // g], atol=1e-5, rtol=0)


def test_gemma_q_norm_direction_matches_model():
    """Folded Gemma W_Q gives q_norm's output up to the per-token, per-head 1/rms(q) factor."""
    h = _handle("gemma3")
    norm, attn, seen = _record(h, 1)
    xhat = _normalised(norm, seen["x"])[0]
    w = head_weights(h)
    q_raw = seen["q_norm_in"][0]  # [H, pos, d_head], q_proj output
    rms = torch.sqrt(q_raw.pow(2).mean(-1, keepdim=True) + attn.q_norm.eps)
    folded = torch.einsum("pm,hmd->hpd", xhat, w.W_Q[1])
    torch.testing.assert_close(folded / rms, seen["q_norm"][0], atol=1e-5, rtol=0)


def test_gains_and_norm_kinds():
    gem, gpt, lla = _handle("gemma3"), _handle("gpt2"), tiny_handle()
    block = decoder_layers(gem.hf)[0]
    assert norm_kind(block.input_layernorm) == "rms_offset"
    torch.testing.assert_close(attention_input_gain(gem, 0), 1 + block.input_layernorm.weight.detach())
    assert norm_kind(decoder_layers(gpt.hf)[0].ln_1) == "layernorm"
    assert norm_kind(decoder_layers(lla.hf)[0].input_layernorm) == "rms"
    # a copy, not a view of the live parameter
    g = attention_input_gain(lla, 0)
    g.add_(1.0)
    assert not torch.equal(g, decoder_layers(lla.hf)[0].input_layernorm.weight)


def test_layernorm_folding_centres_reading_weights():
    w = head_weights(_handle("gpt2"))
    assert w.W_Q.mean(dim=-2).abs().max() < 1e-6
    raw = head_weights(_handle("gpt2"), fold_ln=False)
    assert raw.W_Q.mean(dim=-2).abs().max() > 1e-3


def test_unfolded_weights_equal_bridge(tiny):
    """fold_ln=False returns the raw weights; they match TransformerBridge's (un-expanded K/V)."""
    w = head_weights(tiny, fold_ln=False)
    b = tiny.tl
    torch.testing.assert_close(w.W_Q, b.W_Q.detach(), atol=0, rtol=0)
    torch.testing.assert_close(w.W_O, b.W_O.detach(), atol=0, rtol=0)
    torch.testing.assert_close(w.W_K[:, ::2], b.W_K.detach(), atol=0, rtol=0)
    torch.testing.assert_close(w.W_V[:, 1::2], b.W_V.detach(), atol=0, rtol=0)
    # still works once the bridge has wrapped the HF modules, and returns copies
    r = raw_attention_weights(tiny, 0)
    r.W_O.add_(1.0)
    assert not torch.equal(raw_attention_weights(tiny, 0).W_O, r.W_O)


def test_w_o_times_z_reproduces_head_out_and_attn_out(tiny):
    w = head_weights(tiny, fold_ln=True)
    acts = capture(tiny, PROMPTS, ["z.1", "head_out.1", "attn_out.1"], mode="all", progress=False)
    head_out = torch.einsum("bphd,hdm->bphm", acts["z.1"], w.W_O[1])
    torch.testing.assert_close(head_out, acts["head_out.1"], atol=1e-5, rtol=0)
    torch.testing.assert_close(head_out.sum(-2), acts["attn_out.1"], atol=1e-5, rtol=0)


def _z_by_hand(h: ModelHandle, w, layer: int, kv_of) -> torch.Tensor:
    """Causal softmax attention from folded weights, RoPE via rotary_offset_matrix; kv_of(h) picks K/V."""
    norm, _, seen = _record(h, layer)
    xhat = _normalised(norm, seen["x"])[0]
    rp = rotary_params(h)
    T, d_head = xhat.shape[0], h.info.d_head
    M = torch.stack([
        torch.stack([rotary_offset_matrix(d_head, rp.rotary_dim, [i - j], rp.bases[layer]) for j in range(T)])
        for i in range(T)
    ])  # fmt: skip
    zs = []
    for head in range(h.info.n_heads):
        q = xhat @ w.W_Q[layer, head]
        k = xhat @ w.W_K[layer, kv_of(head)]
        v = xhat @ w.W_V[layer, kv_of(head)]
        scores = torch.einsum("id,ijde,je->ij", q, M, k) / d_head**0.5
        scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        zs.append(scores.softmax(-1) @ v)
    return torch.stack(zs, dim=1)  # [pos, H, d_head]


def test_gqa_mapping_matches_real_attention():
    """Query head h attends with K/V head h // group: recomputing z from folded weights matches the model."""
    h = tiny_handle(seed=3, chat_template=False)
    _randomise_norms(h.hf, 3)
    w = head_weights(h)
    g = h.info.gqa_groups
    assert g == 2
    z_model = capture(h, PROMPTS[:1], ["z.1"], mode="all", chat=False, progress=False)["z.1"][0]
    # expanded W_K[l, h] already is K/V head h // g: use it directly, and check the mapping explicitly
    right = _z_by_hand(h, w, 1, kv_of=lambda head: head)
    torch.testing.assert_close(right, z_model, atol=1e-5, rtol=0)
    assert torch.equal(w.W_K[1, 3], w.W_K[1, 2]) and not torch.equal(w.W_K[1, 1], w.W_K[1, 2])
    wrong = _z_by_hand(h, w, 1, kv_of=lambda head: (head % 2) * g)  # "repeat" instead of "repeat_interleave"
    assert (wrong - z_model).abs().max() > 1e-3


def test_rotary_params():
    assert rotary_params(_handle("gpt2")).rotary_dim is None
    assert head_weights(_handle("gpt2")).rotary_dim is None
    rp = rotary_params(_handle("gemma3"))
    assert rp.bases == (10000.0, 1000000.0) and rp.layer_types == ("sliding_attention", "full_attention")
    assert rp.base == 10000.0  # tie: the first layer's
    assert rp.rotary_dim == 8 and rp.rope_types == ("default", "default")
    assert head_weights(_handle("gemma3")).rotary_base == 10000.0


@pytest.mark.parametrize("center", [False, True])
def test_head_ov_svd_matches_full_decomposition(center):
    h = tiny_handle(seed=1)
    full = head_weights(h, center_writing=center).ov_svd
    for layer, head in [(0, 0), (1, 3)]:
        U, S, V = head_ov_svd(h, layer, head, center_writing=center)
        torch.testing.assert_close(S, full.S[layer, head], atol=1e-5, rtol=0)
        # singular vectors agree up to sign
        torch.testing.assert_close((V * full.V[layer, head]).sum(0).abs(), torch.ones(8), atol=1e-4, rtol=0)
    with pytest.raises(InputError, match="head 4 is out of range"):
        head_ov_svd(h, 0, 4)


def test_center_writing():
    w = head_weights(tiny_handle(), center_writing=True)
    assert w.writing_centered and w.W_O.mean(-1).abs().max() < 1e-6


def test_bad_inputs(tiny):
    with pytest.raises(InputError, match="layer 5 is out of range"):
        raw_attention_weights(tiny, 5)
    with pytest.raises(InputError, match="layer"):
        attention_input_gain(tiny, -3)
    cfg = transformers.GPTNeoXConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64
    )
    neox = ModelHandle(transformers.GPTNeoXForCausalLM(cfg), tiny_tokenizer(False), name="tiny-neox")
    with pytest.raises(InputError, match="Cannot find the attention module"):
        head_weights(neox)
    with pytest.raises(InputError, match="Unsupported norm"):
        norm_kind(torch.nn.Linear(2, 2))


@pytest.mark.pack
def test_smollm2_folded_projections(smollm2):
    h = smollm2
    w = head_weights(h)
    assert tuple(w.W_Q.shape) == (30, 9, 576, 64) and w.rotary_base == 100000.0
    for layer in (0, 17):
        norm, attn, seen = _record(h, layer)
        xhat = _normalised(norm, seen["x"])[0]
        k = seen["k_proj"][0].reshape(xhat.shape[0], 3, 64)
        q = seen["q_proj"][0].reshape(xhat.shape[0], 9, 64)
        for head in (0, 4, 8):
            torch.testing.assert_close(xhat @ w.W_Q[layer, head], q[:, head], atol=2e-4, rtol=1e-4)
            torch.testing.assert_close(xhat @ w.W_K[layer, head], k[:, head // 3], atol=2e-4, rtol=1e-4)
