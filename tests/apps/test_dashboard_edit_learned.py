"""Edit lab "Learned edits" picker on the organism: lists the specs of an ``edit learn`` run for the current
model (none for another model's run), applies the chosen one and shows it as the learned edit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "apps" / "dashboard" / "app.py"


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    """A 1-point ``edit learn`` sweep of the organism in ``<root>/edit-learn/run``, plus a foreign record."""
    import torch

    from analysis.edits_learned import EditLearnConfig, run_edit_learn
    from probes.organism import load_organism

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    cfg = EditLearnConfig(
        top_k=0, components=((1, 3, 1), (2, 1, 0)), l1=(0.0,), lm_weight=(0.0,), steps=3, lr=0.3,
        dev_n=(2, 3), dev_per_n=4, dev_eval_per_n=2, test_n=(2, 3), test_per_n=2, ioi_prompts=0,
        lm_max_tokens=16,
    )  # fmt: skip
    run_edit_learn(load_organism(), cfg, root / "edit-learn" / "run", progress=False)
    other = root / "edit-learn" / "other"
    other.mkdir()
    rec = {"model": "smollm2-135m-instruct", "key": "x", "spec": "x.json"}
    (other / "front.jsonl").write_text(json.dumps(rec) + "\n" + '{"torn')
    return root


def test_learned_edit_picker(learned_run, monkeypatch):
    monkeypatch.setenv("SUBLENS_RUNS", str(learned_run))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["model"] = "organism"
    at.run()
    at.switch_page("views/edit_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    pick = at.selectbox(key="edit_learned_pick")
    assert len(pick.options) == 1 and pick.options[0].startswith("run · l1=0_lm=0: ")
    at.button(key="edit_learned_apply").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert "**Learned edit:** run · l1=0_lm=0" in shown
    spec = json.loads((learned_run / "edit-learn" / "run" / "specs" / "l1=0_lm=0.json").read_text())
    assert f"{len(spec['edits'])} components" in shown
