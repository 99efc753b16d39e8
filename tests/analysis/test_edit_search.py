"""Edit search: config errors, candidate selection, torn-JSONL recovery, resume without duplicates."""

from __future__ import annotations

import json

import pytest

from analysis.edit_search import (
    EditSearchConfig,
    dev_score,
    edit_key,
    evaluate_dev,
    resolve_candidates,
    run_edit_search,
    scan_candidates,
)
from probes.edits import EditSpec
from probes.errors import InputError
from probes.runs import JsonlLog


def test_config_errors():
    with pytest.raises(InputError, match="alphas is empty"):
        EditSearchConfig(alphas=())
    with pytest.raises(InputError, match="alpha = 1"):
        EditSearchConfig(alphas=(0.0, 1.0))
    with pytest.raises(InputError, match="no candidates"):
        EditSearchConfig(top_k=0)
    with pytest.raises(InputError, match="dev_n"):
        EditSearchConfig(dev_n=(1, 2))
    with pytest.raises(InputError, match="components"):
        EditSearchConfig(top_k=0, components=((1, 2),))  # not (layer, head, component)
    with pytest.raises(InputError, match="dev_per_n must be >= 1"):
        EditSearchConfig(dev_per_n=0)
    # config.json round trip: what a resumed search reads back equals what it was written from
    cfg = EditSearchConfig(alphas=(0, 2), heads=((1, 2),), components=((0, 1, 2),))
    assert cfg.alphas == (0.0, 2.0) and cfg.heads == ((1, 2),)
    assert EditSearchConfig.parse(json.loads(json.dumps(cfg.to_json()))) == cfg


def test_unknown_component_is_a_clear_error(tiny):
    with pytest.raises(InputError, match="component 99 is out of range"):
        resolve_candidates(tiny, EditSearchConfig(top_k=0, components=((0, 0, 99),)))
    with pytest.raises(InputError, match="layer 5 is out of range"):
        resolve_candidates(tiny, EditSearchConfig(top_k=0, heads=((5, 0),)))


def test_candidates_from_scan(tiny):
    from analysis.channels import ScanConfig, scan_channels
    from probes.weights import head_weights

    df = scan_channels(head_weights(tiny), ScanConfig(modes="Q", n_null=50))
    cands = scan_candidates(df, 5, min_receiver_layer=1)
    assert len(cands) == 5 == len(set(cands))
    assert all(layer == 0 for layer, _, _ in cands)  # only layer-0 senders reach layer 1
    zs = [
        df[(df.sender_layer == a) & (df.sender_head == b) & (df.component == c)].z.max() for a, b, c in cands
    ]
    assert zs == sorted(zs, reverse=True)
    got = resolve_candidates(tiny, EditSearchConfig(top_k=3, modes="Q", n_null=50, heads=((1, 2),)))
    assert got[-4:] == [(1, 2, 0), (1, 2, 1), (1, 2, 2), (1, 2, 3)] and len(got) == len(set(got))


def test_dev_score_and_keys():
    import pandas as pd

    by_n = pd.DataFrame({"n_items": [2, 4], "accuracy_items": [1.0, 0.0]})
    assert dev_score(by_n) == 0.5 and dev_score(by_n, 1.0) == pytest.approx(1 / 3)
    assert edit_key([]) == "baseline"
    assert edit_key([(2, 1, 0, 3.0), (1, 0, 2, 0.5)]) == edit_key([(1, 0, 2, 0.5), (2, 1, 0, 3.0)])


