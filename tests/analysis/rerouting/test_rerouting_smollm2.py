"""Probe-SSR on the packaged SmolLM2: the optimised suffix flips a real probe's readout, a random one does not."""

from __future__ import annotations

import pytest
import torch

from analysis.refusal.probing import last_token_resid, refusal_probes
from analysis.rerouting import OptimiserConfig, ProbeObjective, optimise, probe_readout, prompt_slots
from analysis.rerouting.optimiser import allowed_tokens, random_suffix
from probes.architecture import run_forward


@pytest.mark.pack
def test_probe_ssr_flips_readout_on_smollm2(smollm2):
    from probes.datasets import shared_refusal_split

    torch.set_num_threads(1)
    layer = 8
    harmful = shared_refusal_split("harmful_train", limit=32)
    harmless = shared_refusal_split("harmless_train", limit=32)
    w, b = refusal_probes(smollm2, harmful, harmless, [layer]).probe(layer, "harmless")
    val = shared_refusal_split("harmful_val", limit=8)
    p0 = probe_readout(last_token_resid(smollm2, val, [layer])[:, 0], w, b)
    prompt = val[int(p0.argmin())]
    assert p0.min() < 0.1  # the vanilla prompt reads harmful

    s = prompt_slots(smollm2, prompt)
    emb = smollm2.hf.get_input_embeddings()

    def readout(ids):
        with torch.no_grad():
            fw = run_forward(smollm2, emb(s.assemble(torch.tensor([ids]))), [layer])
        return probe_readout(fw.resid[layer][:, -1], w, b).item()

    cfg = OptimiserConfig(n_tokens=5, steps=10, search_width=32, topk=64, early_stop_loss=0.1, seed=0)
    res = optimise(smollm2, prompt, ProbeObjective({layer: (w, b)}), cfg)
    assert res.best_loss < 0.5 * res.initial_loss
    assert readout(res.best_ids) > 0.5  # rerouted to "harmless"
    g = torch.Generator().manual_seed(123)
    allowed = allowed_tokens(smollm2.tokenizer, emb.weight.shape[0])
    controls = [readout(random_suffix(smollm2.tokenizer, allowed, 5, g)) for _ in range(3)]
    assert max(controls) < 0.5, controls  # a random suffix of the same length does not flip it
