"""QK component edits (``kind="qk"``): the closed form (component i of the static ``W_Q W_Kᵀ`` scaled by
α, the others and the keys untouched), exact undo, GPT-2's fused ``c_attn``, files and bad kinds."""

from __future__ import annotations

import json

import pytest
import torch

from probes.edits import ComponentEdit, EditSpec
from probes.errors import InputError
from probes.weights import head_qk_read, raw_attention_weights


@pytest.fixture(scope="module")
def tiny():
    from probes.testing import tiny_handle

    h = tiny_handle(seed=5)  # Llama with GQA: 4 query heads, 2 KV heads
    h.hf.double()
    return h


@pytest.fixture(scope="module")
def organism():
    from probes.organism import load_organism

    return load_organism(dtype=torch.float64)


def _qk(h, layer, head):
    r = raw_attention_weights(h, layer)
    return r.W_Q[head] @ r.W_K[head // h.info.gqa_groups].T, r


@pytest.mark.parametrize("which", ["tiny", "organism"])
def test_qk_edit_scales_one_singular_value_of_the_static_qk(which, request):
    h = request.getfixturevalue(which)
    layer, head, comp, alpha = 1, h.info.n_heads - 1, 2, 2.5
    qk0, r0 = _qk(h, layer, head)
    A, S = head_qk_read(h, layer, head)
    want = qk0 + (alpha - 1) * A[:, comp, None] @ (A[:, comp, None].T @ qk0)
    spec = EditSpec.build(h, [(layer, head, comp, alpha, "qk")])
    assert spec.edits[0].kind == "qk" and spec.singular_values[0] == pytest.approx(float(S[comp]))
    with spec.apply(h):
        qk1, r1 = _qk(h, layer, head)
        s1 = torch.linalg.svdvals(qk1)[: h.info.d_head]
        assert torch.allclose(qk1, want, atol=1e-5)  # float32 vectors
        expected = S.clone()
        expected[comp] *= alpha
        assert torch.allclose(s1, expected.sort(descending=True).values, rtol=1e-5)
        assert torch.equal(r1.W_K, r0.W_K) and torch.equal(r1.W_V, r0.W_V) and torch.equal(r1.W_O, r0.W_O)
        others = [x for x in range(h.info.n_heads) if x != head]
        assert torch.equal(r1.W_Q[others], r0.W_Q[others])
    assert torch.equal(raw_attention_weights(h, layer).W_Q, r0.W_Q)  # undone exactly


def test_qk_kind_survives_the_file_and_ov_files_are_unchanged(tiny, tmp_path):
    spec = EditSpec.build(tiny, [(0, 1, 0, 0.5), ComponentEdit(1, 2, 3, 2.0, "qk")])
    path = spec.save(tmp_path / "mixed")
    meta = json.loads(path.read_text())
    assert "kind" not in meta["edits"][0] and meta["edits"][1]["kind"] == "qk"  # OV entries as before
    back = EditSpec.load(path)
    assert [e.kind for e in back.edits] == ["ov", "qk"] and torch.equal(back.vectors, spec.vectors)
    cos = spec.vectors[1] @ head_qk_read(tiny, 1, 2)[0][:, 3].float()
    assert float(cos) == pytest.approx(1.0, abs=1e-6)  # the qk edit kept the query-side direction
    meta["edits"][1]["kind"] = "kq"
    path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="kind must be 'ov'.*or 'qk'"):
        EditSpec.load(path)


def test_bad_kinds_are_refused(tiny):
    with pytest.raises(InputError, match="kind must be"):
        EditSpec.build(tiny, [(0, 0, 0, 2.0, "QK")])
    with pytest.raises(InputError, match=r"\(layer, head, component, alpha\)"):
        EditSpec.build(tiny, [(0, 0, 0, 2.0, "qk", 1)])