def test_killed_search_resumes_from_its_log(tmp_path):
    """A torn last line (killed mid-write) is redone; finished records are never re-evaluated."""
    from probes.organism import load_organism

    organism = load_organism()
    cfg = EditSearchConfig(
        top_k=0, components=((1, 3, 1), (2, 1, 0)), alphas=(0.0, 2.0), dev_n=(2, 3), dev_per_n=2, n_combine=0
    )
    run = tmp_path / "run"
    first = run_edit_search(organism, cfg, run, progress=False, report=False)
    log = run / "search.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["key"] == "baseline"
    log.write_text("\n".join(lines[:3]) + "\n" + lines[3][:17])  # killed while writing record 4
    assert [r["key"] for r in JsonlLog(log).read()] == [json.loads(x)["key"] for x in lines[:3]]
    calls = []
    again = run_edit_search(organism, cfg, run, progress=False, report=False, on_record=calls.append)
    assert [r["key"] for r in calls] == [json.loads(x)["key"] for x in lines[3:]]
    assert log.read_text().splitlines() == lines[:3] + [json.dumps(r) for r in calls]
    assert {r["key"]: r["score"] for r in again.records} == {r["key"]: r["score"] for r in first.records}


def test_search_on_ray_gives_the_single_process_records(tmp_path):
    """Baseline and single edits evaluated by 2 Ray workers: the same keys and dev scores."""
    pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[scale]')")
    from probes.organism import load_organism
    from probes.scaleout import RayConfig

    organism = load_organism()
    cfg = EditSearchConfig(
        top_k=0, components=((1, 3, 1), (2, 1, 0)), alphas=(0.0, 2.0), dev_n=(2, 3), dev_per_n=2, n_combine=2
    )
    one = run_edit_search(organism, cfg, tmp_path / "one", progress=False, report=False)
    ray = run_edit_search(organism, cfg, tmp_path / "ray", progress=False, report=False, ray=RayConfig())
    assert {r["key"]: r["score"] for r in ray.records} == {r["key"]: r["score"] for r in one.records}
    assert len(ray.records) == len(one.records) and ray.best["key"] == one.best["key"]


@pytest.mark.pack
def test_search_resumes_and_spec_reapplies(smollm2, tmp_path):
    import torch

    torch.set_num_threads(1)
    cfg = EditSearchConfig(
        top_k=0,
        components=((21, 5, 2), (19, 4, 4)),
        alphas=(0.0, 3.0),
        dev_n=(2, 6),
        dev_per_n=3,
        n_combine=2,
        test_n=(2, 6),
        test_per_n=2,
        ioi_prompts=4,
        lm_max_tokens=32,
    )
    run = tmp_path / "run"
    res = run_edit_search(smollm2, cfg, run, progress=False, report=False)
    lines = (run / "search.jsonl").read_text().splitlines()
    assert len(lines) >= 5 and json.loads(lines[0])["key"] == "baseline"
    # simulated kill: keep two lines and a torn third, then resume
    (run / "search.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:17])
    calls = []
    res2 = run_edit_search(
        smollm2,
        cfg,
        run,
        progress=False,
        report=True,
        texts=["The cat sat on the mat."],
        on_record=calls.append,
    )
    keys = [r["key"] for r in JsonlLog(run / "search.jsonl").read()]
    assert len(keys) == len(lines) == len(set(keys))
    assert len(calls) == len(lines) - 2  # only the missing evaluations were re-run
    assert {r["key"]: r["score"] for r in res2.records} == {r["key"]: r["score"] for r in res.records}
    # the saved best spec (or, if nothing beat the baseline, the best single edit) re-applies identically
    best = res2.best if res2.spec_path else max(res2.records[1:], key=lambda r: r["score"])
    path = res2.spec_path or EditSpec.build(smollm2, [tuple(e) for e in best["edits"]]).save(
        tmp_path / "e.json"
    )
    with EditSpec.load(path).apply(smollm2):
        again = evaluate_dev(smollm2, cfg)["score"]
    assert again == pytest.approx(best["score"])
    if res2.spec_path:
        rep = json.loads((run / "report.json").read_text())
        assert set(rep["test_accuracy_by_n"]) == {"2", "6"} and len(rep["lm_loss"]) == 2
    # another config in the same directory is refused
    with pytest.raises(InputError, match="different config"):
        run_edit_search(smollm2, EditSearchConfig(top_k=0, components=((1, 1, 1),)), run, progress=False)
