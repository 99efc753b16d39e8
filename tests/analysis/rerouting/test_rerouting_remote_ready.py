"""The remote-ready paths: the Probe-SSR loss through an nnsight trace equals the optimiser's own, the
NDIF host comes from the argument or ``SUBLENS_NDIF_HOST``, and a real NDIF run when one is configured."""

from __future__ import annotations

import os

import pytest
import torch

from analysis.rerouting.losses import ProbeObjective, traced_probe_loss
from analysis.rerouting.optimiser import OptimiserConfig, optimise
from probes.capture import capture, ndif_host, trace_options
from probes.errors import InputError

PROMPTS = ["the cat sat on the mat", "tell me how to bake bread"]


def _objective(handle, layers=(1, 2)):
    g = torch.Generator().manual_seed(0)
    d = handle.info.d_model
    return ProbeObjective({k: (torch.randn(d, generator=g), torch.tensor(0.3)) for k in layers})


def test_traced_probe_loss_equals_the_optimisers(tiny3):
    obj = _objective(tiny3)
    traced = traced_probe_loss(tiny3, PROMPTS, obj)
    for prompt, value in zip(PROMPTS, traced.tolist(), strict=True):
        res = optimise(tiny3, prompt, obj, OptimiserConfig(n_tokens=2, steps=0, early_stop_loss=None))
        assert value == pytest.approx(res.prompt_loss, rel=1e-5, abs=1e-6)


def test_remote_needs_the_nnsight_backend(tiny3):
    with pytest.raises(InputError, match="backend='nnsight'"):
        capture(tiny3, PROMPTS, "resid_post.1", backend="tl", remote=True, progress=False)


def test_ndif_host_from_argument_then_environment(monkeypatch):
    from nnsight import CONFIG

    before = CONFIG.API.HOST
    try:
        assert trace_options(False) == {} and ndif_host(None) is None
        monkeypatch.setenv("SUBLENS_NDIF_HOST", "http://127.0.0.1:8001")
        assert ndif_host(True) == "http://127.0.0.1:8001"
        assert ndif_host("http://10.0.0.5:5001") == "http://10.0.0.5:5001"
        assert trace_options(True) == {"remote": True} and CONFIG.API.HOST == "http://127.0.0.1:8001"
    finally:
        CONFIG.API.HOST = before


@pytest.mark.ndif
@pytest.mark.skipif(
    not (os.environ.get("SUBLENS_NDIF_HOST") and os.environ.get("SUBLENS_NDIF_MODEL")),
    reason="no NDIF endpoint configured (set SUBLENS_NDIF_HOST and SUBLENS_NDIF_MODEL, a model it serves)",
)
def test_remote_capture_equals_local():
    from probes.loading import load_model

    handle = load_model(os.environ["SUBLENS_NDIF_MODEL"], backend="nnsight")
    local = capture(handle, PROMPTS, "resid_post.1", backend="nnsight", progress=False)
    remote = capture(handle, PROMPTS, "resid_post.1", backend="nnsight", remote=True, progress=False)
    torch.testing.assert_close(remote["resid_post.1"], local["resid_post.1"])
