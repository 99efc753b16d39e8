"""Fixtures of the rerouting tests: the 3-layer tiny model, a campaign config factory, a fixed readout."""

from __future__ import annotations

import pytest
import torch

from analysis.rerouting import judge as judges
from analysis.rerouting import objectives, parse_config
from probes.testing import tiny_handle

PROMPT = "the cat sat"


@pytest.fixture(scope="module")
def tiny3():
    torch.set_num_threads(1)
    return tiny_handle(seed=0, n_layers=3)


@pytest.fixture(scope="session")
def make_cfg():
    """``make_cfg(optimiser={...}, **keys)``: a small attention-SSR campaign on ``tiny-3``, two prompts
    and two seeds, with the given keys (and ``[optimiser]`` keys) replaced."""

    def make(optimiser: dict | None = None, **kw):
        opt = {"steps": 2, "search_width": 8, "topk": 4, "n_tokens": 2, **(optimiser or {})}
        base = {
            "model": "tiny-3",
            "method": "attention-ssr",
            "heads": [[1, 0]],
            "prompts": [PROMPT, "a dog went"],
            "seeds": [0, 1],
            "max_new_tokens": 4,
        }
        return parse_config({**base, "optimiser": opt, **kw})

    return make


@pytest.fixture
def tiny_fit_sets(monkeypatch):
    """Probes and directions fit on four tiny prompts instead of the shared train sets."""
    monkeypatch.setattr(
        objectives, "fit_sets", lambda n: (["the cat sat", "a dog went"], ["Mary gave ball", "Tom is it"])
    )


@pytest.fixture
def fixed_readout(monkeypatch, tiny_fit_sets):
    """Tiny fit sets, and a readout judge that returns ``state["p"]`` for every prompt (set it in the test)."""
    state = {"p": 0.5}
    monkeypatch.setattr(judges, "readout_judge", lambda h, prompts, probe, layer: [state["p"]] * len(prompts))
    return state
