"""The whole path in AppTest: load the sample data -> score with the tiny model -> move a threshold -> Auto-Correct
-> accept a proposal -> drop a row -> edit a row -> undo the edit -> export, then check the exported file."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_helpers import close_app_workspace, shown_row  # noqa: E402

SAMPLE = ROOT / "sample_data" / "demo.jsonl"
N_SCORED = 24

pytestmark = pytest.mark.skipif(not SAMPLE.exists(), reason="sample_data/demo.jsonl has not been generated")


def page(at: AppTest, path: str) -> AppTest:
    at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def finish_job(at: AppTest, ws_path: str, timeout: float = 420) -> None:
    """Wait for the app's background run, then rerun the page as the live fragment would."""
    from ui import jobs

    job = jobs.current(ws_path)
    assert job is not None
    assert jobs.wait(job, timeout), f"the {job.kind} run did not finish in {timeout} s"
    assert job.phase == "done", (job.phase, job.message, job.details)
    at.run()
    at.run()
    assert not at.exception


def test_load_score_review_export(tmp_path, monkeypatch, tiny_model_dir):
    from ui import state

    ws_path = str(tmp_path / "ws.duckdb")
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", ws_path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    try:
        # 1. the empty workspace offers the sample data
        at.button(key="load_sample").click().run()
        assert not at.exception
        assert at.sidebar.selectbox(key="dataset").value == "demo"
        ws = state.workspace(ws_path)
        demo = ws.get_dataset("demo")
        assert demo.n_rows == sum(1 for line in SAMPLE.open() if line.strip())

        # 2. score the first rows with the tiny model, in the app's background thread
        at.selectbox(key="model_pick").set_value("custom").run()
        at.text_input(key="model_custom").set_value(str(tiny_model_dir)).run()
        at.number_input(key="score_limit").set_value(N_SCORED).run()
        at.button(key="start_scoring").click().run()
        finish_job(at, ws_path)
        run = ws.latest_run(demo.id, "score")
        assert (run.status, run.n_total) == ("done", N_SCORED)
        assert at.sidebar.selectbox(key="run_id").value == run.id

        # 3. move the thresholds on Explore: the counts follow
        page(at, "app_pages/explore.py")
        conf = ws.scores_wide(run.id, ["confidence"]).set_index("row_idx")["confidence"]
        t_drop = float(conf.quantile(0.2))
        at.slider(key="w_t_drop").set_value(t_drop).run()
        kept = int(next(m for m in at.metric if "Kept" in m.label).value)
        dropped = int(next(m for m in at.metric if "Dropped" in m.label).value)
        assert dropped == int((conf < t_drop).sum()) and kept == int((conf >= at.session_state["t_keep"]).sum())

        # 4. Auto-Correct the flagged rows
        page(at, "app_pages/data.py")
        at.button(key="start_correct").click().run()
        finish_job(at, ws_path)
        assert ws.latest_run(demo.id, "correct").status == "done"

        # 5. review: accept a proposal, drop a row, edit a row and undo the edit
        at.sidebar.text_input(key="reviewer").set_value("flow").run()
        page(at, "app_pages/review.py")
        at.selectbox(key="f_prop").set_value("yes").run()
        accepted = shown_row(at)
        proposal = ws.review_queue(demo.id, run.id, band="all", has_proposal=True, limit=1000) \
            .set_index("row_idx").loc[accepted, "proposal"]
        at.button(key="act_accept").click().run()
        at.selectbox(key="f_prop").set_value("any").run()
        dropped_row = shown_row(at)
        assert dropped_row != accepted
        at.button(key="act_drop").click().run()
        edited = shown_row(at)
        at.button(key="act_edit").click().run()
        at.text_area(key=f"edit_{edited}").set_value("EDITED-AND-UNDONE").run()
        at.button(key="save_edit").click().run()
        assert ws.current_decisions(demo.id).set_index("row_idx").loc[edited, "text"] == "EDITED-AND-UNDONE"
        at.button(key="act_undo").click().run()
        assert not at.exception
        decided = ws.current_decisions(demo.id).set_index("row_idx")
        assert edited not in decided.index
        assert decided.loc[accepted, "action"] == "accept" and decided.loc[dropped_row, "action"] == "drop"

        # 6. export the curated rows as JSONL into the export folder, under a name of one's own
        page(at, "app_pages/export.py")
        at.radio(key="x_fmt").set_value("jsonl").run()
        out = tmp_path / "exports" / "curated.jsonl"
        field = next(t for t in at.text_input if t.key and t.key.startswith("x_path_"))
        field.set_value(out.name).run()
        at.button(key="x_write").click().run()
        assert not at.exception and not at.error
        preview = int(next(m for m in at.metric if m.label == "Rows in the file").value.replace(",", ""))
    finally:
        close_app_workspace(ws_path)

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_id = {r["id"]: r for r in rows}
    examples = {int(r.row_idx): r.row_id for r in ws_examples(ws_path).itertuples()}
    assert by_id[examples[accepted]]["output"] == proposal          # the accepted text is in the file
    assert examples[dropped_row] not in by_id                       # the dropped row is not
    assert "EDITED-AND-UNDONE" not in out.read_text()               # the undone edit is not
    below = {examples[int(r)] for r, c in zip(conf.index, conf) if c < t_drop} - {examples[accepted]}
    assert below and not (below & set(by_id))                       # undecided rows under t_drop are left out
    assert len(rows) == preview                                     # the page's preview counted right
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert manifest["counts"]["dropped_by_decision"] == 1


