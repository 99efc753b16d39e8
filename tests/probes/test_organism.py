"""The Talking-Heads model organism: packaged weights load, match TransformerLens, and reproduce their metrics."""

from __future__ import annotations

import json

import pytest
import torch

from analysis.tasks.organism_model import read_train_config
from analysis.tasks.train_organism import OrganismConfig, check_sample, evaluate, heldout_prompts, main
from probes.organism import ORGANISM_DIR, load_organism, organism_metrics

FILES = ("model.safetensors", "config.json", "tokenizer.json", "train_config.json", "metrics.json")


def _mean(d: dict) -> float:
    return sum(d.values()) / len(d)


@pytest.fixture(scope="module")
def organism():
    return load_organism()


@pytest.fixture(scope="module")
def train_config():
    return read_train_config(ORGANISM_DIR)


def test_committed_train_config_round_trips(train_config):
    """The committed ``train_config.json`` is exactly the config it loads as (the log keys aside)."""
    record = json.loads((ORGANISM_DIR / "train_config.json").read_text())
    assert set(record) == {"config", "log", "torch"}
    assert train_config.to_json() == record["config"] and train_config.laundry_n == tuple(range(2, 11))
    assert OrganismConfig.parse(train_config.to_json()) == train_config


def test_packaged_files_are_safetensors_only_and_small():
    names = {p.name for p in ORGANISM_DIR.iterdir()}
    assert set(FILES) <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    assert (ORGANISM_DIR / "model.safetensors").stat().st_size < 5 * 2**20


def test_loading_never_unpickles(monkeypatch):
    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load (pickle) was called while loading the organism")

    monkeypatch.setattr(torch, "load", no_pickle)
    handle = load_organism()
    assert handle.source == "local"


def test_missing_folder_names_the_training_command(tmp_path):
    from probes.errors import InputError

    with pytest.raises(InputError, match="analysis.tasks.train_organism"):
        load_organism(tmp_path)


def test_gpt2_architecture(organism, train_config):
    info = organism.info
    assert info.architecture == "GPT2LMHeadModel"
    assert info.positional == "learned absolute"
    assert (info.n_layers, info.n_heads, info.d_model) == (
        train_config.n_layer,
        train_config.n_head,
        train_config.d_model,
    )
    assert info.vocab_size == len(organism.tokenizer)


def test_tokenizer_word_level_with_bos(organism):
    tok = organism.tokenizer
    for word in ("Mary", "sock", "umbrella", "store"):
        assert len(tok.encode(" " + word, add_special_tokens=False)) == 1
    ids = tok("When Mary and John went to the store,")["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == 10 and tok.unk_token_id not in ids


def test_transformer_bridge_logits_equal_hf(organism):
    ioi, laundry = heldout_prompts(organism.tokenizer, OrganismConfig(eval_ioi=4, eval_laundry_per_n=1))
    ids, lengths = organism.tokenize(list(ioi["prompt"]) + list(laundry["prompt"][:4]), chat=False)
    with torch.no_grad():
        hf = organism.hf(input_ids=ids).logits
        tl = organism.tl(ids)
    assert tl.shape == hf.shape
    torch.testing.assert_close(tl, hf, atol=1e-4, rtol=1e-4)


def test_committed_metrics_reproduce(organism, train_config):
    metrics = organism_metrics()
    ioi, laundry = heldout_prompts(organism.tokenizer, train_config)
    small_ioi, small_laundry = check_sample(ioi, laundry)
    again = evaluate(organism.hf, organism.tokenizer, small_ioi, small_laundry)
    want = metrics["check_sample"]
    assert again["ioi"]["n_prompts"] == want["ioi"]["n_prompts"]
    assert again["ioi"]["accuracy"] == pytest.approx(want["ioi"]["accuracy"], abs=1e-9)
    assert again["ioi"]["mean_logit_diff"] == pytest.approx(want["ioi"]["mean_logit_diff"], abs=1e-3)
    for n, acc in want["laundry"]["accuracy_items_by_n"].items():
        assert again["laundry"]["accuracy_items_by_n"][n] == pytest.approx(acc, abs=1e-9), n
        assert again["laundry"]["mean_margin_by_n"][n] == pytest.approx(
            want["laundry"]["mean_margin_by_n"][n], abs=1e-3
        )
    # the small sample agrees with the full held-out numbers (sampling error only)
    full = metrics["heldout"]
    assert again["ioi"]["accuracy"] == pytest.approx(full["ioi"]["accuracy"], abs=0.1)
    small = _mean(again["laundry"]["accuracy_items_by_n"])
    assert small == pytest.approx(_mean(full["laundry"]["accuracy_items_by_n"]), abs=0.1)


def test_committed_metrics_show_the_phenomenon():
    """IOI is solved; Laundry List is well above chance for small N and falls with N."""
    held = organism_metrics()["heldout"]
    assert held["ioi"]["accuracy"] > 0.9 and held["ioi"]["mean_logit_diff"] > 1.0
    acc = {int(n): a for n, a in held["laundry"]["accuracy_items_by_n"].items()}
    assert acc[2] > 0.9 and acc[3] > 0.8
    assert acc[max(acc)] < acc[2] - 0.1
    assert all(a > 1.5 / n for n, a in acc.items())  # above chance at every N


def test_heldout_prompts_never_in_training_pool(tmp_path):
    from analysis.tasks.train_organism import _training_pool, build_tokenizer

    tok = build_tokenizer(tmp_path / "tok")
    cfg = OrganismConfig(steps=20, batch_size=32, eval_ioi=50, eval_laundry_per_n=5)
    ioi, laundry = heldout_prompts(tok, cfg)
    exclude = set(ioi["prompt"]) | set(laundry["prompt"])
    prompts, answers = _training_pool(tok, cfg, exclude)
    assert len(prompts) == len(answers) == 20 * 32
    assert not exclude & set(prompts)


def test_training_script_runs_and_is_deterministic(tmp_path):
    args = ["--steps", "3", "--eval-per-n", "2", "--quiet"]
    first = main(["--out", str(tmp_path / "a"), *args])
    second = main(["--out", str(tmp_path / "b"), *args])
    assert [e["loss"] for e in first["log"]] == [e["loss"] for e in second["log"]]
    other = main(["--out", str(tmp_path / "c"), "--seed", "1", *args])
    assert [e["loss"] for e in other["log"]] != [e["loss"] for e in first["log"]]
    folder = tmp_path / "a"
    for name in FILES:
        assert (folder / name).is_file(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left
    handle = load_organism(folder)
    reloaded = evaluate(
        handle.hf, handle.tokenizer, *heldout_prompts(handle.tokenizer, read_train_config(folder))
    )
    assert reloaded["ioi"]["mean_logit_diff"] == pytest.approx(
        first["metrics"]["heldout"]["ioi"]["mean_logit_diff"], abs=1e-4
    )
    import safetensors.torch

    a = safetensors.torch.load_file(folder / "model.safetensors")
    b = safetensors.torch.load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
