"""Layer x layer similarity grids and their heatmap figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from analysis.similarity import METRICS, linear_cka, rsa, similarity_grid, similarity_grid_figure
from probes.errors import InputError


def _layers(seed: int = 0, n: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(n, 6))
    out = []
    for width in (6, 8, 5):
        h = np.tanh(h @ rng.normal(size=(h.shape[1], width)) / np.sqrt(h.shape[1]))
        out.append(h)
    return out


def test_tidy_frame_from_lists_matches_direct_calls():
    a, b = _layers(0), _layers(1)[:2]
    df = similarity_grid(a, b, metrics=["linear_cka", "rsa"])
    assert list(df.columns) == ["layer_a", "layer_b", "metric", "value"]
    assert len(df) == 3 * 2 * 2
    assert df["value"].dtype == np.float64
    row = df[(df.layer_a == "2") & (df.layer_b == "1") & (df.metric == "linear_cka")]
    assert row.value.item() == pytest.approx(linear_cka(a[2], b[1]), abs=1e-15)
    row = df[(df.layer_a == "0") & (df.layer_b == "0") & (df.metric == "rsa")]
    assert row.value.item() == pytest.approx(rsa(a[0], b[0]), abs=1e-15)


def test_self_grid_from_dict_has_unit_diagonal_for_every_builtin_metric():
    layers = dict(zip(["emb", "mid", "out"], _layers(2), strict=True))
    layers["mid"] = torch.from_numpy(layers["mid"]).float()
    df = similarity_grid(layers, metrics=list(METRICS))
    assert set(df.metric) == set(METRICS)
    assert list(dict.fromkeys(df.layer_a)) == ["emb", "mid", "out"]
    diag = df[df.layer_a == df.layer_b]
    distances = diag.metric.isin(["procrustes_distance", "shape_distance"])
    assert np.allclose(diag[~distances].value, 1.0, atol=1e-6)
    assert np.allclose(diag[distances].value, 0.0, atol=1e-6)


def test_custom_callables_and_errors():
    a = _layers(3)
    df = similarity_grid(a, metrics={"mean_abs_diff": lambda x, y: float((x.mean() - y.mean()).abs())})
    assert set(df.metric) == {"mean_abs_diff"} and len(df) == 9
    with pytest.raises(InputError, match="unknown metric"):
        similarity_grid(a, metrics=["cka2"])
    with pytest.raises(InputError, match="callable"):
        similarity_grid(a, metrics={"x": 3})
    with pytest.raises(InputError, match="same number of samples"):
        similarity_grid(a, [a[0][:-1]])
    with pytest.raises(InputError, match="empty"):
        similarity_grid([])
    with pytest.raises(InputError, match="list of"):
        similarity_grid(a[0])  # type: ignore[arg-type]
    bad = [a[0].copy()]
    bad[0][0, 0] = np.nan
    with pytest.raises(InputError, match=r"acts_b\['0'\].*NaN"):
        similarity_grid(a, bad)


def test_figure_has_one_heatmap_per_metric_in_layer_order():
    layers = {"l2": _layers(4)[0], "l10": _layers(4)[1], "l1": _layers(4)[2]}
    df = similarity_grid(layers, metrics=["linear_cka", "procrustes"])
    fig = similarity_grid_figure(df, title="demo")
    assert isinstance(fig, go.Figure)
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]
    heat = fig.data[0]
    assert list(heat.y) == ["l2", "l10", "l1"] and list(heat.x) == ["l2", "l10", "l1"]
    z = np.asarray(heat.z)
    assert z.shape == (3, 3)
    assert z[1, 2] == pytest.approx(
        df.query("metric == 'linear_cka' and layer_a == 'l10' and layer_b == 'l1'").value.item()
    )
    with pytest.raises(InputError, match="columns"):
        similarity_grid_figure(pd.DataFrame({"a": [1]}))
    with pytest.raises(InputError, match="empty"):
        similarity_grid_figure(df.iloc[:0])