def ws_examples(ws_path: str):
    from clear_core.store import Workspace

    with Workspace.open(ws_path, read_only=True) as ws:
        return ws.examples(ws.get_dataset("demo").id)


def test_stop_and_resume_a_run(tmp_path, monkeypatch, tiny_model_dir):
    """Stop, from the progress panel, keeps what was committed; Resume finishes the same run."""
    from clear_core import scoring
    from ui import jobs, state

    # The tiny model scores 64 rows faster than a click comes through: the second batch waits until Stop has been
    # clicked, so the Stop lands while the run is going on, with the first batch committed.
    real_score_batch = scoring.score_batch
    first_committed, stop_clicked, calls = threading.Event(), threading.Event(), []

    def gated_score_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # batch 1 is committed once batch 2 starts
            first_committed.set()
            assert stop_clicked.wait(120), "Stop was never clicked"
        return real_score_batch(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_batch", gated_score_batch)
    ws_path = str(tmp_path / "ws.duckdb")
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", ws_path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    try:
        at.button(key="load_sample").click().run()
        at.selectbox(key="model_pick").set_value("custom").run()
        at.text_input(key="model_custom").set_value(str(tiny_model_dir)).run()
        at.number_input(key="score_limit").set_value(64).run()
        at.button(key="start_scoring").click().run()
        job = jobs.current(ws_path)
        assert first_committed.wait(120), (job.phase, job.message)
        at.run()
        at.button(key="stop_job").click().run()
        stop_clicked.set()
        assert jobs.wait(job, 120) and job.phase == "stopped", (job.phase, job.message)
        at.run()
        ws = state.workspace(ws_path)
        run = ws.get_run(job.run_id)
        assert run.status == "stopped" and 0 < run.n_done < 64
        at.button(key=f"resume_{run.id}").click().run()
        finish_job(at, ws_path)
        assert ws.get_run(run.id).status == "done"
        assert len(ws.scores_wide(run.id, ["confidence"]).dropna()) == 64
    finally:
        close_app_workspace(ws_path)


def test_serve_loads_the_sample_once_and_runs_the_app(tmp_path, monkeypatch):
    from clear_core import cli
    from clear_core.commands import serve
    from clear_core.store import Workspace

    ws_path = str(tmp_path / "ws.duckdb")
    calls = []

    class Server:  # stands in for the streamlit process
        def __init__(self, cmd, env, cwd):
            calls.append((cmd, env, cwd))

        def wait(self):
            return 0

    monkeypatch.setattr(serve.subprocess, "Popen", Server)
    assert cli.main(["app", "--workspace", ws_path, "--with-sample", "--port", "8599"]) == 0
    assert cli.main(["app", "--workspace", ws_path, "--with-sample", "--port", "8599"]) == 0
    with Workspace.open(ws_path, read_only=True) as ws:  # closed again before the app starts: not locked
        assert [d.name for d in ws.list_datasets()] == ["demo"]
    cmd, env, cwd = calls[-1]
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert str(ROOT / "app.py") in cmd and cmd[cmd.index("--server.port") + 1] == "8599"
    assert env["CLEAR_STUDIO_WORKSPACE"] == ws_path and Path(cwd) == ROOT
