"""AppTest of every page of the app on a workspace prepared through clear_core (fake scores via the store API)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_helpers import close_app_workspace, shown_row  # noqa: E402
from bench.ui_latency import make_dataset, write_fake_run  # noqa: E402
from clear_core.store import Workspace  # noqa: E402

PAGES = {"Data & Scoring": "app_pages/data.py", "Explore": "app_pages/explore.py", "Review": "app_pages/review.py",
         "Export": "app_pages/export.py"}
PAYLOAD = "<b>bold</b><script>alert(1)</script>"


@pytest.fixture
def scored(tmp_path, monkeypatch):
    """A workspace with 40 synthetic rows + one HTML payload row, a finished fake scoring run and proposals."""
    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, "small", 40, extra=[("Render this: <i>tag</i>", PAYLOAD)])
        run_id = write_fake_run(ws, "small", proposal_share=0.5)
        conf = ws.scores_wide(run_id, ["confidence"])["confidence"].to_numpy()
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    yield {"path": path, "run_id": run_id, "confidence": conf}
    close_app_workspace(path)


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(PAGES[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, word: str) -> int:
    found = [m for m in at.metric if word in m.label]
    assert found, [m.label for m in at.metric]
    return int(found[0].value.replace(",", ""))


def app_ws(path: str):
    from ui import state

    return state.workspace(path)


def test_every_page_renders_without_errors(scored):
    at = app().run()
    assert not at.exception
    for title in PAGES:
        open_page(at, title)
        assert [t.value for t in at.title] == [title]
        assert not at.error, [e.value for e in at.error]
    assert at.sidebar.selectbox(key="dataset").value == "small"
    assert at.sidebar.selectbox(key="run_id").value == scored["run_id"]


def test_threshold_sliders_update_the_counts(scored):
    at = open_page(app().run(), "Explore")
    conf = scored["confidence"]
    t_keep = at.session_state["t_keep"]
    assert t_keep == pytest.approx(np.median(conf), abs=1e-3)  # default: the median keeps about half
    assert metric(at, "Kept") == int((conf >= t_keep).sum())
    at.slider(key="w_t_keep").set_value(0.8).run()
    assert not at.exception
    assert at.session_state["t_keep"] == pytest.approx(0.8)
    assert metric(at, "Kept") == int((conf >= 0.8).sum())
    at.slider(key="w_t_drop").set_value(0.3).run()
    t_drop = at.session_state["t_drop"]
    assert metric(at, "Dropped") == int((conf < t_drop).sum())
    assert metric(at, "review") == int(((conf >= t_drop) & (conf < 0.8)).sum())
    # the thresholds are shared with the other pages
    open_page(at, "Review")
    assert at.session_state["t_keep"] == pytest.approx(0.8)


def test_keep_fraction_and_reset(scored):
    at = open_page(app().run(), "Explore")
    conf = scored["confidence"]
    at.number_input(key="keep_fraction").set_value(0.25).run()
    at.button(key="apply_fraction").click().run()
    assert metric(at, "Kept") == pytest.approx(0.25 * len(conf), abs=1)
    at.button(key="reset_median").click().run()
    assert metric(at, "Kept") == int((conf >= np.median(conf)).sum())


def test_review_buttons_write_decisions(scored):
    at = app().run()
    at.sidebar.text_input(key="reviewer").set_value("ana").run()
    open_page(at, "Review")
    ws = app_ws(scored["path"])
    ds_id = ws.get_dataset("small").id
    first = shown_row(at)
    at.button(key="act_keep").click().run()
    assert not at.exception
    decided = ws.current_decisions(ds_id)
    assert decided.set_index("row_idx").loc[first, "action"] == "keep"
    assert decided.set_index("row_idx").loc[first, "reviewer"] == "ana"
    second = shown_row(at)
    assert second != first  # "undecided only": the kept row left the queue
    at.button(key="act_drop").click().run()
    assert ws.current_decisions(ds_id).set_index("row_idx").loc[second, "action"] == "drop"
    # undo takes back the latest decision of this reviewer
    at.button(key="act_undo").click().run()
    assert second not in set(ws.current_decisions(ds_id)["row_idx"])
    assert first in set(ws.current_decisions(ds_id)["row_idx"])
    # accept a proposed fix: the stored text is the proposal
    at.selectbox(key="f_prop").set_value("yes").run()
    row = shown_row(at)
    proposal = ws.review_queue(ds_id, scored["run_id"], band="all", limit=100).set_index("row_idx").loc[row,
                                                                                                       "proposal"]
    at.button(key="act_accept").click().run()
    got = ws.current_decisions(ds_id).set_index("row_idx").loc[row]
    assert (got["action"], got["text"]) == ("accept", proposal)
    # edit: the text area is prefilled, the saved text is what was typed
    row = shown_row(at)
    at.button(key="act_edit").click().run()
    at.text_area(key=f"edit_{row}").set_value("a better answer").run()
    at.button(key="save_edit").click().run()
    got = ws.current_decisions(ds_id).set_index("row_idx").loc[row]
    assert (got["action"], got["text"]) == ("edit", "a better answer")
    progress = ws.review_progress(ds_id, scored["run_id"], at.session_state["t_keep"])
    assert progress["reviewed"] == 3


def test_a_second_session_sees_decisions_at_once(scored):
    a, b = open_page(app().run(), "Review"), open_page(app().run(), "Review")
    row = shown_row(a)
    assert shown_row(b) == row  # both start at the least trustworthy undecided row
    b.button(key="act_keep").click().run()
    a.run()
    assert shown_row(a) != row  # a skips the row b just decided, without reloading anything by hand
    assert "Reviewed 1 of" in a.get("progress")[0].proto.text


def test_queue_follows_the_store_order_across_windows(scored, monkeypatch):
    from ui import queue

    monkeypatch.setattr(queue, "WINDOW", 3)  # small windows: the queue is re-read several times
    at = open_page(app().run(), "Review")
    ws = app_ws(scored["path"])
    ds_id = ws.get_dataset("small").id
    expected = ws.review_queue(ds_id, scored["run_id"], band="flagged", t_drop=at.session_state["t_drop"],
                               t_keep=at.session_state["t_keep"], limit=9)["row_idx"].tolist()
    seen = []
    at.button(key="act_next").click().run()  # skip the first row: it stays undecided and comes back later
    for _ in range(7):
        seen.append(shown_row(at))
        at.button(key="act_drop").click().run()
        assert not at.exception
    assert seen == expected[1:8]
    at.button(key="act_prev").click().run()  # back to the skipped row, past the windows read since
    assert shown_row(at) == expected[0]
    assert set(ws.current_decisions(ds_id)["row_idx"]) == set(expected[1:8])


def test_bulk_action_needs_confirmation(scored):
    at = open_page(app().run(), "Review")
    ws = app_ws(scored["path"])
    ds_id = ws.get_dataset("small").id
    at.selectbox(key="f_band").set_value("drop").run()
    n = ws.review_count(ds_id, scored["run_id"], band="drop", t_drop=at.session_state["t_drop"],
                        undecided_only=True)
    assert n > 1
    assert at.button(key="bulk_apply").disabled
    at.radio(key="bulk_action").set_value("drop").run()
    at.checkbox(key="bulk_confirm").check().run()
    at.button(key="bulk_apply").click().run()
    assert not at.exception
    decided = ws.current_decisions(ds_id)
    assert len(decided) == n and set(decided["action"]) == {"drop"}
    assert any("Nothing left" in m.value for m in at.success)
    at.toggle(key="f_undecided").set_value(False).run()
    assert at.checkbox(key="bulk_confirm").value is False  # the confirmation does not stay armed


def test_review_filters_survive_a_page_change(scored):
    at = open_page(app().run(), "Review")
    at.selectbox(key="f_band").set_value("all").run()
    at.toggle(key="f_undecided").set_value(False).run()
    open_page(at, "Explore")
    open_page(at, "Review")
    assert at.selectbox(key="f_band").value == "all" and at.toggle(key="f_undecided").value is False
    assert not at.warning  # no "default value also set via Session State" warning


def test_html_payload_is_shown_as_text(scored):
    at = open_page(app().run(), "Review")
    at.selectbox(key="f_band").set_value("all").run()
    at.text_input(key="f_search").set_value("script").run()
    bodies = [m.value for m in at.markdown]
    assert any("&lt;b&gt;bold&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in b for b in bodies), bodies
    assert not any("<script" in b or "<b>bold" in b or "<i>tag" in b for b in bodies)


def test_errors_in_a_page_are_messages_not_tracebacks(scored, monkeypatch):
    from clear_core.errors import ClearError

    at = open_page(app().run(), "Explore")
    ws = app_ws(scored["path"])

    def clear_error(*args, **kwargs):
        raise ClearError("run 1 is gone; pick another run")

    monkeypatch.setattr(ws, "band_counts", clear_error)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["run 1 is gone; pick another run"]

    def bug(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ws, "band_counts", bug)
    at.run()
    assert not at.exception
    assert any("failed unexpectedly (RuntimeError: boom)" in e.value for e in at.error)
    details = [x for x in at.expander if x.label == "Details"]
    assert details and "Traceback" in details[0].code[0].value  # the details are folded away


def test_unusable_workspace_is_an_error_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", str(tmp_path / "missing" / "ws.duckdb"))
    at = app().run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error), [e.value for e in at.error]


def test_bad_upload_lists_bad_rows_and_can_skip_them(tmp_path, monkeypatch):
    path = str(tmp_path / "ws.duckdb")
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    good = '{"instruction": "Say hi", "input": "", "output": "hi"}\n'
    data = (good * 3 + '{"instruction": "Broken", "input": "", \n' + good).encode()
    try:
        at = app().run()
        at.file_uploader(key="upload").set_value(("bad.jsonl", data, "application/json")).run()
        assert not at.exception
        assert any("bad row" in e.value for e in at.error), [e.value for e in at.error]
        table = at.dataframe[0].value
        assert list(table.columns) == ["file", "line", "field", "message"] and table["line"].tolist() == [4]
        uploads = tmp_path / "uploads"  # the upload is saved whole beside the workspace, no temp left behind
        assert [p.name for p in uploads.iterdir()] == ["bad.jsonl"] and (uploads / "bad.jsonl").read_bytes() == data
        at.checkbox(key="skip_bad").check().run()
        at.text_input(key="name_bad.jsonl").set_value("good").run()
        at.button(key="import").click().run()
        assert not at.exception
        assert app_ws(path).get_dataset("good").n_rows == 4
    finally:
        close_app_workspace(path)



def test_signal_numbers_keep_small_probabilities_readable():
    from ui.widgets import _number

    assert [_number(v) for v in (None, float("nan"), 0.0, 0.5, 7.3e-05, 1.0)] == \
        ["—", "—", "0.000", "0.500", "7.3e-05", "1.000"]


def test_an_unfinished_run_shows_its_cli_resume_command_beside_the_button(scored):
    import shlex

    with Workspace.open(scored["path"]) as ws:
        info = ws.get_dataset("small")
        stopped = ws.create_run(info.id, "score", {"preset": "fast", "model": "tiny"}, info.n_rows)
        ws.update_run(stopped, status="stopped", message="stopped at 0 of 41 rows")
    at = open_page(app().run(), "Data & Scoring")
    assert any(f"Score run #{stopped} is stopped" in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.button(key=f"resume_{stopped}").label == f"Resume run #{stopped}"
    command = f"clear-studio resume {stopped} --workspace {shlex.quote(scored['path'])}"
    assert command in [c.value for c in at.code]


def test_the_export_page_offers_every_export_format(scored, tmp_path):
    import json

    from clear_core.names import EXPORT_FORMATS

    at = open_page(app().run(), "Export")
    for fmt in EXPORT_FORMATS:  # each one can be picked (the page once left out JSON)
        at.radio(key="x_fmt").set_value(fmt).run()
        assert not at.exception and at.radio(key="x_fmt").value == fmt
    at.button(key="x_prepare").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _, name, data, manifest = at.session_state["x_file"]
    assert name.endswith(".curated.parquet") and data[:4] == b"PAR1"
    at.radio(key="x_fmt").set_value("json").run()
    at.button(key="x_prepare").click().run()
    _, name, data, manifest = at.session_state["x_file"]
    assert name.endswith(".curated.json") and len(json.loads(data)) == manifest["counts"]["written"]


def test_the_charts_colour_rows_by_the_one_band_rule():
    import pandas as pd

    from clear_core.filtering import BANDS, band_codes
    from ui import charts
    from ui.widgets import BAND_COLORS

    conf = np.array([0.1, 0.3, 0.45, 0.5, 0.7, np.nan])
    points = pd.DataFrame({"row_idx": np.arange(len(conf)), "confidence": conf, "a": 0.5, "b": 0.5})
    for t_drop, t_keep in ((0.3, 0.5), (0.6, 0.4)):  # also the crossed case, where keep wins as in SQL
        codes = band_codes(conf, t_drop, t_keep)
        shown = {t.name.lower(): sorted(t.customdata.tolist()) for t in charts.scatter(points, "a", "b", t_drop,
                                                                                         t_keep).data}
        assert shown == {b: np.flatnonzero(codes == i).tolist() for i, b in enumerate(BANDS)}
        assert 5 in shown["review"]  # a NaN confidence is review, never kept or dropped
    hist = pd.DataFrame({"bin_lo": [0.0, 0.25, 0.5, 0.75], "bin_hi": [0.25, 0.5, 0.75, 1.0], "count": [1, 2, 3, 4]})
    bars = charts.histogram(hist, "c", 0.3, 0.6).data[0]
    assert list(bars.marker.color) == [BAND_COLORS[b] for b in ("drop", "review", "keep", "keep")]
