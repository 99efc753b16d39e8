"""analysis.interventions: hook twin of the weight edit, mean ablations, subspace steering (exact checks)."""

from __future__ import annotations

import pytest
import torch

from analysis.interventions import (
    ComponentMeanAblation,
    ComponentRescale,
    HeadMeanAblation,
    SubspaceAdd,
    SubspaceSet,
    add_in_subspace,
    check_orthonormal,
    coordinates,
    orthonormalize,
    replace_in_subspace,
    rescale_along,
    run_with_interventions,
)
from probes.capture import capture
from probes.edits import EditSpec, rescale_components
from probes.errors import InputError
from probes.testing import tiny_handle
from probes.weights import head_ov_svd

PROMPTS = ["the cat sat on the mat", "Mary gave ball to John and then went to the store", "a dog"]
REFERENCE = ["the dog went to the store", "Anna put the hat on the mat", "Tom gave a sock to Mary"]


@pytest.fixture(scope="module")
def h():
    return tiny_handle(seed=2)


def _basis(d: int, k: int, seed: int = 0) -> torch.Tensor:
    return orthonormalize(torch.randn(d, k, generator=torch.Generator().manual_seed(seed)))


# ------------------------------------------------------------------------------------------ pure maths


def test_subspace_maths_exact():
    B = _basis(16, 3)
    x = torch.randn(5, 7, 16)
    t = torch.randn(3)
    y = replace_in_subspace(x, B, t)
    torch.testing.assert_close(coordinates(y, B), t.expand(5, 7, 3), atol=1e-6, rtol=0)
    P = torch.eye(16) - B @ B.T  # orthogonal complement unchanged
    torch.testing.assert_close(y @ P, x @ P, atol=1e-6, rtol=0)
    c = torch.randn(5, 7, 3)
    z = add_in_subspace(x, B, c)
    torch.testing.assert_close(coordinates(z - x, B), c, atol=1e-6, rtol=0)
    torch.testing.assert_close((z - x) @ P, torch.zeros_like(x), atol=1e-6, rtol=0)
    v = B[:, 0]
    r = rescale_along(x, v, 0.25)
    torch.testing.assert_close(r @ v, 0.25 * (x @ v), atol=1e-6, rtol=0)
    torch.testing.assert_close(rescale_along(x, v, 0.0) @ v, torch.zeros(5, 7), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------ edit ≡ hook


@pytest.mark.parametrize(
    "edits",
    [[(1, 2, 0, 0.0)], [(0, 1, 3, 0.5)], [(0, 0, 0, 2.0), (0, 0, 5, 0.0), (1, 3, 1, -1.0)]],
    ids=["remove", "halve", "three"],
)
def test_weight_edit_equals_hook(h, edits):
    spec = EditSpec.build(h, edits)
    base = run_with_interventions(h, PROMPTS).logits
    hooked = run_with_interventions(h, PROMPTS, ComponentRescale.from_spec(spec)).logits
    with spec.apply(h):
        edited = run_with_interventions(h, PROMPTS).logits
    assert (edited - hooked).abs().max() < 1e-5
    assert (edited - base).abs().max() > 1e-3  # the edit does something


def _other_arch(arch: str):
    import transformers

    from probes.handle import ModelHandle
    from probes.testing import tiny_tokenizer

    tok = tiny_tokenizer(chat_template=False)
    torch.manual_seed(0)
    if arch == "gpt2":
        model = transformers.GPT2LMHeadModel(
            transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=len(tok), n_positions=64)
        )
    else:  # Gemma-3: post-attention norm, so the hook must act before it
        cfg = transformers.Gemma3TextConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, head_dim=8, max_position_embeddings=64,
            layer_types=["sliding_attention", "full_attention"], pad_token_id=tok.pad_token_id,
        )  # fmt: skip
        model = transformers.Gemma3ForCausalLM(cfg)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.normal_(0, 0.5)
    return ModelHandle(model.float().eval(), tok, name=f"tiny-{arch}")


