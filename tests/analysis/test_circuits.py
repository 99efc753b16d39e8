"""IOI circuit location: exact checks on the tiny model, one real check on SmolLM2."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.circuits import (
    IOIBatch,
    abc_prompts,
    attention_to_positions,
    component_vs_head,
    direct_logit_attribution,
    dla_matrix,
    head_ablation_effects,
    head_attention,
    inhibition_scores,
    ioi_batch,
    mover_heads,
    query_path_patch,
    run_clean,
    sender_ranks,
)
from analysis.circuits.clean_run import BRIDGE_ONLY
from probes.architecture import decoder_layers, input_norm
from probes.capture import capture
from probes.errors import InputError
from probes.hooks import run_with_hooks
from probes.sites import Site
from probes.weights import head_ov_svd, raw_attention_weights

PROMPTS = [
    ("Mary and John went to the store John gave a ball to", "Mary", "John"),
    ("Anna and Tom went to the store Tom gave a hat to", "Anna", "Tom"),
    ("John and Mary went to the store John gave a sock to", "Mary", "John"),
]


def _prompts(tok) -> pd.DataFrame:
    df = pd.DataFrame(PROMPTS, columns=["prompt", "answer", "distractor"])
    df["answer_id"] = [tok.convert_tokens_to_ids(x) for x in df.answer]
    df["distractor_id"] = [tok.convert_tokens_to_ids(x) for x in df.distractor]
    return df


@pytest.fixture(scope="module")
def setup(tiny):
    batch = ioi_batch(tiny, _prompts(tiny.tokenizer))
    return batch, run_clean(tiny, batch, key_layers=[1])


def test_ioi_positions(setup):
    batch, _ = setup
    assert batch.io_pos.tolist() == [0, 0, 2]
    assert batch.s1_pos.tolist() == [2, 2, 0]
    assert batch.s2_pos.tolist() == [7, 7, 7]
    assert batch.end_pos.tolist() == [11, 11, 11]


def test_ioi_batch_rejects_missing_name(tiny):
    df = _prompts(tiny.tokenizer).iloc[:1].assign(prompt="Mary and Tom went to the store gave a ball to")
    with pytest.raises(InputError, match="S token twice"):
        ioi_batch(tiny, df)


def test_abc_prompts_replace_second_subject(tiny):
    df = _prompts(tiny.tokenizer)
    abc = abc_prompts(df.assign(prompt=df.prompt), _NameTok(), seed=0)
    for old, new, io, s in zip(df.prompt, abc.prompt, df.answer, df.distractor, strict=True):
        assert new.count(f" {s}") + new.startswith(s) == 1  # only S1 left
        assert len(new.split()) == len(old.split()) and io in new


class _NameTok:
    """Any word is one token (enough for ioi_names)."""

    def encode(self, text, add_special_tokens=False):
        return [hash(w) % 1000 + 10 for w in text.split()]

    def decode(self, ids):
        return ""


def test_dla_sums_to_logit_difference(tiny, setup):
    batch, run = setup
    A, comps, const = dla_matrix(tiny, run, batch)
    assert A.shape == (3, 1 + tiny.info.n_layers * (tiny.info.n_heads + 2)) and len(comps) == A.shape[1]
    torch.testing.assert_close(A.sum(1) + const, run.logit_diff, atol=1e-4, rtol=1e-4)
    df = direct_logit_attribution(tiny, run, batch)
    assert df.attrs["decomposition_error"] < 1e-5
    assert abs(df.attrs["dla_total"] - df.attrs["logit_diff"]) < 1e-4
    assert (df.kind == "head").sum() == tiny.info.n_layers * tiny.info.n_heads


def test_head_out_mean_matches_capture(tiny, setup):
    batch, run = setup
    acts = capture(tiny, list(batch.prompts.prompt), ["head_out.0"], mode="all", chat=False, progress=False)
    x = acts["head_out.0"]  # [batch, pos, H, d]
    mask = (torch.arange(x.shape[1])[None] < acts.lengths[:, None]).float()
    mean = (x * mask[..., None, None]).sum((0, 1)) / mask.sum()
    torch.testing.assert_close(run.head_out_mean[0], mean, atol=1e-5, rtol=1e-5)


def test_mean_ablation_equals_head_out_replacement(tiny, setup):
    batch, run = setup
    L, h = 0, 1
    got = head_ablation_effects(tiny, batch, run, heads=[(L, h)])
    W_O = raw_attention_weights(tiny, L).W_O[h]
    state = {}

    def read_z(z):
        state["y"] = z[..., h, :] @ W_O
        return z

    def swap(x):  # attn_out − y_h + mean(y_h)
        return x - state.pop("y") + run.head_out_mean[L][h]

    logits = run_with_hooks(tiny, batch.ids, [(f"z.{L}", read_z), (f"attn_out.{L}", swap)])
    b = torch.arange(3)
    last = logits[b, batch.end_pos]
    want = float((last[b, batch.answer_ids] - last[b, batch.distractor_ids]).mean())
    assert got.logit_diff_ablated.iloc[0] == pytest.approx(want, abs=1e-5)
    assert got.effect.iloc[0] == pytest.approx(float(run.logit_diff.mean()) - want, abs=1e-5)


def test_patching_with_itself_changes_nothing(tiny, setup):
    batch, run = setup
    df = head_ablation_effects(tiny, batch, run, heads=[(1, 3)], corrupted=batch)
    assert abs(df.effect.iloc[0]) < 1e-5 and df.method.iloc[0] == "patch_abc"


def test_attention_to_token_hand_checked():
    pat = torch.tensor(
        [
            [[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.1, 0.7]],
            [[0.25, 0.25, 0.25, 0.25], [0.0, 1.0, 0.0, 0.0]],
        ]
    )  # [batch 2, head 2, key 4]
    torch.testing.assert_close(
        attention_to_positions(pat, torch.tensor([1, 3])), torch.tensor([[0.3, 0.1], [0.25, 0.0]])
    )
    batch = SimpleNamespace(
        io_pos=torch.tensor([0, 1]), s1_pos=torch.tensor([1, 0]), s2_pos=torch.tensor([2, 2])
    )
    df = head_attention(SimpleNamespace(pattern_end={4: pat}), batch)
    assert df[["layer", "head"]].values.tolist() == [[4, 0], [4, 1]]
    np.testing.assert_allclose(df.attn_io, [(0.5 + 0.25) / 2, (0.1 + 1.0) / 2])
    np.testing.assert_allclose(df.attn_s, [(0.3 + 0.2 + 0.25 + 0.25) / 2, (0.1 + 0.1 + 0.0 + 0.0) / 2])
    np.testing.assert_allclose(df.io_minus_s, df.attn_io - df.attn_s)


def _query_shifted_row(handle, batch, receiver, delta):
    """A real forward pass where only the receiver layer's query projection sees ``norm(x + δ)`` at END
    (``x`` the live ``resid_pre``, ``norm`` the block's own input norm; keys and values see ``norm(x)``);
    returns the receiver head's END attention row ``[batch, pos]``."""
    L, r = receiver
    norm = input_norm(decoder_layers(handle.hf)[L])
    b, end = torch.arange(batch.ids.shape[0]), batch.end_pos
    seen = {}

    def resid(x, hook=None):
        seen["x"] = x
        return x

    def q_in(t, hook=None):
        t = t.clone()
        t[b, end] = norm(seen["x"][b, end] + delta.to(t.device, t.dtype))
        return t

    def pat(t, hook=None):
        seen["p"] = t[b, r, end]
        return t

    hooks = [
        (Site(L, "resid_pre").tl_hook(), resid),
        (f"blocks.{L}.attn.q.hook_in", q_in),  # the q projection's input (after the input norm)
        (BRIDGE_ONLY["pattern"].format(L=L), pat),
    ]
    with torch.no_grad():
        handle.tl.run_with_hooks(batch.ids.to(handle.device), fwd_hooks=hooks)
    return seen["p"].float().cpu()


def _check_query_path_patch(handle, batch, run, receiver, atol):
    """δ = 0 reproduces the recorded attention; a random δ matches the query-shifted forward pass."""
    L, r = receiver
    d = handle.info.d_model
    zero = torch.zeros(1, batch.ids.shape[0], d)
    torch.testing.assert_close(
        query_path_patch(handle, run, batch, receiver, zero)[0], run.pattern_end[L][:, r], atol=atol, rtol=0
    )
    delta = (
        torch.randn(batch.ids.shape[0], d, generator=torch.Generator().manual_seed(0))
        * run.resid_pre[L].std()
    )
    got = query_path_patch(handle, run, batch, receiver, delta[None])[0]
    torch.testing.assert_close(got, _query_shifted_row(handle, batch, receiver, delta), atol=atol, rtol=0)
    assert not torch.allclose(got, run.pattern_end[L][:, r], atol=1e-4)  # the patch did something


def test_query_path_patch_matches_query_shifted_forward(tiny, setup):
    """Analytic query-only patch = the model's own attention with δ added to the query's input only."""
    batch, run = setup
    _check_query_path_patch(tiny, batch, run, (1, 2), atol=1e-5)


def test_query_path_patch_gemma_norm():
    """Gemma's input norm scales by ``1 + γ``: the analytic path runs the model's own norm module."""
    import transformers

    from probes.handle import ModelHandle
    from probes.testing import tiny_tokenizer

    tok = tiny_tokenizer(chat_template=False)
    cfg = transformers.GemmaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.GemmaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.5)
    g = ModelHandle(model, tok, name="tiny-gemma")
    batch = ioi_batch(g, _prompts(tok))
    _check_query_path_patch(g, batch, run_clean(g, batch, key_layers=[1]), (1, 2), atol=1e-5)


