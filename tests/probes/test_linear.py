"""Per-layer probes and difference-of-means directions on planted signals; instruction loaders."""

from __future__ import annotations

import json

import pytest
import torch

from probes.datasets import demo_instructions, load_instructions, shared_refusal_split
from probes.errors import InputError
from probes.linear import ProbeFit, diff_of_means, fit_linear_probes, load_directions, stack_layers


def _planted(n=120, layers=3, d=16, strength=6.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0)
    x = torch.randn(n, layers, d, generator=g)
    y = (torch.arange(n) % 2 == 0).long()
    x[y == 1, 1:] += strength * u  # signal at layers >= 1 only; layer 0 is noise
    return x, y, u


def test_probe_finds_planted_direction():
    x, y, u = _planted()
    fit = fit_linear_probes(x[:80], y[:80], x[80:], y[80:])
    t = fit.table.set_index("layer")
    assert list(fit.table.columns) == ["layer", "train_acc", "val_acc", "auc"]
    assert (t.loc[[1, 2], "val_acc"] >= 0.95).all() and (t.loc[[1, 2], "auc"] >= 0.99).all()
    assert t.loc[0, "val_acc"] < 0.8  # no signal
    cos = torch.nn.functional.cosine_similarity(fit.direction[1:], u[None], dim=-1)
    assert (cos > 0.7).all()
    assert fit.best_layer in (1, 2)
    # residual-space weights reproduce the reported accuracy on raw activations
    acc = ((fit.logits(x[80:]) > 0).long() == y[80:, None]).float().mean(0)
    assert torch.allclose(acc, torch.tensor(fit.table.val_acc.values, dtype=torch.float32))


def test_diff_of_means_is_exact_planted_difference():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(10, 2, 8, generator=g)
    delta = torch.randn(2, 8, generator=g)
    x = torch.cat([base + delta, base])  # same samples shifted: mean difference is exactly delta
    y = torch.tensor([1] * 10 + [0] * 10)
    d = diff_of_means(x, y)
    assert torch.allclose(d.diff, delta, atol=1e-6)
    assert torch.allclose(d.unit * d.norm[:, None], d.diff, atol=1e-6)
    assert torch.allclose(d.unit.norm(dim=-1), torch.ones(2))
    assert list(d.table().columns) == ["layer", "norm", "cos_next"]


def test_save_roundtrip(tmp_path):
    x, y, _ = _planted(n=40)
    fit = fit_linear_probes(x[:30], y[:30], x[30:], y[30:], layers=[4, 7, 9], classes=("harmless", "harmful"))
    d = diff_of_means(x, y, layers=[4, 7, 9])
    p = ProbeFit.load(fit.save(tmp_path / "p.safetensors"))
    assert torch.equal(p.direction, fit.direction) and torch.equal(p.bias, fit.bias)
    assert p.layers == (4, 7, 9) and p.classes == ("harmless", "harmful")
    w, b = p.probe(7, "harmless")  # the other class: the same probe, negated
    assert torch.equal(w, -fit.direction[1]) and torch.equal(b, -fit.bias[1])
    q = load_directions(d.save(tmp_path / "d.safetensors"))
    assert sorted(q) == [4, 7, 9] and torch.equal(q[7], d.unit[1])
    with pytest.raises(InputError, match="No probe for layer 5"):
        p.probe(5)
    with pytest.raises(InputError, match="not 'toxic'"):
        p.probe(4, "toxic")


def test_probe_file_without_classes_reads_as_p_harmless(tmp_path):
    """Files written before the ``classes`` metadata hold P(harmless) probes (the rerouting convention)."""
    from safetensors.torch import save_file

    w, b = torch.randn(8), torch.tensor(0.5)
    save_file({"layer.3.w": w, "layer.3.b": b}, str(tmp_path / "old.safetensors"))
    p = ProbeFit.load(tmp_path / "old.safetensors")
    assert p.classes == ("harmful", "harmless")
    assert torch.equal(p.probe(3, "harmless")[0], w) and torch.equal(p.probe(3, "harmful")[1], -b)


def test_stack_layers_orders_numerically():
    acts = {f"resid_post.{i}": torch.full((2, 3), float(i)) for i in (10, 2, 1, 0)}
    assert stack_layers(acts)[0, :, 0].tolist() == [0.0, 1.0, 2.0, 10.0]
    with pytest.raises(InputError, match="resid_pre"):
        stack_layers(acts, kind="resid_pre")


