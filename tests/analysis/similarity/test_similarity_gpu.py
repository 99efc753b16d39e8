"""CPU/GPU agreement (reference note §5.1: float32, 1e-5). Skipped without a CUDA device."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from analysis.similarity import (
    canonical_correlations,
    cka,
    cknna,
    linear_cka,
    minibatch_cka,
    mutual_knn,
    procrustes_similarity,
    pwcca,
    rsa,
    shape_distance,
    svcca,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

METRICS = {
    "linear_cka": linear_cka,
    "debiased_cka": partial(linear_cka, debiased=True),
    "rbf_cka": partial(cka, kernel="rbf"),
    "minibatch_cka": partial(minibatch_cka, batch_size=64),
    "cca": lambda x, y, **kw: float(canonical_correlations(x, y, **kw).mean()),
    "svcca": partial(svcca, keep=8),
    "pwcca": pwcca,
    "procrustes": procrustes_similarity,
    "shape": partial(shape_distance, alpha=0.5),
    "rsa": rsa,
    "mutual_knn": mutual_knn,
    "cknna": cknna,
}


@pytest.mark.parametrize("name", list(METRICS))
def test_cpu_and_gpu_agree_in_float32(name):
    fn = METRICS[name]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 16)).astype(np.float32)
    y = (np.tanh(x @ rng.normal(size=(16, 12))) + 0.3 * rng.normal(size=(256, 12))).astype(np.float32)
    cpu = fn(x, y, dtype=torch.float32, device="cpu")
    gpu = fn(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda(), dtype=torch.float32)
    assert isinstance(gpu, float)
    tol = 1e-3 if name == "mutual_knn" else 1e-5  # a near-tie can flip one neighbour in float32
    assert gpu == pytest.approx(cpu, abs=tol)
    assert fn(x, y) == pytest.approx(cpu, abs=1e-4 if name != "mutual_knn" else 1e-2)  # float64 default
