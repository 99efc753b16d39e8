"""probes.hooks: hooks run in order at the documented sites; bad sites, ids and returns are refused."""

from __future__ import annotations

import pytest
import torch

from probes.capture import capture
from probes.errors import InputError
from probes.hooks import parse_hook_site, run_with_hooks
from probes.testing import tiny_handle


@pytest.fixture(scope="module")
def h():
    return tiny_handle(seed=0, chat_template=False)


def test_sites_match_capture_and_hooks_run_in_order(h):
    prompts = ["the cat sat on the mat"]
    ids, _ = h.tokenize(prompts)
    sites = ["resid_pre.1", "z.0", "attn_out.0", "mlp_out.1", "resid_post.1"]
    ref = capture(h, prompts, sites, mode="all", progress=False)
    seen: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def keep(name):
        def fn(x):
            seen[name] = x.clone()
            order.append(name)
            return x

        return fn

    logits = run_with_hooks(h, ids, [(s, keep(s)) for s in sites] + [("z.0", keep("z.0-second"))])
    assert order.index("z.0") < order.index("z.0-second")
    for s in sites:
        torch.testing.assert_close(seen[s], ref[s], atol=1e-6, rtol=0)
    torch.testing.assert_close(logits, h.hf(ids).logits.detach(), atol=1e-5, rtol=0)


def test_hook_replaces_activation(h):
    ids, _ = h.tokenize(["the cat sat"])
    base = run_with_hooks(h, ids, [])
    zeroed = run_with_hooks(h, ids, [("attn_out.1", torch.zeros_like)])
    assert (zeroed - base).abs().max() > 1e-4


def test_names():
    h = tiny_handle()
    assert parse_hook_site("attn_out.1", h).tl_hook() == "blocks.1.attn.hook_out"
    assert parse_hook_site("z.-2", h).tl_hook() == "blocks.0.attn.hook_z"


def test_bad_inputs(h):
    ids, _ = h.tokenize(["the cat sat"])
    base = run_with_hooks(h, ids, [])
    with pytest.raises(InputError, match="Cannot hook site 'head_out.0'"):
        run_with_hooks(h, ids, [("head_out.0", lambda x: x)])
    with pytest.raises(InputError, match="layer 9 is out of range"):
        run_with_hooks(h, ids, [("z.9", lambda x: x)])
    with pytest.raises(InputError, match="one name like"):
        run_with_hooks(h, ids, [("z.*", lambda x: x)])
    with pytest.raises(InputError, match="must be callable"):
        run_with_hooks(h, ids, [("z.0", 3)])
    with pytest.raises(InputError, match=r"must return a tensor shaped \(1, 3, 4, 8\)"):
        run_with_hooks(h, ids, [("z.0", lambda x: x[..., 0])])
    with pytest.raises(InputError, match="ids must be an integer tensor"):
        run_with_hooks(h, ids.float(), [])
    # a hook that raised mid-forward left nothing attached
    assert torch.equal(run_with_hooks(h, ids, []), base)


def test_gemma3_sublayer_outputs_are_before_post_norms():
    """Gemma-3 normalises attention/MLP outputs; attn_out/mlp_out hooks must see the pre-norm values (as
    nnsight capture does), not the bridge's hook_attn_out (which is after post_attention_layernorm)."""
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
    prompts = ["the cat sat on the mat"]
    sites = ["attn_out.0", "mlp_out.1"]
    ref = capture(g, prompts, sites, mode="all", backend="nnsight", chat=False, progress=False)
    seen = {}
    run_with_hooks(
        g, g.tokenize(prompts)[0], [(s, lambda x, s=s: seen.setdefault(s, x.clone())) for s in sites]
    )
    for s in sites:
        torch.testing.assert_close(seen[s], ref[s], atol=1e-5, rtol=0)