@pytest.mark.parametrize("arch", ["gpt2", "gemma3"])
def test_weight_edit_equals_hook_other_architectures(arch):
    g = _other_arch(arch)
    spec = EditSpec.build(g, [(0, 1, 0, 0.0), (1, 2, 2, 2.0)])
    base = run_with_interventions(g, PROMPTS).logits
    hooked = run_with_interventions(g, PROMPTS, ComponentRescale.from_spec(spec)).logits
    with spec.apply(g):
        edited = run_with_interventions(g, PROMPTS).logits
    assert (edited - hooked).abs().max() < 1e-5
    assert (edited - base).abs().max() > 1e-4


def test_from_component_matches_spec_vector(h):
    spec = EditSpec.build(h, [(1, 1, 2, 0.0)])
    iv = ComponentRescale.from_component(h, 1, 1, 2, 0.0)
    assert torch.equal(iv.direction, spec.vectors[0])


def test_removal_hook_projects_head_output_off_v(h):
    """Weight edit ≡ output projection: removing component i = projecting y_h off v_i (note §2.5)."""
    layer, head = 1, 0
    v = head_ov_svd(h, layer, head).V[:, 0]
    base = run_with_interventions(h, PROMPTS, record=["head_out.1", "attn_out.1"])
    run = run_with_interventions(h, PROMPTS, [ComponentRescale(layer, head, v, 0.0)], record=["attn_out.1"])
    y = base.acts["head_out.1"][:, :, head]
    torch.testing.assert_close(
        run.acts["attn_out.1"], base.acts["attn_out.1"] - (y @ v)[..., None] * v, atol=1e-6, rtol=0
    )
    with rescale_components(h, [(layer, head, 0, 0.0)]):
        edited = capture(h, PROMPTS, ["head_out.1"], mode="all", progress=False, chat=False)
    real = torch.arange(y.shape[1])[None, :] < edited.lengths[:, None]  # drop capture's zero padding
    proj = y - (y @ v)[..., None] * v
    torch.testing.assert_close(edited["head_out.1"][:, :, head][real], proj[real], atol=1e-6, rtol=0)


SMOL_PROMPTS = ["The capital of France is", "When Mary and John went to the store, John gave a drink to"]
SMOL_EDITS = [(9, 3, 0, 0.0), (14, 5, 1, 3.0)]


def _edit_vs_hook(handle) -> tuple[float, float]:
    spec = EditSpec.build(handle, SMOL_EDITS)
    base = run_with_interventions(handle, SMOL_PROMPTS).logits
    hooked = run_with_interventions(handle, SMOL_PROMPTS, ComponentRescale.from_spec(spec)).logits
    with spec.apply(handle):
        edited = run_with_interventions(handle, SMOL_PROMPTS).logits
    return float((edited - hooked).abs().max()), float((edited - base).abs().max())


@pytest.mark.pack
def test_weight_edit_equals_hook_smollm2(smollm2):
    """fp32: equal up to float32 rounding through 30 layers (measured 5.9e-5 with |logits| <= 35; the same
    model's batch-of-1 vs batch-of-2 logits differ by 4.4e-5). The fp64 test below shows the identity is exact."""
    diff, effect = _edit_vs_hook(smollm2)
    print(f"SmolLM2 fp32 max |edit - hook| logit diff: {diff:.3g} (edit effect {effect:.3g})")
    assert diff < 2e-4 and effect > 1e-1


@pytest.mark.pack
@pytest.mark.slow
def test_weight_edit_equals_hook_smollm2_float64():
    from probes.loading import load_model

    h64 = load_model("smollm2-135m-instruct", backend="hf", progress=False)
    h64.hf.double()  # a private copy: the session fixture stays float32
    diff, effect = _edit_vs_hook(h64)
    print(f"SmolLM2 fp64 max |edit - hook| logit diff: {diff:.3g} (edit effect {effect:.3g})")
    assert diff < 1e-5 and effect > 1e-1


# ------------------------------------------------------------------------------------------ mean ablation


