"""HeadWeights, OV SVD, GQA expansion, centring, component removal and RoPE-averaged QK."""

import pytest
import torch
from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb as gptj_apply_rotary
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as llama_apply_rotary
from transformers.models.llama.modeling_llama import repeat_kv

from analysis.channels import component_scores
from analysis.channels.scores import head_composition_scores, receiver_matrix
from probes.errors import InputError
from probes.head_weights import HeadWeights, expand_kv, qk_rotary_averaged, rotary_offset_matrix


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def weights():
    return HeadWeights.random(3, 4, 32, 8, generator=gen(0))


# ------------------------------------------------------------------ construction and SVD
def test_shapes_and_factored_circuits(weights):
    assert (weights.n_layers, weights.n_heads, weights.d_model, weights.d_head) == (3, 4, 32, 8)
    assert torch.allclose(weights.OV.AB, weights.W_V @ weights.W_O)
    assert torch.allclose(weights.QK.AB, weights.W_Q @ weights.W_K.transpose(-1, -2))


def test_ov_svd_is_thin_and_exact(weights):
    U, S, V = weights.ov_svd
    assert U.shape == V.shape == (3, 4, 32, 8) and S.shape == (3, 4, 8)
    dense = weights.OV.AB
    assert torch.allclose((U * S[..., None, :]) @ V.transpose(-1, -2), dense, atol=1e-5)
    assert torch.all(S[..., :-1] >= S[..., 1:] - 1e-6)
    eye = torch.eye(8).expand(3, 4, 8, 8)
    assert torch.allclose(V.transpose(-1, -2) @ V, eye, atol=1e-5)
    assert torch.allclose(U.transpose(-1, -2) @ U, eye, atol=1e-5)
    assert torch.allclose(S, torch.linalg.svdvals(dense)[..., :8], atol=1e-5)


def test_half_precision_is_upcast():
    w = HeadWeights.random(1, 2, 16, 4, generator=gen(1))
    h = HeadWeights(w.W_Q.half(), w.W_K.half(), w.W_V.bfloat16(), w.W_O.half())
    assert all(t.dtype == torch.float32 for t in (h.W_Q, h.W_K, h.W_V, h.W_O))
    assert h.ov_svd.S.dtype == torch.float32


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda w: {"W_Q": w.W_Q[0]}, "4-D"),
        (lambda w: {"W_O": w.W_O.transpose(-1, -2)}, "W_O has shape"),
        (lambda w: {"W_K": w.W_K[:, :2]}, "expand_kv"),
        (lambda w: {"W_V": w.W_V.clone().index_fill_(0, torch.tensor([0]), float("nan"))}, "NaN"),
        (lambda w: {"W_Q": w.W_Q.long()}, "floating-point"),
        (lambda w: {"W_Q": w.W_Q.numpy()}, "torch.Tensor"),
    ],
)
def test_bad_weights_raise_input_error(weights, change, match):
    kwargs = {"W_Q": weights.W_Q, "W_K": weights.W_K, "W_V": weights.W_V, "W_O": weights.W_O}
    kwargs.update(change(weights))
    with pytest.raises(InputError, match=match):
        HeadWeights(**kwargs)