def test_query_path_patch_needs_keys(tiny, setup):
    batch, run = setup
    with pytest.raises(InputError, match="key_layers"):
        query_path_patch(tiny, run, batch, (0, 0), torch.zeros(1, 3, tiny.info.d_model))


def test_inhibition_scores_and_component_vs_head(tiny, setup):
    batch, run = setup
    inh = inhibition_scores(tiny, run, batch, (1, 2))
    assert len(inh) == tiny.info.n_heads and set(inh.sender_layer) == {0}
    np.testing.assert_allclose(inh.effect, inh.metric_clean - inh.metric_patched)
    # patching with the clean run itself as "corrupted" changes nothing
    same = inhibition_scores(tiny, run, batch, (1, 2), corrupted_run=run)
    np.testing.assert_allclose(same.effect, 0.0, atol=1e-6)
    V = head_ov_svd(tiny, 0, 1).V
    df = component_vs_head(tiny, run, batch, (0, 1), (1, 2), V[:, 0])
    assert list(df.scope) == ["query_path", "query_path", "full", "full"]
    qp = df[df.scope == "query_path"].set_index("variant")
    # the head-level query-path effect equals inhibition_scores' mean-ablation effect for that sender
    want = inh[(inh.sender_layer == 0) & (inh.sender_head == 1)].effect.iloc[0]
    assert qp.loc["mean", "effect_head"] == pytest.approx(want, abs=1e-6)
    np.testing.assert_allclose(df.fraction, df.effect_component / df.effect_head)