def test_head_mean_ablation(h):
    abl = HeadMeanAblation.fit(h, 1, 3, REFERENCE)
    ref = capture(h, REFERENCE, ["z.1"], mode="all", chat=False, progress=False)
    manual = torch.cat([ref["z.1"][i, : int(n), 3] for i, n in enumerate(ref.lengths)]).mean(0)
    torch.testing.assert_close(abl.mean_z, manual, atol=1e-6, rtol=0)
    base = run_with_interventions(h, PROMPTS, record=["z.1"])
    run = run_with_interventions(h, PROMPTS, [abl], record=["z.1"])
    z = run.acts["z.1"]
    torch.testing.assert_close(z[:, :, 3], abl.mean_z.expand_as(z[:, :, 3]), atol=0, rtol=0)
    torch.testing.assert_close(z[:, :, :3], base.acts["z.1"][:, :, :3], atol=0, rtol=0)
    last = run_with_interventions(
        h, PROMPTS, [HeadMeanAblation(1, 3, abl.mean_z, positions="last")], record=["z.1"]
    )
    idx = torch.arange(3), base.lengths - 1
    torch.testing.assert_close(last.acts["z.1"][idx][:, 3], abl.mean_z.expand(3, -1), atol=0, rtol=0)
    assert torch.equal(last.acts["z.1"][0, 0], base.acts["z.1"][0, 0])  # other positions untouched


def test_component_mean_ablation(h):
    layer, head = 0, 2
    abl = ComponentMeanAblation.fit(h, layer, head, REFERENCE, component=0)
    v = abl.direction
    ref = capture(h, REFERENCE, ["head_out.0"], mode="all", chat=False, progress=False)
    coords = torch.cat([ref["head_out.0"][i, : int(n), head] @ v for i, n in enumerate(ref.lengths)])
    assert abs(abl.mean - float(coords.mean())) < 1e-6
    base = run_with_interventions(h, PROMPTS, record=["head_out.0", "attn_out.0"])
    run = run_with_interventions(h, PROMPTS, [abl], record=["attn_out.0"])
    y = base.acts["head_out.0"]
    # the head's write now has coordinate `mean` along v; everything else in attn_out is unchanged
    new_head = run.acts["attn_out.0"] - (base.acts["attn_out.0"] - y[:, :, head])
    torch.testing.assert_close(new_head @ v, torch.full(new_head.shape[:2], abl.mean), atol=1e-5, rtol=0)
    P = torch.eye(32) - torch.outer(v, v)
    torch.testing.assert_close(run.acts["attn_out.0"] @ P, base.acts["attn_out.0"] @ P, atol=1e-5, rtol=0)
    by_dir = ComponentMeanAblation.fit(h, layer, head, REFERENCE, direction=v)
    assert abs(by_dir.mean - abl.mean) < 1e-6


# ------------------------------------------------------------------------------------------ steering


@pytest.mark.parametrize("site", ["resid_pre.1", "resid_post.0", "attn_out.1", "mlp_out.0"])
def test_subspace_set_at_site(h, site):
    B, t = _basis(32, 3, seed=1), torch.tensor([1.5, -0.5, 2.0])
    base = run_with_interventions(h, PROMPTS, record=[site])
    run = run_with_interventions(h, PROMPTS, [SubspaceSet(site, B, t)], record=[site])
    x0, x1 = base.acts[site], run.acts[site]
    torch.testing.assert_close(coordinates(x1, B), t.expand(*x1.shape[:2], 3), atol=1e-5, rtol=0)
    P = torch.eye(32) - B @ B.T
    torch.testing.assert_close(x1 @ P, x0 @ P, atol=1e-5, rtol=0)
    assert (run.logits - base.logits).abs().max() > 1e-4


def test_subspace_add_and_positions(h):
    B, c = _basis(32, 2, seed=3), torch.tensor([3.0, -1.0])
    base = run_with_interventions(h, PROMPTS, record=["resid_pre.1"])
    run = run_with_interventions(
        h, PROMPTS, [SubspaceAdd("resid_pre.1", B, c, positions=[0, -1])], record=["resid_pre.1"]
    )
    delta = run.acts["resid_pre.1"] - base.acts["resid_pre.1"]
    for b, n in enumerate(base.lengths.tolist()):
        for p in range(delta.shape[1]):
            expect = c @ B.T if p in (0, n - 1) else torch.zeros(32)
            torch.testing.assert_close(delta[b, p], expect, atol=1e-5, rtol=0)