# ------------------------------------------------------------------ GQA
def test_expand_kv_matches_hf_repeat_kv_not_repeat():
    """Query head h must use K/V head h // g (HF repeat_kv); torch.repeat would give h % n_kv."""
    n_heads, n_kv, d_model, d_head = 6, 2, 10, 3
    W_K = torch.randn(n_kv, d_model, d_head, generator=gen(2))
    x = torch.randn(1, 5, d_model, generator=gen(3))  # [batch, seq, d_model]
    keys = torch.einsum("bsd,kde->bkse", x, W_K)  # [batch, n_kv, seq, d_head]
    hf = repeat_kv(keys, n_heads // n_kv)  # [batch, n_heads, seq, d_head]
    ours = torch.einsum("bsd,hde->bhse", x, expand_kv(W_K, n_heads))
    wrong = torch.einsum("bsd,hde->bhse", x, W_K.repeat(n_heads // n_kv, 1, 1))
    assert torch.allclose(ours, hf)
    assert not torch.allclose(wrong, hf)
    assert [int(h) // (n_heads // n_kv) for h in range(n_heads)] == [0, 0, 0, 1, 1, 1]


def test_expand_kv_on_stacked_weights_and_errors():
    W = torch.randn(2, 2, 5, 3, generator=gen(4))  # [n_layers, n_kv, d_model, d_head]
    out = expand_kv(W, 4)
    assert out.shape == (2, 4, 5, 3)
    for h in range(4):
        assert torch.equal(out[:, h], W[:, h // 2])
    assert expand_kv(W, 2) is W
    with pytest.raises(InputError, match="multiple"):
        expand_kv(W, 3)
    with pytest.raises(InputError, match="n_kv_heads"):
        expand_kv(torch.randn(4, 5), 4)


def test_from_weights_expands_gqa():
    g = gen(5)
    W_Q, W_O = torch.randn(2, 4, 12, 3, generator=g), torch.randn(2, 4, 3, 12, generator=g)
    W_K, W_V = torch.randn(2, 2, 12, 3, generator=g), torch.randn(2, 2, 12, 3, generator=g)
    w = HeadWeights.from_weights(W_Q, W_K, W_V, W_O)
    assert w.W_K.shape == (2, 4, 12, 3)
    assert torch.equal(w.W_V[:, 3], W_V[:, 1]) and torch.equal(w.W_K[:, 1], W_K[:, 0])


# ------------------------------------------------------------------ centring
def test_center_writing_weights(weights):
    c = weights.center_writing_weights()
    assert c.writing_centered and not weights.writing_centered
    assert c.W_O.mean(-1).abs().max() < 1e-6
    proj = torch.eye(32) - torch.ones(32, 32) / 32
    assert torch.allclose(c.OV.AB, weights.OV.AB @ proj, atol=1e-5)  # output projected off all-ones
    U, S, V = c.ov_svd
    ones = torch.ones(32) / 32**0.5
    assert (torch.einsum("lhdc,d->lhc", V, ones)[S > 1e-4]).abs().max() < 1e-4
    assert torch.allclose(c.center_writing_weights().W_O, c.W_O, atol=1e-6)  # idempotent
    assert torch.equal(c.W_Q, weights.W_Q)  # reading weights untouched
    assert HeadWeights.from_weights(
        weights.W_Q, weights.W_K, weights.W_V, weights.W_O, center_writing_weights=True
    ).writing_centered


def test_centering_removes_spurious_all_ones_composition():
    """A sender that writes along all-ones composes with a receiver reading all-ones; centring removes it."""
    w = HeadWeights.random(2, 2, 32, 4, generator=gen(6))
    ones = torch.ones(32) / 32**0.5
    W_O, W_Q = w.W_O.clone(), w.W_Q.clone()
    W_O[0, 0] += 5 * ones  # every OV row gets an all-ones part
    W_Q[1, 0, :, 0] += 5 * ones
    raw = HeadWeights(W_Q, w.W_K, w.W_V, W_O)
    before = head_composition_scores(raw, "Q")[0, 0, 1, 0]
    after = head_composition_scores(raw.center_writing_weights(), "Q")[0, 0, 1, 0]
    assert before > 0.5 and after < 0.3


# ------------------------------------------------------------------ component removal (U4)
def test_remove_ov_component_equals_output_projection(weights):
    layer, head, i = 1, 2, 3
    U, S, V = weights.ov_svd
    u, s, v = U[layer, head, :, i], S[layer, head, i], V[layer, head, :, i]
    removed = weights.remove_ov_component(layer, head, i)
    expected = weights.OV.AB[layer, head] - s * torch.outer(u, v)
    assert torch.allclose(removed.OV.AB[layer, head], expected, atol=1e-5)
    x = torch.randn(7, 32, generator=gen(7))
    y = x @ weights.OV.AB[layer, head]
    assert torch.allclose(x @ removed.OV.AB[layer, head], y - (y @ v)[:, None] * v, atol=1e-5)
    assert torch.equal(removed.W_O[0], weights.W_O[0])  # other heads unchanged
    with pytest.raises(InputError, match="component"):
        weights.remove_ov_component(0, 0, 8)


# ------------------------------------------------------------------ RoPE
def _rope_neox(x, positions, rotary_dim, base):
    """Reference: HF Llama/NeoX rotary on the first rotary_dim dims. x: [seq, d_head]."""
    inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim))
    freqs = positions.double()[:, None] * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos()[None], emb.sin()[None]  # [1, seq, rotary_dim]
    rot = x[None, None, :, :rotary_dim].double()  # [batch, heads, seq, rotary_dim]
    out, _ = llama_apply_rotary(rot, rot, cos, sin, unsqueeze_dim=1)
    return torch.cat([out[0, 0], x[:, rotary_dim:].double()], dim=-1)


def _rope_gptj(x, positions, rotary_dim, base):
    """Reference: HF GPT-J (interleaved pairs) rotary on the first rotary_dim dims. x: [seq, d_head]."""
    inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim))
    freqs = positions.double()[:, None] * inv_freq
    rot = x[None, :, None, :rotary_dim].double()  # [batch, seq, heads, rotary_dim]
    out = gptj_apply_rotary(rot, freqs.sin()[None], freqs.cos()[None])
    return torch.cat([out[0, :, 0], x[:, rotary_dim:].double()], dim=-1)


@pytest.mark.parametrize("interleaved, rope", [(False, _rope_neox), (True, _rope_gptj)])
@pytest.mark.parametrize("rotary_dim", [8, 4])
def test_rotary_offset_form_matches_hf_rotary(interleaved, rope, rotary_dim):
    """x_q W_Q M(δ) W_Kᵀ x_kᵀ equals the dot product of HF-rotated q (position p+δ) and k (position p)."""
    g = gen(8)
    d_model, d_head, base = 16, 8, 500.0
    W_Q, W_K = torch.randn(d_model, d_head, generator=g), torch.randn(d_model, d_head, generator=g)
    xq, xk = torch.randn(6, d_model, generator=g), torch.randn(6, d_model, generator=g)
    for delta, p in [(0, 0), (1, 5), (7, 3), (30, 11)]:
        q = rope(xq @ W_Q, torch.full((6,), p + delta), rotary_dim, base)
        k = rope(xk @ W_K, torch.full((6,), p), rotary_dim, base)
        expected = (q * k).sum(-1)
        qk = qk_rotary_averaged(W_Q.double(), W_K.double(), rotary_dim, base, [delta], interleaved)
        assert torch.allclose(
            torch.einsum("nd,de,ne->n", xq.double(), qk.AB, xk.double()), expected, atol=1e-8
        )


def test_rotary_offset_zero_is_plain_qk():
    w = HeadWeights.random(2, 3, 16, 8, generator=gen(9))
    assert torch.equal(rotary_offset_matrix(8, 8, [0]), torch.eye(8))
    assert torch.allclose(qk_rotary_averaged(w.W_Q, w.W_K, 8, 10000.0, [0]).AB, w.QK.AB)
    rw = HeadWeights(w.W_Q, w.W_K, w.W_V, w.W_O, rotary_dim=4)
    assert torch.allclose(rw.QK_at(0).AB, rw.QK.AB)
    at_zero = component_scores(rw, "QK", qk_offsets=[0])["score"].to_numpy()
    static = component_scores(rw, "QK")["score"].to_numpy()
    assert abs(at_zero - static).max() < 1e-6


def test_rotary_average_equals_explicit_loop():
    w = HeadWeights.random(2, 3, 16, 8, generator=gen(10))
    offsets = [1, 2, 5, 13]
    avg = qk_rotary_averaged(w.W_Q, w.W_K, 6, 100.0, offsets).AB
    loop = sum(qk_rotary_averaged(w.W_Q, w.W_K, 6, 100.0, [o]).AB for o in offsets) / len(offsets)
    assert torch.allclose(avg, loop, atol=1e-5)
    assert not torch.allclose(avg, w.QK.AB, atol=1e-3)
    rw = HeadWeights(w.W_Q, w.W_K, w.W_V, w.W_O, rotary_dim=6, rotary_base=100.0)
    assert torch.allclose(rw.QK_at(offsets).AB, avg)
    assert torch.allclose(receiver_matrix(rw, "Q", offsets).AB, avg, atol=1e-6)
    assert torch.allclose(receiver_matrix(rw, "K", offsets).AB, avg.transpose(-1, -2), atol=1e-6)
    M = rotary_offset_matrix(8, 6, [3])  # a single offset is a rotation
    assert torch.allclose(M @ M.T, torch.eye(8), atol=1e-6)


def test_rotary_errors():
    w = HeadWeights.random(1, 1, 8, 4, generator=gen(11))
    with pytest.raises(InputError, match="rotary"):
        w.QK_at([1])
    with pytest.raises(InputError, match="rotary_dim"):
        rotary_offset_matrix(4, 3, [0])
    with pytest.raises(InputError, match="offsets"):
        rotary_offset_matrix(4, 4, [])
    with pytest.raises(InputError, match="qk_offsets"):
        component_scores(w, "Q", qk_offsets=[1])
