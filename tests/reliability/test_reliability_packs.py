"""Pack integrity and bad local model files (issue 13, findings 3, 9 and 11), table-driven.

Every case works in a temporary cache (``SUBLENS_CACHE``) holding a small fake pack registered in
``PACKS`` (12 MB of seeded random bytes, pinned hash) and a fake two-file text pack in place of MiniLM,
so the real cache is never touched. ``probes.loading._from_pretrained`` is replaced by a spy: a
corrupted pack must be refused before it is ever called. Each case asserts the exit code (2 for user
errors), that the message names the problem and the fix, that no traceback reaches the user, and the
state of the cache afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

import probes.loading as loading
import probes.packs as packs
import probes.text_encoders as te
from apps.cli.main import run_cli
from probes.errors import SubspaceLensError

FAKE = "fake-pack"
TEXT = "fake-text"
SIZE = 12 << 20
MB = 1 << 20


def _bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


class _StubModel(torch.nn.Linear):
    """What the spy returns: enough of a model for load_hf and _save_derived."""

    def __init__(self) -> None:
        super().__init__(1, 1)
        self.config = type("Cfg", (), {})()

    def save_pretrained(self, path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "model.safetensors").write_bytes(_bytes(4096, 1))


class _StubTokenizer:
    def save_pretrained(self, path) -> None:
        (Path(path) / "tokenizer.json").write_text("{}")


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    """A temp cache with a verified fake pack and fake text pack, a loader spy, and local test files."""
    monkeypatch.setenv("SUBLENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SUBLENS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("SUBLENS_NO_DERIVED", "1")
    content = _bytes(SIZE)
    spec = packs.PackSpec(
        name=FAKE,
        title="a fake pack (seeded random bytes)",
        filename=f"{FAKE}.gguf",
        chunks=(),
        sha256=hashlib.sha256(content).hexdigest(),
        size=SIZE,
        licence="none",
        fp32_memory_gb=0.1,
    )
    monkeypatch.setitem(packs.PACKS, FAKE, spec)
    packs.pack_dir(spec).mkdir(parents=True)
    packs.pack_path(spec).write_bytes(content)
    packs.verify_pack(spec)
    text = _fake_text_pack()
    monkeypatch.setattr(te, "MINILM", text)
    calls = []

    def spy(path, gguf_file, dtype, local_only):
        calls.append((path, gguf_file))
        return _StubModel(), _StubTokenizer()

    monkeypatch.setattr(loading, "_from_pretrained", spy)
    hashed = []
    real_hash = packs.sha256_file
    monkeypatch.setattr(
        packs, "sha256_file", lambda p, *a, **k: hashed.append(Path(p).name) or real_hash(p, *a, **k)
    )
    return {
        "tmp": tmp_path,
        "spec": spec,
        "text": text,
        "calls": calls,
        "hashed": hashed,
        **_local_files(tmp_path),
    }


def _fake_text_pack() -> te.TextPackSpec:
    files = {"config.json": b'{"hidden_size": 384}', "model.safetensors": _bytes(2 * MB, 2)}
    pinned = {k: (hashlib.sha256(v).hexdigest(), len(v)) for k, v in files.items()}
    spec = te._text_pack(
        TEXT, "a fake text pack", "fake-wheel", "0.0.1", "fake/", pinned, dim=384, licence="x"
    )
    folder = te.text_pack_dir(spec)
    folder.mkdir(parents=True)
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    (folder / "verified.json").write_text("{}")  # any record: verify_text_pack re-hashes and rewrites it
    te.verify_text_pack(spec)
    return spec


def _tiny_gguf(path: Path, arch: str = "llama") -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _local_files(tmp: Path) -> dict:
    loc = tmp / "local"
    loc.mkdir()
    (loc / "empty.gguf").write_bytes(b"")
    (loc / "garbage.gguf").write_bytes(_bytes(3000, 3))
    (loc / "text.gguf").write_text("hello, not a model\n")
    good = _tiny_gguf(loc / "tiny.gguf")
    data = good.read_bytes()
    (loc / "cut.gguf").write_bytes(data[:-100])
    (loc / "head.gguf").write_bytes(data[:100])
    _tiny_gguf(loc / "foo.gguf", arch="foo")
    (loc / "nomodel").mkdir()
    (loc / "two").mkdir()
    for name in ("a.gguf", "b.gguf"):
        (loc / "two" / name).write_bytes(data)
    (loc / "noweights").mkdir()
    (loc / "noweights" / "config.json").write_text('{"model_type": "gpt2"}')
    (loc / "badcfg").mkdir()
    (loc / "badcfg" / "config.json").write_text("{bad")
    (loc / "badcfg" / "model.safetensors").write_bytes(b"")
    (loc / "cutst").mkdir()
    (loc / "cutst" / "config.json").write_text('{"model_type": "gpt2"}')
    header = json.dumps({"w": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}).encode()
    (loc / "cutst" / "model.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + b"\0" * 100
    )
    (loc / "weights.safetensors").write_bytes(b"\0" * 64)
    (tmp / "x" / "y").mkdir(parents=True)
    return {"loc": loc}


# --- what each case does to the cache before the command runs ---------------------------------------------


def _pack_file(c) -> Path:
    return packs.pack_path(c["spec"])


def zero_middle(c) -> None:
    """4 MB of zeros in the middle, size unchanged (the issue's repro)."""
    with open(_pack_file(c), "r+b") as f:
        f.seek(SIZE // 2 - 2 * MB)
        f.write(b"\0" * (4 * MB))


def zero_keep_mtime(c) -> None:
    """Same tampering, then the old mtime restored: only a full re-hash (models verify) can see it."""
    st = _pack_file(c).stat()
    zero_middle(c)
    os.utime(_pack_file(c), ns=(st.st_atime_ns, st.st_mtime_ns))


def truncate(c) -> None:
    os.truncate(_pack_file(c), SIZE // 2)


def delete(c) -> None:
    _pack_file(c).unlink()


def touch(c) -> None:
    st = _pack_file(c).stat()
    os.utime(_pack_file(c), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def drop_marker(c) -> None:
    (packs.pack_dir(c["spec"]) / "verified.json").unlink()


def replace_unverified(c) -> None:
    """A hand-placed file of the right size but other bytes, no verification record."""
    drop_marker(c)
    _pack_file(c).write_bytes(_bytes(SIZE, 9))


def text_tamper(c) -> None:
    cfg = te.text_pack_dir(c["text"]) / "config.json"
    cfg.write_bytes(cfg.read_bytes().replace(b"384", b"385"))


def text_touch(c) -> None:
    path = te.text_pack_dir(c["text"]) / "model.safetensors"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def chdir_deep(c) -> None:
    os.chdir(c["tmp"] / "x" / "y")  # so ../../etc is <tmp>/etc, which does not exist


def chdir_deep_etc(c) -> None:
    (c["tmp"] / "etc").mkdir()
    chdir_deep(c)


def nothing(c) -> None:
    pass


# --- after the command: the cache and the loader spy -------------------------------------------------------


def refused_and_removed(c) -> None:
    assert not c["calls"], "a corrupted pack reached the loader"
    assert not _pack_file(c).exists() and not (packs.pack_dir(c["spec"]) / "verified.json").exists()
    for meta in Path(c["tmp"]).rglob("run.json"):
        assert json.loads(meta.read_text()).get("pack_sha256") is None, "an unverified hash was recorded"


def never_loaded(c) -> None:
    assert not c["calls"]


def verified_again(c) -> None:
    assert c["hashed"] == [c["spec"].filename], c["hashed"]  # re-hashed exactly once
    assert packs.pack_status(c["spec"]) == "verified"
    assert c["calls"] == [(str(packs.pack_dir(c["spec"])), c["spec"].filename)]  # then loaded


def text_removed(c) -> None:
    assert not te.text_pack_dir(c["text"]).exists()


def text_verified_again(c) -> None:
    assert te.text_pack_status(c["text"]) == "verified"


# --- actions that are not CLI commands ---------------------------------------------------------------------


def api_load(c) -> str:
    _, _, source, sha = loading.load_hf(FAKE, derived=False, progress=False)
    assert source == "pack" and sha == c["spec"].sha256
    return "loaded"


def api_text(c) -> str:
    folder = te._resolve(c["text"], fetch=False, verify=False)
    return f"text pack at {folder}"


FIX = r"Fix: sublens models fetch --force fake-pack"
# (id, setup, action: argv template or API function, exit code, patterns, check afterwards)
CASES = [
    # corrupted or changed packs
    (
        "zeroed-4mb-demo",
        zero_middle,
        "demo --model fake-pack --out {out}",
        2,
        [r"Pack 'fake-pack' is corrupted: \S+fake-pack\.gguf has SHA-256", r"same size", FIX],
        refused_and_removed,
    ),
    (
        "zeroed-4mb-info",
        zero_middle,
        "models info fake-pack --no-fetch",
        2,
        [r"is corrupted", FIX],
        refused_and_removed,
    ),
    (
        "truncated-pack",
        truncate,
        "demo --model fake-pack --out {out}",
        2,
        [r"has 6,291,456 bytes, the pinned file has 12,582,912 \(truncated", FIX],
        refused_and_removed,
    ),
    (
        "deleted-pack",
        delete,
        "models info fake-pack --no-fetch",
        2,
        [r"Pack 'fake-pack' is not in the cache", r"Run: sublens models fetch fake-pack"],
        never_loaded,
    ),
    (
        "unverified-wrong-bytes",
        replace_unverified,
        "demo --model fake-pack --out {out}",
        2,
        [r"is corrupted", FIX],
        refused_and_removed,
    ),
    ("touched-intact-rehashed", touch, api_load, 0, [r"loaded"], verified_again),
    ("no-record-rehashed", drop_marker, api_load, 0, [r"loaded"], verified_again),
    (
        "tamper-same-mtime-verify",
        zero_keep_mtime,
        "models verify fake-pack --no-progress",
        2,
        [r"fake-pack\s+corrupted", r"1 corrupted pack\(s\): fake-pack", FIX],
        refused_and_removed,
    ),
    # sublens models verify
    ("verify-ok", nothing, "models verify fake-pack", 0, [r"fake-pack\s+ok", r"sha256 \w{12}"], never_loaded),
    (
        "verify-not-fetched",
        delete,
        "models verify fake-pack --no-progress",
        0,
        [r"fake-pack\s+not fetched\s+sublens models fetch fake-pack"],
        never_loaded,
    ),
    (
        "verify-all-one-corrupted",
        zero_middle,
        "models verify all --no-progress",
        2,
        [r"smollm2-135m-instruct\s+not fetched", r"fake-text\s+ok", r"fake-pack\s+corrupted", FIX],
        refused_and_removed,
    ),
    (
        "verify-unknown",
        nothing,
        "models verify gpt3",
        2,
        [r"Unknown model pack 'gpt3'", r"fake-pack", r"fake-text", r"Or pass `all`"],
        never_loaded,
    ),
    # the text pack (MiniLM's place)
    (
        "text-corrupted-verify",
        text_tamper,
        "models verify fake-text --no-progress",
        2,
        [r"cached file 'config.json' \(\S+\) has SHA-256", r"Fix: sublens models fetch --force fake-text"],
        text_removed,
    ),
    ("text-touched-rehashed", text_touch, api_text, 0, [r"text pack at"], text_verified_again),
    # bad local model files
    (
        "gguf-empty",
        nothing,
        "demo --model {loc}/empty.gguf --out {out}",
        2,
        [r"empty\.gguf: the file is empty \(0 bytes\)", r"Pass a \.gguf model file"],
        never_loaded,
    ),
    (
        "gguf-garbage",
        nothing,
        "models info {loc}/garbage.gguf",
        2,
        [r"garbage\.gguf: not a GGUF file \(magic bytes b'.*', expected b'GGUF'\)"],
        never_loaded,
    ),
    (
        "gguf-is-text",
        nothing,
        "demo --model {loc}/text.gguf --out {out}",
        2,
        [r"not a GGUF file \(magic bytes b'hell'"],
        never_loaded,
    ),
    (
        "gguf-truncated-data",
        nothing,
        "demo --model {loc}/cut.gguf --out {out}",
        2,
        [r"cut\.gguf: truncated: header says the tensor data ends at byte 768 but the file has 668 bytes"],
        never_loaded,
    ),
    (
        "gguf-truncated-header",
        nothing,
        "models info {loc}/head.gguf",
        2,
        [r"head\.gguf: truncated or corrupt GGUF: the file ends \(100 bytes\) inside its header"],
        never_loaded,
    ),
    (
        "gguf-unknown-arch",
        nothing,
        "models info {loc}/foo.gguf",
        2,
        [r"foo\.gguf: could not load it as a model \(ValueError: GGUF model with architecture foo"],
        never_loaded,
    ),
    (
        "dir-no-model",
        nothing,
        "demo --model {loc}/nomodel --out {out}",
        2,
        [r"nomodel holds no model", r"config\.json"],
        never_loaded,
    ),
    (
        "dir-two-ggufs",
        nothing,
        "models info {loc}/two",
        2,
        [r"holds 2 \.gguf files \(a\.gguf, b\.gguf\); pass one"],
        never_loaded,
    ),
    (
        "dir-no-weights",
        nothing,
        "models info {loc}/noweights",
        2,
        [r"has config\.json but no weights"],
        never_loaded,
    ),
    (
        "dir-bad-config",
        nothing,
        "models info {loc}/badcfg",
        2,
        [r"config\.json: not valid JSON"],
        never_loaded,
    ),
    (
        "safetensors-truncated",
        nothing,
        "demo --model {loc}/cutst --out {out}",
        2,
        [
            r"model\.safetensors: truncated: header says the tensor data ends at byte \d[\d,]* but the file has"
        ],
        never_loaded,
    ),
    (
        "lone-safetensors",
        nothing,
        "models info {loc}/weights.safetensors",
        2,
        [r"holds weights only", r"config\.json"],
        never_loaded,
    ),
    (
        "missing-gguf-path",
        nothing,
        "demo --model {loc}/nope.gguf --out {out}",
        2,
        [r"no such file or directory: \S+nope\.gguf"],
        never_loaded,
    ),
    # sublens models info
    (
        "info-dotdot-etc-missing",
        chdir_deep,
        "models info ../../etc",
        2,
        [r"no such file or directory: \S+/etc \(from '\.\./\.\./etc'\)", r"sublens models list"],
        never_loaded,
    ),
    (
        "info-dotdot-etc-dir",
        chdir_deep_etc,
        "models info ../../etc",
        2,
        [r"\.\./\.\./etc holds no model"],
        never_loaded,
    ),
    (
        "info-unknown-name",
        nothing,
        "models info gpt3",
        2,
        [
            r"Unknown model pack 'gpt3'",
            r"smollm2-135m-instruct",
            r"fake-text",
            r"local \.gguf file or model folder",
        ],
        never_loaded,
    ),
    (
        "info-text-pack",
        nothing,
        "models info fake-text",
        0,
        [r"embedding dim\s+384", r"verified"],
        never_loaded,
    ),
]


def _norm(text: str) -> str:
    return " ".join(text.split())


def _run(action, c, capsys) -> tuple[int, str]:
    if callable(action):
        try:
            return 0, action(c)
        except SubspaceLensError as err:
            return 2, str(err)
    argv = [a.format(out=c["tmp"] / "out", loc=c["loc"]) for a in shlex.split(action)]
    code = run_cli(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    "setup,action,code,patterns,after", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_pack_case(setup, action, code, patterns, after, ctx, capsys, monkeypatch):
    monkeypatch.chdir(ctx["tmp"])
    setup(ctx)
    ctx["hashed"].clear()
    got, text = _run(action, ctx, capsys)
    text = _norm(text)
    assert got == code, text[-3000:]
    assert "Traceback" not in text
    for pat in patterns:
        assert re.search(pat, text), f"{pat!r} not in: {text[-3000:]}"
    after(ctx)
    assert not list(ctx["tmp"].rglob("*.tmp")) and not list(ctx["tmp"].rglob("*.partial"))


def test_cases_are_many_and_distinct():
    assert len(CASES) >= 12 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("columns", [80, 60])
def test_models_list_never_cuts_names(columns, ctx, monkeypatch, capsys):
    """``models list`` in an 80-column terminal (COLUMNS) and a 60-column console: every name whole."""
    from apps.cli.models import all_names, models_table

    monkeypatch.setenv("COLUMNS", str(columns))
    if columns == 80:
        assert run_cli(["models", "list"]) == 0
        text = capsys.readouterr().out
    else:
        console = Console(width=columns, record=True, file=open(os.devnull, "w"))
        console.print(models_table(columns))
        text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in text
    for name in all_names():
        assert any(re.search(rf"(^|\s){re.escape(name)}(\s|$)", line) for line in lines), (name, text)


def test_derived_copy_damaged_is_rebuilt(ctx, monkeypatch):
    """A damaged dequantised copy is never loaded: a warning, then it is rebuilt from the verified GGUF."""
    monkeypatch.setenv("SUBLENS_NO_DERIVED", "0")
    loading.load_hf(FAKE, progress=False)  # builds the copy (stub weights) with per-file records
    folder = loading._derived_dir(FAKE)
    assert json.loads((folder / "sublens-derived.json").read_text())["files"]["model.safetensors"]["sha256"]
    ctx["calls"].clear()
    loading.load_hf(FAKE, progress=False)
    assert ctx["calls"] == [(str(folder), None)]  # intact: loaded from the copy
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\0" * weights.stat().st_size)
    ctx["calls"].clear()
    with pytest.warns(UserWarning, match="hf-fp32 is damaged .*model.safetensors changed"):
        loading.load_hf(FAKE, progress=False)
    assert ctx["calls"] == [(str(packs.pack_dir(ctx["spec"])), ctx["spec"].filename)]  # from the GGUF
    assert loading._derived_ok(FAKE)  # rebuilt


def test_verify_removes_damaged_derived_copy(ctx, monkeypatch, capsys):
    monkeypatch.setenv("SUBLENS_NO_DERIVED", "0")
    loading.load_hf(FAKE, progress=False)
    folder = loading._derived_dir(FAKE)
    weights = folder / "model.safetensors"
    st = weights.stat()
    weights.write_bytes(b"\1" * st.st_size)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # invisible to the cheap check
    assert run_cli(["models", "verify", FAKE, "--no-progress"]) == 0
    assert "dequantised copy" in _norm(capsys.readouterr().out) and not folder.exists()


@pytest.mark.pack
def test_issue_repro_real_smollm2_zeroed_4mb(tmp_path):
    """The issue's repro on a copy of the real pack: 4 MB zeroed mid-file, then `sublens demo` (a
    subprocess, the real entry point): exit 2, the file and the fix named, no run.json with the pin."""
    import shutil
    import subprocess
    import sys

    real = packs.fetch_pack(packs.DEFAULT_MODEL, progress=False)  # the user cache: read only here
    spec = packs.get_pack(packs.DEFAULT_MODEL)
    env = {**os.environ, "SUBLENS_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    copy = tmp_path / "cache" / "packs" / spec.name / spec.filename
    copy.parent.mkdir(parents=True)
    shutil.copyfile(real, copy)
    (copy.parent / "verified.json").write_text(json.dumps({"sha256": spec.sha256, "size": spec.size}))
    with open(copy, "r+b") as f:  # an old-style record (size only) trusted this before
        f.seek(spec.size // 2)
        f.write(b"\0" * (4 * MB))
    out = subprocess.run(
        [sys.executable, "-m", "apps.cli.main", "demo", "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    err = _norm(out.stderr)
    assert out.returncode == 2, err[-2000:]
    assert "Traceback" not in err and f"{spec.filename} has SHA-256" in err
    assert f"Fix: sublens models fetch --force {spec.name}" in err
    assert not copy.exists()
    for meta in (tmp_path / "runs").rglob("run.json"):
        assert json.loads(meta.read_text()).get("pack_sha256") is None