def test_subspace_set_on_z_and_head_out(h):
    Bz, tz = _basis(8, 2, seed=4), torch.tensor([0.3, -0.7])
    base = run_with_interventions(h, PROMPTS, record=["z.1", "head_out.1", "attn_out.1"])
    run = run_with_interventions(h, PROMPTS, [SubspaceSet("z.1", Bz, tz, head=2)], record=["z.1"])
    z0, z1 = base.acts["z.1"], run.acts["z.1"]
    torch.testing.assert_close(coordinates(z1[:, :, 2], Bz), tz.expand(3, z1.shape[1], 2), atol=1e-6, rtol=0)
    Pz = torch.eye(8) - Bz @ Bz.T
    torch.testing.assert_close(z1[:, :, 2] @ Pz, z0[:, :, 2] @ Pz, atol=1e-6, rtol=0)
    assert torch.equal(z1[:, :, [0, 1, 3]], z0[:, :, [0, 1, 3]])

    B, t = _basis(32, 2, seed=5), torch.tensor([2.0, 1.0])
    run = run_with_interventions(h, PROMPTS, [SubspaceSet("head_out.1", B, t, head=1)], record=["attn_out.1"])
    y = base.acts["head_out.1"][:, :, 1]
    new_y = run.acts["attn_out.1"] - (base.acts["attn_out.1"] - y)
    torch.testing.assert_close(coordinates(new_y, B), t.expand(3, y.shape[1], 2), atol=1e-5, rtol=0)
    P = torch.eye(32) - B @ B.T
    torch.testing.assert_close(new_y @ P, y @ P, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------ bad input


def test_bad_inputs(h):
    B = _basis(32, 2)
    t = torch.zeros(2)
    cases = [
        (SubspaceSet("resid_pre.1", B * 2, t), "not orthonormal"),
        (SubspaceSet("resid_pre.1", _basis(16, 2), t), r"shape \(16, 2\); expected \[d=32, k\]"),
        (SubspaceSet("resid_pre.1", B, torch.zeros(3)), r"values must be a tensor \[..., k=2\]"),
        (SubspaceSet("resid_pre.1", B, torch.tensor([float("nan"), 0.0])), "NaN"),
        (SubspaceSet("z.1", _basis(8, 2), t), "per head: pass head="),
        (SubspaceSet("resid_pre.1", B, t, head=0), "only applies to 'z.L' and 'head_out.L'"),
        (SubspaceSet("head_out.1", B, t, head=9), "head 9 is out of range"),
        (SubspaceSet("resid_pre.7", B, t), "layer 7 is out of range"),
        (SubspaceSet("bogus.1", B, t), "Unknown site"),
        (SubspaceSet("resid_pre.*", B, t), "one name like"),
        (SubspaceAdd("resid_pre.1", B, t, positions=[50]), "position 50 is out of range for prompt 0"),
        (SubspaceAdd("resid_pre.1", B, t, positions="first"), "positions must be None, 'last'"),
        (ComponentRescale(0, 0, torch.ones(32), 0.0), "unit-norm"),
        (ComponentRescale(0, 0, torch.ones(8) / 8**0.5, 0.0), r"float vector \[d_model=32\]"),
        (ComponentRescale(0, 5, B[:, 0], 0.0), "head 5 is out of range"),
        (HeadMeanAblation(0, 0, torch.zeros(5)), r"mean_z must be a vector \[d_head=8\]"),
        ("not an intervention", "is not an intervention"),
    ]
    for iv, match in cases:
        with pytest.raises(InputError, match=match):
            run_with_interventions(h, PROMPTS, [iv])
    with pytest.raises(InputError, match="alpha must be a finite number"):
        ComponentRescale(0, 0, B[:, 0], float("inf"))
    with pytest.raises(InputError, match="component 8 is out of range"):
        ComponentRescale.from_component(h, 0, 0, 8, 0.0)
    with pytest.raises(InputError, match="non-empty list of prompts"):
        HeadMeanAblation.fit(h, 0, 0, [])
    with pytest.raises(InputError, match="exactly one of component= .* or direction="):
        ComponentMeanAblation.fit(h, 0, 0, REFERENCE)
    with pytest.raises(InputError, match="Cannot record 'head_in.0'"):
        run_with_interventions(h, PROMPTS, record=["head_in.0"])
    with pytest.raises(InputError, match="linearly dependent"):
        orthonormalize(torch.ones(4, 2))
    with pytest.raises(InputError, match="not orthonormal"):
        check_orthonormal(torch.ones(4, 2), 4)
