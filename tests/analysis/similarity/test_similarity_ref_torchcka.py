"""Cross-check of minibatch CKA against torch-cka (reference note §4.3, §5.1 item 3), to 1e-6."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from analysis.similarity import MinibatchCKA

torch_cka = pytest.importorskip("torch_cka")


def test_minibatch_cka_matches_torch_cka_on_toy_models():
    # torch-cka builds its ones-vectors and accumulator with the default dtype: run it in float64.
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        gen = torch.Generator().manual_seed(0)
        data = torch.randn(128, 10, generator=gen) * 3.0 + 1.0  # unnormalised features, as in the note
        torch.manual_seed(1)
        model1 = nn.Sequential(nn.Linear(10, 24), nn.ReLU(), nn.Linear(24, 16))
        torch.manual_seed(2)
        model2 = nn.Sequential(nn.Linear(10, 12), nn.Tanh(), nn.Linear(12, 20))
        layers1, layers2 = ["0", "1", "2"], ["0", "2"]
        loader = DataLoader(TensorDataset(data), batch_size=32, shuffle=False)
        with pytest.warns(UserWarning):  # torch-cka warns when only one loader is given
            engine = torch_cka.CKA(model1, model2, "m1", "m2", model1_layers=layers1, model2_layers=layers2)
            engine.compare(loader)
        theirs = engine.export()["CKA"]

        def features(model: nn.Sequential, names: list[str], x: torch.Tensor) -> list[torch.Tensor]:
            out, h = {}, x
            for name, layer in model.named_children():
                h = layer(h)
                out[name] = h
            return [out[n].detach() for n in names]

        accs = [[MinibatchCKA() for _ in layers2] for _ in layers1]
        for (batch,) in loader:
            f1, f2 = features(model1, layers1, batch), features(model2, layers2, batch)
            for i, a in enumerate(f1):
                for j, b in enumerate(f2):
                    accs[i][j].update(a, b)
        ours = torch.tensor([[acc.compute() for acc in row] for row in accs])
    finally:
        torch.set_default_dtype(old)
    assert theirs.shape == ours.shape
    assert torch.allclose(theirs.double(), ours, atol=1e-6, rtol=0)
