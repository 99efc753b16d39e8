"""Edit lab "Positional subspace" on the organism (AppTest, in process): nothing is computed before the
button; the button locates the channel, saves it on disk and shows the 3D scatter (one trace per answer
position, one point per test prompt), the effective dimension and the decodability-by-N table; after an
edit is applied, the same scatter for the edited copy in the same axes; a new session reads it from disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "apps" / "dashboard" / "app.py"
NS, PER_N = (2, 4), 12  # N = 2, 3, 4; 12 prompts per N (each position at least 3 times)


def _open(cache: Path, per_n: int = PER_N) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["model"] = "organism"
    at.session_state["keep::edit_ns"] = NS
    at.session_state["keep::edit_per_n"] = per_n
    at.run()
    at.switch_page("views/edit_lab.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _figures(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures (as plotly JSON) by their title."""
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {f["layout"]["title"]["text"]: f for f in figs if "title" in f["layout"]}


def _values(arr) -> list:
    """A plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}`` (base64) as plotly sends numpy."""
    import base64

    import numpy as np

    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=arr["dtype"]).tolist()
    return list(arr)


def _scatter_points(fig: dict) -> dict[str, int]:
    return {t["name"]: len(_values(t["x"])) for t in fig["data"] if t["type"] == "scatter3d"}


def _table(at: AppTest):
    """The decodability-by-N table, its shown numbers (3 decimals) as floats."""
    found = [t.value for t in at.table if "decodable" in " ".join(t.value.columns)]
    assert found, [list(t.value.columns) for t in at.table]
    table = found[0].copy()
    for c in table.columns:
        table[c] = table[c].astype(int if c in ("N", "prompts") else float)
    return table


def test_subspace_view_before_and_after_an_edit(tmp_path, monkeypatch):
    monkeypatch.setenv("SUBLENS_CACHE", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    at = _open(tmp_path)
    assert "Not computed yet for N 2–4 · 12 prompts per N" in "\n".join(str(i.value) for i in at.info)
    assert not any(f.startswith("Unedited · N") for f in _figures(at))
    at.button(key="edit_sub_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "edit_sub_run" not in [b.key for b in at.button]  # done: the button gave way to the results
    figs = _figures(at)
    assert "Unedited · N = 3" in figs, list(figs)
    # one trace per answer position, every N = 3 test prompt once
    assert _scatter_points(figs["Unedited · N = 3"]) == {f"position {p}": 4 for p in range(3)}
    table = _table(at)
    assert table["N"].tolist() == [2, 3, 4] and table["prompts"].tolist() == [PER_N] * 3
    assert table["chance"].tolist() == pytest.approx([1 / 2, 1 / 3, 1 / 4], abs=1e-3)
    assert table["decodable"].between(0, 1).all()
    labels = [m.label for m in at.metric]
    assert "effective dimension (90 % / 95 %)" in labels and "directions stacked" in labels
    k90, k95 = (
        int(x) for x in next(m.value for m in at.metric if m.label.startswith("effective")).split(" / ")
    )
    m = int(next(m.value for m in at.metric if m.label == "directions stacked"))
    assert 1 <= k90 <= k95 <= m
    comps = [d.value for d in at.dataframe if "best_mover" in d.value.columns][0]
    assert len(comps) == m and comps["z"].notna().all()  # one row per stacked write direction
    # the same accuracy as the Edit lab's table above (the same prompts, scored among the list items)
    above = [t.value for t in at.table if "accuracy_before" in t.value.columns][0]
    assert [float(a) for a in above["accuracy_before"]] == pytest.approx(table["accuracy"].tolist(), abs=1e-3)
    # another N in the scatter
    at.select_slider(key="edit_sub_n").set_value(4).run()
    assert _scatter_points(_figures(at)["Unedited · N = 4"]) == {f"position {p}": 3 for p in range(4)}

    # apply an edit: the comparison needs the edited copy (not computed yet), then shows both scatters
    at.button(key="edit_apply").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key="edit_sub_compare").value
    assert at.button(key="edit_sub_run").help.startswith("To do: the edited copy.")
    assert "The applied edit is not projected yet" in "\n".join(str(c.value) for c in at.caption)
    assert list(_figures(at)) == ["Unedited · N = 4"]  # meanwhile the unedited scatter stays
    at.button(key="edit_sub_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    figs = _figures(at)
    edited = [t for t in figs if t.startswith("After edit: ")]
    assert "Unedited · N = 4" in figs and len(edited) == 1 and edited[0].endswith("· N = 4"), list(figs)
    a, b = figs["Unedited · N = 4"]["layout"]["scene"], figs[edited[0]]["layout"]["scene"]
    assert all(a[ax]["range"] == b[ax]["range"] for ax in ("xaxis", "yaxis", "zaxis"))  # shared axes
    assert _scatter_points(figs[edited[0]]) == {f"position {p}": 3 for p in range(4)}
    table = _table(at)
    assert {"decodable (unedited)", "decodable (edited)", "accuracy (edited)"} <= set(table.columns)
    after = [t.value for t in at.table if "accuracy_after" in t.value.columns][0]
    assert [float(x) for x in after["accuracy_after"]] == pytest.approx(
        table["accuracy (edited)"].tolist(), abs=1e-3
    )
    assert len(at.get("download_button")) >= 4

    # a new session on the same cache: shown at once, without the button
    again = _open(tmp_path)
    assert "Unedited · N = 3" in _figures(again)
    saved = list((tmp_path / "dashboard" / "edit_lab" / "subspace").glob("*/channel.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["ns"] == [2, 3, 4]


def test_subspace_view_with_too_few_prompts_to_decode(tmp_path, monkeypatch):
    """2 prompts per N: every N has a position seen once, so nothing is decoded ("–"); the scatter shows."""
    monkeypatch.setenv("SUBLENS_CACHE", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    at = _open(tmp_path, per_n=2)
    at.button(key="edit_sub_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = [t.value for t in at.table if "decodable" in t.value.columns][0]
    assert table["decodable"].tolist() == ["–"] * 3 and table["prompts"].astype(int).tolist() == [2] * 3
    assert _scatter_points(_figures(at)["Unedited · N = 3"]) == {"position 0": 1, "position 1": 1}
