"""load_model: name resolution and its errors (no network, no hub)."""

from __future__ import annotations

import pytest

from probes.errors import InputError, PackNotFetchedError, UnknownModelError
from probes.handle import model_info_from_config
from probes.loading import load_model


def test_unknown_name(tmp_cache):
    with pytest.raises(UnknownModelError, match="smollm2-135m-instruct"):
        load_model("not-a-model")


def test_hub_id_without_local_weights_is_explained(tmp_cache):
    with pytest.raises(UnknownModelError, match="not in the local Hugging Face cache"):
        load_model("nobody-here/no-such-model-xyz")


def test_pack_not_fetched_without_fetch(tmp_cache):
    with pytest.raises(PackNotFetchedError, match="sublens models fetch smollm2-135m-instruct"):
        load_model("smollm2-135m-instruct", fetch=False)


def test_empty_folder(tmp_path):
    with pytest.raises(InputError, match="neither a HF model"):
        load_model(str(tmp_path))


def test_bad_backend():
    with pytest.raises(InputError, match="Unknown backend"):
        load_model("smollm2-135m-instruct", backend="jax")


def test_local_hf_folder_roundtrip(tmp_path):
    import torch

    from probes.testing import tiny_handle

    tiny = tiny_handle(seed=0)  # a fresh one: a bridge-wrapped HF model cannot be save_pretrained
    tiny.hf.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    h = load_model(str(tmp_path), backend="nnsight")
    ids, _ = tiny.tokenize(["the cat sat"])
    with torch.no_grad():
        torch.testing.assert_close(h.hf(ids).logits, tiny.hf(ids).logits, atol=1e-6, rtol=0)
    assert h.source == "local" and h.info.n_kv_heads == 2


def test_model_info_gpt2_style():
    from transformers import GPT2Config

    info = model_info_from_config(GPT2Config(n_layer=3, n_head=4, n_embd=64), "g")
    assert info.positional == "learned absolute" and info.gqa_groups == 1 and info.d_head == 16


def test_organism_by_name():
    h = load_model("organism", backend="tl")
    assert h.info.architecture == "GPT2LMHeadModel" and h.info.positional == "learned absolute"


def _gguf(path, arch="llama"):
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_check_gguf_accepts_a_whole_file_and_measures_truncation(tmp_path):
    from probes.loading import check_gguf

    good = _gguf(tmp_path / "m.gguf")
    check_gguf(good)
    size = good.stat().st_size
    data = good.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:-10])
    with pytest.raises(InputError, match=rf"ends at byte {size:,} but the file has {size - 10:,} bytes"):
        check_gguf(tmp_path / "cut.gguf")
    (tmp_path / "big-endian.gguf").write_bytes(b"GGUF\x00\x00\x00\x03" + data[8:])
    with pytest.raises(InputError, match="big-endian"):
        check_gguf(tmp_path / "big-endian.gguf")


def test_absurd_counts_fail_fast(tmp_path):
    from probes.loading import check_gguf

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16 + b"\0" * 4096)
    with pytest.raises(InputError, match="inside its header"):
        check_gguf(bad)


def test_local_paths_are_told_apart(tmp_path, monkeypatch):
    from probes.loading import load_hf, local_config, looks_like_path

    monkeypatch.chdir(tmp_path)
    assert looks_like_path("./m") and looks_like_path("a/b") and looks_like_path("m.gguf")
    assert not looks_like_path("gpt2")
    with pytest.raises(InputError, match=r"no such file or directory: \S+/missing\.gguf"):
        load_hf("missing.gguf")
    with pytest.raises(InputError, match=r"no such file or directory"):
        local_config("../nowhere")
    (tmp_path / "x.bin").write_bytes(b"\x80\x02junk")
    with pytest.raises(InputError, match=r"is a file but not a GGUF model"):
        load_hf("x.bin")
