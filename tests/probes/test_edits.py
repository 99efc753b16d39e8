"""probes.edits: rank-1 OV component edits rescale s_i, touch only one head, undo bit-exactly, round-trip."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import transformers

from probes.capture import capture
from probes.edits import (
    AppliedEdits,
    ComponentEdit,
    EditSpec,
    apply_edits,
    rescale_components,
    weights_fingerprint,
)
from probes.errors import InputError
from probes.handle import ModelHandle
from probes.testing import tiny_handle, tiny_tokenizer
from probes.weights import head_ov_svd, head_weights

PROMPTS = ["the cat sat on the mat", "Mary gave ball to John and then went to the store"]


@pytest.fixture(scope="module")
def h():
    return tiny_handle(seed=0)


def _snapshot(handle: ModelHandle) -> dict[str, tuple[torch.nn.Parameter, torch.Tensor]]:
    """Every parameter (by its name now) with a copy; parameter objects survive bridge wrapping."""
    return {n: (p, p.detach().clone()) for n, p in handle.hf.named_parameters()}


def _changed(snap) -> set[str]:
    return {n for n, (p, old) in snap.items() if not torch.equal(p, old)}


def _assert_same(handle: ModelHandle, snap) -> None:
    # (a GPT-2 bridge adds split q/k/v parameters of its own; the original ones must all still be there)
    assert {id(p) for p, _ in snap.values()} <= {id(p) for p in handle.hf.parameters()}
    assert _changed(snap) == set()


@pytest.mark.parametrize("alpha", [0.0, 0.5, 3.0, -1.0])
def test_edit_rescales_one_singular_value(h, alpha):
    layer, head, comp = 1, 2, 1
    before = head_weights(h)
    U, S, V = head_ov_svd(h, layer, head)
    with rescale_components(h, [(layer, head, comp, alpha)]):
        after = head_weights(h)
    expected = before.OV.AB[layer, head] + (alpha - 1) * S[comp] * torch.outer(U[:, comp], V[:, comp])
    torch.testing.assert_close(after.OV.AB[layer, head], expected, atol=1e-5, rtol=0)
    # the edited head's other components are untouched; W_V and every other head are identical
    assert torch.equal(after.W_V, before.W_V)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[layer, head] = False
    assert torch.equal(after.W_O[mask], before.W_O[mask])


def test_apply_undo_is_bit_exact_and_only_touches_o_proj(h):
    snap = _snapshot(h)
    edits = [(0, 1, 0, 0.0), (0, 1, 3, 2.0), (1, 3, 7, 0.25)]  # two components of one head + another head
    applied = EditSpec.build(h, edits).apply(h)
    assert isinstance(applied, AppliedEdits) and applied.active
    changed = {n.replace("_original_component.", "") for n in _changed(snap)}
    assert changed == {"model.layers.0.self_attn.o_proj.weight", "model.layers.1.self_attn.o_proj.weight"}
    w = h.hf.model.layers[0].self_attn.o_proj.weight
    assert torch.equal(w[:, :8], [old for n, (p, old) in snap.items() if p is w][0][:, :8])  # head 0 columns
    applied.undo()
    applied.undo()  # second undo: no-op
    assert not applied.active
    _assert_same(h, snap)


def test_context_manager_restores_on_error(h):
    snap = _snapshot(h)
    with pytest.raises(RuntimeError), rescale_components(h, [(1, 0, 0, 0.0)]):
        raise RuntimeError("boom")
    _assert_same(h, snap)


def test_removal_matches_headweights_remove_ov_component(h):
    ref = head_weights(h).remove_ov_component(1, 3, 2)
    with rescale_components(h, [(1, 3, 2, 0.0)]):
        got = head_weights(h)
    torch.testing.assert_close(got.W_O, ref.W_O, atol=1e-6, rtol=0)


def test_removed_component_projects_head_output(h):
    """Weight edit ≡ output projection: head_out after removal = y − (y·v) v, other heads unchanged."""
    v = head_ov_svd(h, 1, 2).V[:, 0]
    base = capture(h, PROMPTS, ["head_out.1"], mode="all", progress=False)["head_out.1"]
    with rescale_components(h, [(1, 2, 0, 0.0)]):
        edited = capture(h, PROMPTS, ["head_out.1"], mode="all", progress=False)["head_out.1"]
    y = base[:, :, 2]
    torch.testing.assert_close(edited[:, :, 2], y - (y @ v)[..., None] * v, atol=1e-6, rtol=0)
    torch.testing.assert_close(edited[:, :, [0, 1, 3]], base[:, :, [0, 1, 3]], atol=0, rtol=0)
    assert (edited[:, :, 2] @ v).abs().max() < 1e-5


def test_save_load_roundtrip_reapplies_identically(h, tmp_path):
    spec = EditSpec.build(h, [(0, 2, 1, 0.0), ComponentEdit(1, 1, 0, 1.5)], note="test")
    path = spec.save(tmp_path / "edits" / "my-edit")
    assert path.name == "my-edit.json" and (tmp_path / "edits" / "my-edit.safetensors").is_file()
    meta = json.loads(path.read_text())
    assert meta["model"] == h.name and meta["edits"][1] == {
        "layer": 1,
        "head": 1,
        "component": 0,
        "alpha": 1.5,
    }
    loaded = EditSpec.load(path)
    assert loaded.edits == spec.edits and torch.equal(loaded.vectors, spec.vectors)
    assert loaded.weights_fingerprint == spec.weights_fingerprint and loaded.note == "test"
    assert EditSpec.load(tmp_path / "edits" / "my-edit").edits == spec.edits  # stem works too
    with spec.apply(h):
        first = h.hf.model.layers[0].self_attn.o_proj.weight.detach().clone()
    with loaded.apply(h):
        assert torch.equal(h.hf.model.layers[0].self_attn.o_proj.weight, first)


def test_fingerprint_is_stable_under_edits_and_bridge():
    g = tiny_handle(seed=0)
    fp = weights_fingerprint(g)
    with rescale_components(g, [(0, 0, 0, 0.0)]):
        assert weights_fingerprint(g) == fp
    assert g.tl is not None  # building the bridge wraps HF modules in place
    assert weights_fingerprint(g) == fp
    spec = EditSpec.build(g, [(1, 1, 1, 0.0)])  # still applies through the wrapped modules
    snap = _snapshot(g)
    with spec.apply(g):
        assert {n.replace("_original_component.", "") for n in _changed(snap)} == {
            "model.layers.1.self_attn.o_proj.weight"
        }
    _assert_same(g, snap)


def test_gpt2_conv1d_edit_and_undo():
    tok = tiny_tokenizer(chat_template=False)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=len(tok), n_positions=64)
    g = ModelHandle(transformers.GPT2LMHeadModel(cfg).eval(), tok, name="tiny-gpt2")
    v = head_ov_svd(g, 1, 1).V[:, 0]
    snap = _snapshot(g)
    base = capture(g, PROMPTS, ["head_out.1"], mode="all", chat=False, progress=False)["head_out.1"]
    with rescale_components(g, [(1, 1, 0, 0.0)]):
        edited = capture(g, PROMPTS, ["head_out.1"], mode="all", chat=False, progress=False)["head_out.1"]
    y = base[:, :, 1]
    torch.testing.assert_close(edited[:, :, 1], y - (y @ v)[..., None] * v, atol=1e-6, rtol=0)
    _assert_same(g, snap)


# ------------------------------------------------------------------------------------------ bad input


def test_spec_for_other_model_is_refused(h):
    spec = EditSpec.build(h, [(0, 0, 0, 0.0)])
    snap = _snapshot(h)
    other = tiny_handle(seed=1)  # named tiny-llama-s1
    with pytest.raises(InputError, match="built for model 'tiny-llama-s0', not 'tiny-llama-s1'"):
        spec.apply(other)
    other.name = h.name  # same name, different weights
    with pytest.raises(InputError, match="fingerprint .* same name, different weights"):
        spec.apply(other)
    # pack hashes, where both sides have one, decide instead of the fingerprint
    packed = dataclasses.replace(spec, pack_sha256="a" * 64)
    h.pack_sha256 = "b" * 64
    try:
        with pytest.raises(InputError, match="pack sha256 aaaaaaaaaaaa… != loaded pack bbbbbbbbbbbb…"):
            packed.apply(h)
        h.pack_sha256 = "a" * 64
        with packed.apply(h):
            pass
    finally:
        h.pack_sha256 = None
    wide = dataclasses.replace(
        spec, d_model=64, vectors=torch.nn.functional.normalize(torch.ones(1, 64), dim=-1)
    )
    with pytest.raises(InputError, match="d_model=64 but model 'tiny-llama-s0' has d_model=32"):
        wide.apply(h)
    deep = dataclasses.replace(spec, n_layers=3)
    with pytest.raises(InputError, match=r"\(layers, heads, d_head\)"):
        deep.apply(h)
    _assert_same(h, snap)  # nothing was applied by a refused spec


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ((2, 0, 0, 0.0), "layer 2 is out of range"),
        ((0, 4, 0, 0.0), "head 4 is out of range"),
        ((0, 0, 8, 0.0), "component 8 is out of range: each head's OV circuit has d_head=8"),
        ((0, 0, -1, 0.0), "component -1 is out of range"),
        ((0, 0, 0, float("nan")), "alpha must be a finite number"),
        ((0, 0, 0, "x"), "alpha must be a finite number"),
        ((0, 0, 0), r"\(layer, head, component, alpha\)"),
    ],
)
def test_bad_edits(h, edit, match):
    with pytest.raises(InputError, match=match):
        EditSpec.build(h, [edit])


def test_bad_spec_fields_and_calls(h):
    spec = EditSpec.build(h, [(0, 0, 0, 0.0)])
    with pytest.raises(InputError, match="No edits given"):
        EditSpec.build(h, [])
    with pytest.raises(InputError, match="unit-norm"):
        dataclasses.replace(spec, vectors=spec.vectors * 2)
    with pytest.raises(InputError, match=r"vectors must be a tensor \[n_edits=1, d_model=32\]"):
        dataclasses.replace(spec, vectors=spec.vectors[:, :5])
    with pytest.raises(InputError, match="needs an EditSpec"):
        apply_edits(h, [(0, 0, 0, 0.0)])


def test_bad_files(h, tmp_path):
    spec = EditSpec.build(h, [(0, 0, 0, 0.0)])
    with pytest.raises(InputError, match="No edit spec at"):
        EditSpec.load(tmp_path / "missing.json")
    path = spec.save(tmp_path / "e.json")
    st = tmp_path / "e.safetensors"
    st.write_bytes(st.read_bytes()[:-4] + b"abcd")
    with pytest.raises(InputError, match="does not match the checksum"):
        EditSpec.load(path)
    st.unlink()
    with pytest.raises(InputError, match="which is missing"):
        EditSpec.load(path)
    spec.save(path)
    meta = json.loads(path.read_text())
    path.write_text(json.dumps(meta | {"version": 99}))
    with pytest.raises(InputError, match="version 99"):
        EditSpec.load(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not a valid spec file"):
        EditSpec.load(path)


@pytest.mark.pack
def test_smollm2_edit_roundtrip(smollm2, tmp_path):
    spec = EditSpec.build(smollm2, [(12, 4, 0, 0.0), (20, 7, 2, 2.0)])
    assert spec.pack_sha256 == smollm2.pack_sha256 and spec.model == "smollm2-135m-instruct"
    spec = EditSpec.load(spec.save(tmp_path / "smol"))
    w = smollm2.hf.model.layers[12].self_attn.o_proj.weight
    original = w.detach().clone()
    with spec.apply(smollm2):
        changed = (w - original).abs().amax(dim=0)  # per input column (head h owns columns 64h..64h+63)
        assert changed[4 * 64 : 5 * 64].max() > 0 and changed[: 4 * 64].max() == 0
    assert torch.equal(w, original)