def test_probe_input_errors():
    x, y, _ = _planted(n=20)
    with pytest.raises(InputError, match="one class"):
        fit_linear_probes(x, torch.ones(20), x, y)
    with pytest.raises(InputError, match="labels"):
        fit_linear_probes(x, y[:5], x, y)
    with pytest.raises(InputError, match="batch, layer, d_model"):
        fit_linear_probes(x[:, 0], y, x, y)
    with pytest.raises(InputError, match="same model"):
        fit_linear_probes(x, y, x[:, :2], y)
    with pytest.raises(InputError, match="0 or 1"):
        diff_of_means(x, y * 2)


def test_load_instructions_formats(tmp_path):
    rows = [{"instruction": "a", "category": None}, {"instruction": "b", "category": "x"}]
    (tmp_path / "r.json").write_text(json.dumps(rows))
    (tmp_path / "r.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "r.csv").write_text("instruction,category\na,\nb,x\n")
    for ext in ("json", "jsonl", "csv"):
        assert load_instructions(tmp_path / f"r.{ext}") == ["a", "b"]
    assert load_instructions(tmp_path / "r.json", limit=1) == ["a"]


def test_load_instructions_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_instructions(tmp_path / "missing.json")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(InputError, match="empty"):
        load_instructions(tmp_path / "empty.json")
    (tmp_path / "cols.json").write_text(json.dumps([{"prompt": "a"}]))
    with pytest.raises(InputError, match="Column 'instruction' not found.*prompt"):
        load_instructions(tmp_path / "cols.json")
    assert load_instructions(tmp_path / "cols.json", column="prompt") == ["a"]
    (tmp_path / "bad.xml").write_text("a")
    with pytest.raises(InputError, match=r"Unsupported .*\.txt \(one prompt per line\)"):
        load_instructions(tmp_path / "bad.xml")
    (tmp_path / "p.txt").write_text("# comment\nfirst prompt\n\n  second  \n")
    assert load_instructions(tmp_path / "p.txt") == ["first prompt", "second"]
    assert load_instructions(tmp_path / "p.txt", limit=1) == ["first prompt"]
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(InputError, match="Cannot parse"):
        load_instructions(tmp_path / "broken.json")


def test_shared_split_and_demo(tmp_path):
    (tmp_path / "harmful_val.json").write_text(json.dumps([{"instruction": "x"}, {"instruction": "y"}]))
    assert shared_refusal_split("harmful_val", root=tmp_path) == ["x", "y"]
    with pytest.raises(InputError, match="Unknown refusal split"):
        shared_refusal_split("harmful_test")
    with pytest.raises(InputError, match="does not exist"):
        shared_refusal_split("harmful_val", root=tmp_path / "nowhere")
    harmful, harmless = demo_instructions()
    assert len(harmful) >= 20 and len(harmless) >= 20


def test_shared_split_search_order(tmp_path, monkeypatch):
    """Explicit root, then $SUBLENS_REFUSAL_DATA, then shared/ beside the repo or above, then the demo set."""
    import probes.datasets as ds

    repo = tmp_path / "work" / "clones" / "repo"
    monkeypatch.setattr(ds, "_REPO_ROOT", repo)
    monkeypatch.delenv("SUBLENS_REFUSAL_DATA", raising=False)
    with pytest.warns(UserWarning, match="in-repo demo set"):  # nothing anywhere: the demo stand-in
        demo_val = shared_refusal_split("harmless_val")
    assert demo_val == demo_instructions()[1][20:]
    above = tmp_path / "work" / "shared" / "data" / "refusal"  # beside a parent folder of the clone
    above.mkdir(parents=True)
    (above / "harmless_val.json").write_text(json.dumps([{"instruction": "above"}]))
    assert shared_refusal_split("harmless_val") == ["above"]
    env = tmp_path / "env"
    env.mkdir()
    (env / "harmless_val.json").write_text(json.dumps([{"instruction": "z"}]))
    monkeypatch.setenv("SUBLENS_REFUSAL_DATA", str(env))
    assert shared_refusal_split("harmless_val") == ["z"]
    assert shared_refusal_split("harmless_val", root=above) == ["above"]
    monkeypatch.setenv("SUBLENS_REFUSAL_DATA", str(tmp_path / "missing"))
    with pytest.raises(InputError, match=r"\$SUBLENS_REFUSAL_DATA .* does not exist"):
        shared_refusal_split("harmless_val")