def test_component_removal_of_whole_span_equals_head_zero(tiny, setup):
    """Removing the head's own END output direction (query path) equals zeroing the head there."""
    batch, _ = setup
    one = IOIBatch(
        batch.prompts.iloc[:1],
        batch.ids[:1],
        batch.lengths[:1],
        batch.io_pos[:1],
        batch.s1_pos[:1],
        batch.s2_pos[:1],
    )
    run1 = run_clean(tiny, one, key_layers=[1])
    df = component_vs_head(tiny, run1, one, (0, 1), (1, 2), run1.head_out[0][0, 1], full_forward=False)
    zero = df[df.variant == "zero"].iloc[0]
    assert zero.effect_component == pytest.approx(zero.effect_head, abs=1e-6)


def test_sender_ranks_and_movers():
    scan = pd.DataFrame(
        {
            "sender_layer": [0, 0, 0, 0, 1],
            "sender_head": [0, 0, 1, 1, 0],
            "component": [0, 1, 0, 1, 3],
            "receiver_layer": [2] * 5,
            "receiver_head": [1] * 5,
            "mode": ["Q"] * 5,
            "score": [0.1, 0.5, 0.2, 0.1, 0.3],
            "z": [1.0, 9.0, 2.0, 0.5, 4.0],
        }
    )
    rk = sender_ranks(scan, (2, 1))
    assert rk[["sender_layer", "sender_head", "component", "rank"]].values.tolist() == [
        [0, 0, 1, 1],
        [1, 0, 3, 2],
        [0, 1, 0, 3],
    ]
    with pytest.raises(InputError):
        sender_ranks(scan, (5, 0))
    attn = pd.DataFrame({"layer": [3, 3, 4], "head": [0, 1, 0], "io_minus_s": [0.5, 0.6, -0.2]})
    dla = pd.DataFrame(
        {"kind": ["head"] * 3, "layer": [3, 3, 4], "head": [0, 1, 0], "dla_mean": [2.0, -1.0, 5.0]}
    )
    mv = mover_heads(attn, dla, top_k=2)
    assert mv[["layer", "head"]].values.tolist() == [[3, 0]]


@pytest.mark.pack
def test_smollm2_top_mover_attends_to_io(smollm2):
    from analysis.tasks.ioi import ioi_prompts

    torch.set_num_threads(1)
    batch = ioi_batch(smollm2, ioi_prompts(smollm2.tokenizer, n_prompts=16, seed=1))
    run = run_clean(smollm2, batch)
    assert float(run.logit_diff.mean()) > 1.0
    dla = direct_logit_attribution(smollm2, run, batch)
    assert abs(dla.attrs["dla_total"] - dla.attrs["logit_diff"]) < 1e-2
    movers = mover_heads(head_attention(run, batch), dla, top_k=3)
    assert len(movers) >= 1
    top = movers.iloc[0]
    assert top.attn_io > top.attn_s and top.dla_mean > 0


@pytest.mark.pack
def test_smollm2_query_path_patch_matches_forward(smollm2):
    from analysis.tasks.ioi import ioi_prompts

    torch.set_num_threads(1)
    batch = ioi_batch(smollm2, ioi_prompts(smollm2.tokenizer, n_prompts=4, seed=0))
    run = run_clean(smollm2, batch, key_layers=[23])
    _check_query_path_patch(smollm2, batch, run, (23, 0), atol=2e-5)
