"""Learned-edit sweep on the organism: the run folder, a killed sweep resumes without redoing points,
each point's spec re-applies to give its recorded test accuracy, and a foreign run folder is refused."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from analysis.edits_learned import EditLearnConfig, run_edit_learn
from analysis.edits_learned.data import laundry_scored, prompt_sets
from probes.edits import EditSpec
from probes.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = EditLearnConfig(
    top_k=0,
    components=((1, 3, 1), (2, 1, 0)),
    heads=((2, 0),),
    l1=(0.0, 0.5),
    lm_weight=(0.0, 5.0),
    steps=4,
    lr=0.2,
    batch=4,
    dev_n=(2, 3),
    dev_per_n=4,
    dev_eval_per_n=2,
    test_n=(2, 3, 4),
    test_per_n=3,
    ioi_prompts=4,
    lm_max_tokens=32,
)


@pytest.fixture(scope="module")
def organism():
    from probes.organism import load_organism

    return load_organism()


def test_sweep_writes_the_front_and_resumes(organism, tmp_path):
    run = tmp_path / "run"
    first = run_edit_learn(organism, CFG, run, progress=False)
    for name in ("config.json", "candidates.json", "baseline.json", "front.parquet", "test_by_n.parquet"):
        assert (run / name).is_file(), name
    lines = (run / "front.jsonl").read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["l1=0_lm=0", "l1=0_lm=5", "l1=0.5_lm=0", "l1=0.5_lm=5"]
    front = pd.read_parquet(run / "front.parquet")
    assert len(front) == 4 and front["pareto"].any()
    assert set(pd.read_parquet(run / "test_by_n.parquet")["n_items"]) == {2, 3, 4}
    rep = json.loads((run / "report.json").read_text())
    assert rep["n_candidates"] == 2 + organism.info.d_head and rep["n_points"] == 4

    # a kill while writing the third point: finished points are kept, only the rest are learned again
    (run / "front.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    again = []
    second = run_edit_learn(organism, CFG, run, progress=False, on_point=again.append)
    assert [r["key"] for r in again] == ["l1=0.5_lm=0", "l1=0.5_lm=5"]

    def untimed(text):
        return [{k: v for k, v in json.loads(x).items() if k != "seconds_per_step"} for x in text]

    # deterministic: the relearned points are identical (but for their timing)
    assert untimed((run / "front.jsonl").read_text().splitlines()) == untimed(lines)
    pd.testing.assert_frame_equal(first["front"], second["front"])


def test_each_spec_reapplies_to_its_recorded_accuracy(organism, tmp_path):
    """With the movers' QK components too (``qk_heads``): the saved spec holds both kinds."""
    run = tmp_path / "run"
    cfg = CFG.model_copy(update={"l1": (0.0,), "lm_weight": (0.0,), "qk_heads": ((2, 0), (2, 3))})
    rep = run_edit_learn(organism, cfg, run, progress=False)
    assert rep["n_qk_candidates"] == 2 * organism.info.d_head
    rec = json.loads((run / "front.jsonl").read_text())
    assert rec["n_edited"] > 0 and rec["spec"] == "l1=0_lm=0.json"
    spec = EditSpec.load(run / "specs" / rec["spec"])
    assert [[e.layer, e.head, e.component, e.alpha, e.kind] for e in spec.edits] == rec["edits"]
    assert {e.kind for e in spec.edits} == {"ov", "qk"}
    test = prompt_sets(organism, cfg)["test"]
    with spec.apply(organism):
        scored = laundry_scored(organism, test, batch_size=8)
    after = scored.groupby("n_items")["correct_items"].mean()
    assert {int(n): a for n, a in after.items()} == {int(n): v[1] for n, v in rec["test_acc_by_n"].items()}


def test_located_movers_qk_are_learned_and_kept_on_resume(organism, tmp_path):
    """``qk_movers``: the movers located on the dev-eval prompts (as analysis.laundry locates them) give
    the QK candidates; they are saved, so a resume learns the same ones."""
    from analysis.edits_learned.learn import located_movers

    run = tmp_path / "run"
    cfg = CFG.model_copy(update={"l1": (0.0,), "lm_weight": (0.0,), "steps": 2, "qk_movers": 2})
    rep = run_edit_learn(organism, cfg, run, progress=False)
    movers = located_movers(organism, prompt_sets(organism, cfg)["dev_eval"], 2)
    assert len(movers) == 2 and all(layer > 0 for layer, _ in movers)
    saved = json.loads((run / "qk_candidates.json").read_text())
    assert saved == [[la, h, c] for la, h in movers for c in range(organism.info.d_head)]
    assert rep["n_qk_candidates"] == len(saved) and rep["qk_heads"] == sorted(movers)
    fake = [[0, 0, 0]]  # a resume reads the saved list, it does not locate again
    (run / "qk_candidates.json").write_text(json.dumps(fake))
    assert run_edit_learn(organism, cfg, run, progress=False)["n_qk_candidates"] == 1
    with pytest.raises(ValueError, match="qk_movers"):
        EditLearnConfig(qk_movers=-1)


def test_learning_lowers_the_dev_loss(organism):
    """Unpenalised, the learned scales lower the answer's cross-entropy on the training prompts."""
    from analysis.edits_learned.data import LaundryBatch
    from analysis.edits_learned.learn import learn_scales
    from analysis.edits_learned.scales import ComponentScales

    cfg = CFG.model_copy(update={"steps": 15, "batch": 8, "lr": 0.1})
    train = LaundryBatch.from_prompts(organism, prompt_sets(organism, cfg)["train"])
    cs = ComponentScales(organism, [(2, h, c) for h in range(4) for c in range(4)])
    rows = torch.arange(len(train))
    with torch.no_grad():
        before = float(train.loss(organism, rows))
    scales, _ = learn_scales(cs, train, None, cfg, l1=0.0, lm_weight=0.0)
    with torch.no_grad(), cs.attached(scales):
        after = float(train.loss(organism, rows))
    assert after < before


def test_a_folder_of_another_model_or_config_is_refused(organism, tmp_path):
    run = tmp_path / "run"
    (run).mkdir()
    (run / "config.json").write_text(json.dumps({"model": "smollm2-135m-instruct", "config": CFG.to_json()}))
    with pytest.raises(InputError, match="for model 'smollm2-135m-instruct'"):
        run_edit_learn(organism, CFG, run, progress=False)
    (run / "config.json").write_text(json.dumps({"model": organism.name, "config": CFG.to_json()}))
    with pytest.raises(InputError, match="different config"):
        run_edit_learn(organism, CFG.model_copy(update={"steps": 5}), run, progress=False)
