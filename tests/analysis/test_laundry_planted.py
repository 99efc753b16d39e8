"""A planted positional channel in the model organism's *weights* is recovered, by the same pipeline a
user runs (``positional_subspace``: locate movers and suppressors on data, Q-composition scan, the
suppressors' top components, effective dimension), with its known dimension k and its subspace.

The plant (test code): every head before the first mover's layer gets a new ``W_O`` so that its OV keeps
its read side and singular values, but its top-k components write into a chosen k-dim subspace ``P``
(the directions the movers' queries read most) and the rest into directions no mover reads.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles

from analysis.channels.scores import receiver_readers
from analysis.laundry.pipeline import SubspaceConfig, locate, positional_subspace
from probes.weights import head_weights

CONFIG = SubspaceConfig(n_items=(2, 3, 4, 5, 6), per_n=12, locate_per_n=8, n_null=100, n_boot=10)


@pytest.fixture(scope="module")
def unplanted():
    from probes.organism import load_organism

    handle = load_organism()
    return handle, locate(handle, CONFIG)


def _mover_read_basis(weights, movers) -> torch.Tensor:
    """``[d_model, d_model]`` orthonormal, ordered by how much the movers' queries read each direction."""
    readers, norm = receiver_readers(weights, "Q")
    R = torch.cat([readers[layer, head].double() / norm[layer, head].double() for layer, head in movers], 1)
    return torch.linalg.svd(R, full_matrices=True)[0]


def _plant(handle, heads, P: torch.Tensor, rest: torch.Tensor, seed: int = 0) -> None:
    """Rewrite each head's ``W_O`` (GPT-2 ``c_proj`` rows) so that ``W_V W_O = U diag(S) V'ᵀ`` with the
    head's own ``U, S`` and ``V' = [P Q_h, rest]`` (``Q_h`` a random k × k rotation per head)."""
    w = head_weights(handle)  # the weights the pipeline reads (LayerNorm folded into W_V)
    U, S, _ = w.ov_svd
    d_head, k = w.d_head, P.shape[1]
    g = torch.Generator().manual_seed(seed)
    for layer, head in heads:
        rot = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))[0]
        V_new = torch.cat([P @ rot, rest[:, : d_head - k]], dim=1)
        C = torch.linalg.pinv(w.W_V[layer, head].double()) @ U[layer, head].double()  # W_V C = U
        W_O = C @ torch.diag(S[layer, head].double()) @ V_new.T  # [d_head, d_model]
        c_proj = handle.hf.transformer.h[layer].attn.c_proj.weight  # [n_heads * d_head, d_model]
        with torch.no_grad():
            c_proj[head * d_head : (head + 1) * d_head] = W_O.to(c_proj.dtype)


@pytest.mark.parametrize("k", [2, 3])
def test_planted_channel_in_the_organism_is_recovered_with_its_dimension(unplanted, k):
    from probes.organism import load_organism

    handle0, found0 = unplanted
    movers = found0["channel"]["movers"]
    first = min(layer for layer, _ in movers)
    heads = [(layer, h) for layer in range(first) for h in range(handle0.info.n_heads)]
    basis = _mover_read_basis(head_weights(handle0), movers)
    P, rest = basis[:, :k], basis[:, -(handle0.info.d_head - k) :]  # read most / not at all

    handle = load_organism()
    _plant(handle, heads, P, rest, seed=0)
    w = head_weights(handle)
    for layer, head in heads:  # the plant did what it says: top-k writes span P exactly
        V = w.ov_svd.V[layer, head, :, :k].double().numpy()
        assert np.degrees(subspace_angles(V, P.numpy())).max() < 1e-3

    res = positional_subspace(handle, CONFIG)
    assert set(res["channel"]["suppressors"]) <= set(heads)  # the pipeline found the planted heads
    assert (res["components"]["component"] < k).all()  # and chose only their planted components
    s = res["summary"]
    assert s["m_directions"] == 8 and s["k95"] == k and s["k90"] <= k
    top_k = res["basis"][:, :k].double().numpy()
    assert np.degrees(subspace_angles(top_k, P.numpy())).max() < 0.01
    assert set(res["decodability"]["n_items"]) == set(CONFIG.n_items)


def test_the_unplanted_organism_has_a_higher_dimension(unplanted):
    """The control: without the plant the same components span more than the planted k (so the test
    above can fail)."""
    from analysis.laundry.pipeline import channel_basis

    _, found = unplanted
    dim = channel_basis(found)["dim"]
    assert dim["m"] == 8 and dim["k95"] > 3
