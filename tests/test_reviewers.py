"""Reviewers as people: each decision is signed and made on a version of the row, a stale screen gets a conflict
instead of overwriting, undo takes back one's own last action, per-reviewer progress and the adjudication queue;
and the Review page's side of it (conflict panel, undo after a bulk action, progress, the decided chip) in AppTest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_helpers import close_app_workspace, shown_row  # noqa: E402
from bench.ui_latency import make_dataset, write_fake_run  # noqa: E402
from clear_core.store import SCHEMA_VERSION, Workspace  # noqa: E402
from clear_core.store.decisions import DecisionConflict  # noqa: E402
from clear_core.store.schema import current_version, migrate  # noqa: E402
from test_store import data, state, ws  # noqa: E402, F401 - fixtures used by name


# the store -------------------------------------------------------------------------------------------------------

def test_each_entry_records_who_when_and_the_version_it_was_made_on(ws, data):
    ws.record_decisions(data.id, [0, 1], "keep", "ana")
    ws.record_decisions(data.id, [1], "drop", "bob", expected=ws.row_versions(data.id, [1]))
    log = ws.decision_log(data.id)
    assert log["reviewer"].tolist() == ["ana", "ana", "bob"] and log["ts"].notna().all()
    assert pd.isna(log["base_id"][0]) and pd.isna(log["base_id"][1])  # no entry on those rows before
    assert int(log["base_id"][2]) == int(log["id"][1])  # bob decided on ana's keep of row 1
    assert ws.row_versions(data.id, [0, 1, 2]) == {0: int(log["id"][0]), 1: int(log["id"][2])}


def test_a_stale_screen_gets_a_conflict_and_nothing_is_overwritten(ws, data):
    seen = ws.row_versions(data.id, [3])  # bob's screen loads row 3: undecided
    assert seen == {}
    ws.record_decisions(data.id, [3], "drop", "ana")  # ana drops it meanwhile
    with pytest.raises(DecisionConflict) as caught:
        ws.record_decisions(data.id, [3], "keep", "bob", expected={3: None})
    (conflict,) = caught.value.conflicts
    assert conflict["row_idx"] == 3 and conflict["seen"] is None
    assert (conflict["theirs"]["action"], conflict["theirs"]["reviewer"]) == ("drop", "ana")
    assert "row 3 changed since you loaded it (drop by ana)" in str(caught.value)
    assert state(ws, data.id) == {3: ("drop", None)} and len(ws.decision_log(data.id)) == 1
    # having seen ana's decision, bob applies his: made on ana's version
    ws.record_decisions(data.id, [3], "keep", "bob", expected={3: conflict["theirs"]["id"]})
    assert state(ws, data.id) == {3: ("keep", None)}
    # a bulk action with one stale row writes none of its rows
    with pytest.raises(DecisionConflict):
        ws.record_decisions(data.id, [3, 4], "drop", "ana", expected={3: conflict["theirs"]["id"], 4: None})
    assert 4 not in state(ws, data.id)


def test_undo_takes_back_only_the_reviewers_own_last_action(ws, data):
    ws.record_decisions(data.id, [2], "edit", "ana", new_text="Ana's careful answer.")  # 20 minutes ago
    ws.record_decisions(data.id, [5], "drop", "ana")  # her last action
    ws.record_decisions(data.id, [5], "keep", "bob")  # bob changed row 5 since
    last = ws.last_action(data.id, "ana")
    assert (last["action"], last["rows"], last["standing"]) == ("drop", [5], [])
    assert last["taken"] == [{"row_idx": 5, "action": "keep", "reviewer": "bob"}]
    assert ws.undo(data.id, "ana") == []  # neither bob's keep nor her older edit is undone
    assert state(ws, data.id) == {2: ("edit", "Ana's careful answer."), 5: ("keep", None)}
    assert ws.undo(data.id, "ana", row_idx=5) == []  # the row's standing decision is bob's
    # stepping past the batch bob changed reaches her edit, which is then genuinely her last
    assert ws.last_action(data.id, "ana", before=last["batch_id"])["rows"] == [2]
    ws.record_decisions(data.id, [2], "edit", "ana", new_text="v2 with\ttabs  and trailing space ")
    ws.record_decisions(data.id, [2], "edit", "ana", new_text="v3")
    assert ws.undo(data.id, "ana") == [2]
    assert state(ws, data.id)[2] == ("edit", "v2 with\ttabs  and trailing space ")  # the text, exactly
    assert ws.undo(data.id, "bob") == [5]
    assert state(ws, data.id)[5] == ("drop", None)


def test_undo_after_a_bulk_action_takes_back_the_whole_batch(ws, data):
    ws.record_decisions(data.id, [0], "edit", "ana", new_text="before")
    batch = ws.record_decisions(data.id, list(range(12)), "drop", "ana")
    assert ws.last_action(data.id, "ana")["batch_id"] == batch
    assert ws.undo(data.id, "ana") == list(range(12))
    assert state(ws, data.id) == {0: ("edit", "before")}


def test_reviewer_progress_and_the_adjudication_queue(ws, data):
    ws.record_decisions(data.id, [0, 1, 2], "keep", "ana")
    ws.record_decisions(data.id, [1], "drop", "bob")
    ws.record_decisions(data.id, [2], "keep", "bob")  # agrees with ana
    ws.record_decisions(data.id, [3], "edit", "bob", new_text="bob's text")
    ws.record_decisions(data.id, [3], "edit", "ana", new_text="ana's text")  # same action, other text
    ws.record_decisions(data.id, [4], "drop", "auto")
    ws.record_decisions(data.id, [4], "keep", "ana")  # overriding the automatic pass is no disagreement
    progress = ws.reviewer_progress(data.id).set_index("reviewer")
    assert sorted(progress.index) == ["ana", "bob"]
    assert progress.loc["ana", ["rows", "keep", "edit", "standing"]].tolist() == [5, 4, 1, 3]  # row 2: bob decided last
    assert progress.loc["bob", ["rows", "keep", "drop", "edit", "standing"]].tolist() == [3, 1, 1, 1, 2]
    ws.undo(data.id, "bob", row_idx=2)  # bob takes back his keep of row 2: ana's keep stands again
    assert ws.reviewer_progress(data.id).set_index("reviewer").loc["ana", "standing"] == 4
    ws.record_decisions(data.id, [2], "keep", "bob")
    queue = ws.disagreements(data.id)
    assert sorted(set(queue["row_idx"])) == [1, 3]
    row1 = queue[queue["row_idx"] == 1].set_index("reviewer")
    assert row1.loc["ana", "action"] == "keep" and row1.loc["bob", "action"] == "drop"
    # settling row 1 takes it out of the queue; undoing bob's edit of row 3 ends that disagreement too
    version = int(row1["version"].iloc[0])
    ws.record_decisions(data.id, [1], "drop", "cat", expected={1: version}, settles=True)
    assert ws.undo(data.id, "bob", row_idx=3) == []  # not bob's standing decision: ana's edit came after
    ws.record_decisions(data.id, [3], "edit", "bob", new_text="ana's text")
    assert ws.disagreements(data.id).empty
    ws.record_decisions(data.id, [1], "keep", "ana")  # a later decision can start a new disagreement
    assert set(ws.disagreements(data.id)["row_idx"]) == {1}


def test_an_old_workspace_is_migrated_and_keeps_its_decisions(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    assert migrate(con.cursor(), str(path), upto=3) == 3  # decisions had no version column
    con.execute("INSERT INTO datasets (name, source_path, spec, sha256, n_rows, created_at) "
                "VALUES ('old', 'x.jsonl', '{}', 'abc', 3, now())")
    con.execute("INSERT INTO decisions (dataset_id, row_idx, action, new_text, reviewer, ts, batch_id) "
                "VALUES (1, 2, 'edit', 'old text', 'ana', now(), 1)")
    con.close()
    with Workspace.open(path) as ws:
        assert current_version(ws.cursor()) == SCHEMA_VERSION
        assert state(ws, 1) == {2: ("edit", "old text")}
        old_id = ws.row_versions(1, [2])[2]
        ws.record_decisions(1, [2], "keep", "bob", expected={2: old_id})
        assert int(ws.decision_log(1)["base_id"].iloc[-1]) == old_id
        assert ws.undo(1, "bob") == [2] and state(ws, 1) == {2: ("edit", "old text")}


# the Review page (AppTest) -------------------------------------------------------------------------------------

@pytest.fixture
def scored(tmp_path, monkeypatch):
    path = str(tmp_path / "app.duckdb")
    with Workspace.open(path) as w:
        make_dataset(w, "small", 40)
        run_id = write_fake_run(w, "small", proposal_share=0.5)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    yield {"path": path, "run_id": run_id}
    close_app_workspace(path)


def review_as(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.sidebar.text_input(key="reviewer").set_value(name).run()
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def app_ws(path: str):
    from ui import state

    return state.workspace(path)


def texts(at) -> str:
    return "\n".join(m.value for m in at.markdown) + "\n".join(t.value for t in at.toast)


def progress_text(at) -> str:
    return at.get("progress")[0].proto.text


def test_a_stale_screen_shows_both_decisions_and_lets_the_reviewer_choose(scored):
    ana, bob = review_as("ana"), review_as("bob")
    ws = app_ws(scored["path"])
    ds_id = ws.get_dataset("small").id
    row = shown_row(ana)
    assert shown_row(bob) == row
    ana.button(key="act_drop").click().run()
    bob.button(key="act_keep").click().run()  # bob's screen still shows the row undecided
    assert not bob.exception
    page = texts(bob)
    assert f"Row {row} changed while you were looking at it" in page
    assert "**Theirs** · Dropped by **ana**" in page and "**Yours** · Kept by **bob**" in page
    assert ws.row_state(ds_id, row) == {"action": "drop", "text": None, "reviewer": "ana"}  # nothing overwritten
    assert not [b for b in bob.button if b.key == "act_keep"]  # no key decides another row meanwhile
    bob.button(key="conflict_mine").click().run()
    assert ws.row_state(ds_id, row)["reviewer"] == "bob"
    log = ws.decision_log(ds_id)
    assert log["reviewer"].tolist() == ["ana", "bob"] and int(log["base_id"].iloc[1]) == int(log["id"].iloc[0])
    # the other choice: keep theirs, and bob's decision is not written
    row2 = shown_row(ana)
    bob.run()
    assert shown_row(bob) == row2
    ana.button(key="act_keep").click().run()
    bob.button(key="act_drop").click().run()
    assert "changed while you were looking" in texts(bob)
    bob.button(key="conflict_theirs").click().run()
    assert ws.row_state(ds_id, row2)["reviewer"] == "ana" and len(ws.decision_log(ds_id)) == 3
    assert shown_row(bob) not in (row, row2)


def test_undo_on_the_page_is_the_reviewers_own_last_action(scored):
    ana = review_as("ana")
    ws = app_ws(scored["path"])
    ds_id = ws.get_dataset("small").id
    edited = shown_row(ana)
    ana.button(key="act_edit").click().run()
    ana.text_area(key=f"edit_{edited}").set_value("Ana's careful  answer\n").run()
    ana.button(key="save_edit").click().run()
    dropped = shown_row(ana)
    ana.button(key="act_drop").click().run()
    ws.record_decisions(ds_id, [dropped], "keep", "bob")  # bob changed it since
    ana.button(key="act_undo").click().run()
    assert "Nothing undone: your last drop was changed since" in texts(ana)
    assert "row " + str(dropped) + " (kept by bob)" in texts(ana)
    assert ws.row_state(ds_id, edited) == {"action": "edit", "text": "Ana's careful  answer\n", "reviewer": "ana"}
    assert ws.row_state(ds_id, dropped)["reviewer"] == "bob"
    ana.button(key="act_undo").click().run()  # now the edit is genuinely her last action
    assert ws.row_state(ds_id, edited) is None and shown_row(ana) == edited


def test_bulk_action_keeps_undo_and_the_progress_right(scored):
    ana = review_as("ana")
    ws = app_ws(scored["path"])
    ds_id = ws.get_dataset("small").id
    t_drop, t_keep = ana.session_state["t_drop"], ana.session_state["t_keep"]
    ana.selectbox(key="f_band").set_value("drop").run()
    n = ws.review_count(ds_id, scored["run_id"], band="drop", t_drop=t_drop, t_keep=t_keep, undecided_only=True)
    ana.radio(key="bulk_action").set_value("drop").run()
    ana.checkbox(key="bulk_confirm").check().run()
    ana.button(key="bulk_apply").click().run()
    progress = ws.review_progress(ds_id, scored["run_id"], t_keep)
    assert progress["reviewed"] == n > 1
    assert f"Reviewed {progress['flagged_reviewed']:,} of {progress['flagged']:,}" in progress_text(ana)
    assert any("Nothing left" in m.value for m in ana.success)
    ana.button(key="act_undo").click().run()  # still there, and it takes back the whole bulk action
    assert ws.current_decisions(ds_id).empty
    assert progress_text(ana).startswith("Reviewed 0 of")
    assert f"1 / {n:,} in this filter" in texts(ana)


def test_progress_follows_another_reviewers_bulk_action_outside_the_window(scored, monkeypatch):
    from ui import queue

    monkeypatch.setattr(queue, "WINDOW", 3)
    ana = review_as("ana")
    ws = app_ws(scored["path"])
    ds_id = ws.get_dataset("small").id
    t_keep = ana.session_state["t_keep"]
    kept = ws.review_rows(ds_id, scored["run_id"], band="keep", t_drop=t_keep, t_keep=t_keep).tolist()
    ws.record_decisions(ds_id, kept, "keep", "bob")  # none of them is in ana's window of flagged rows
    ana.run()
    assert f"{len(kept):,} rows decided in all" in progress_text(ana)


def test_the_band_chip_says_who_decided_the_row(scored):
    ana = review_as("ana")
    ana.toggle(key="f_undecided").set_value(False).run()
    row = shown_row(ana)
    ana.button(key="act_keep").click().run()
    ana.button(key="act_prev").click().run()
    assert shown_row(ana) == row
    head = next(m.value for m in ana.markdown if f"<b>Row {row}</b>" in m.value)
    assert "Kept by ana</span>" in head and ">Drop</span>" not in head and ">Review</span>" not in head


def test_team_page_shows_progress_per_reviewer_and_settles_a_disagreement(scored):
    ws = app_ws(scored["path"])
    ds_id = ws.get_dataset("small").id
    ws.record_decisions(ds_id, [3, 4], "keep", "ana")
    ws.record_decisions(ds_id, [3], "edit", "bob", new_text="bob's <b>fix</b>")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.sidebar.text_input(key="reviewer").set_value("cat").run()
    at.switch_page("app_pages/team.py").run()
    assert not at.exception and [t.value for t in at.title] == ["Team"]
    table = at.dataframe[0].value.set_index("Reviewer")
    assert table.loc["ana", "Rows decided"] == 2 and table.loc["ana", "Standing now"] == 1
    assert table.loc["bob", "Edited"] == 1
    page = "\n".join(m.value for m in at.markdown)
    assert "**Row 3**" in page and "**Row 4**" not in page  # only row 3 is disputed
    at.button(key="settle_3_1").click().run()  # take bob's edit
    assert ws.row_state(ds_id, 3) == {"action": "edit", "text": "bob's <b>fix</b>", "reviewer": "cat"}
    assert bool(ws.decision_log(ds_id)["settles"].iloc[-1])
    assert ws.disagreements(ds_id).empty and any("No disagreements" in m.value for m in at.success)
