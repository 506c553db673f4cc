"""AppTest of the Data page while a job runs: a bad upload or a taken dataset name is an error in place, and the
running job's progress and Stop button stay; a taken name is resolved in the page (replace, or another name)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_helpers import close_app_workspace  # noqa: E402
from bench.ui_latency import make_dataset  # noqa: E402
from clear_core.errors import Cancelled  # noqa: E402
from clear_core.runs import Progress  # noqa: E402
from clear_core.store import Workspace  # noqa: E402

GOOD = (b'{"instruction": "Say hi", "input": "", "output": "hi"}\n'
        b'{"instruction": "Say yo", "input": "", "output": "yo"}\n')


@pytest.fixture
def running(tmp_path, monkeypatch):
    """A workspace with dataset "small" and a fake long scoring job on it that runs until Stop is pressed."""
    from ui import jobs

    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, "small", 10)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    started = threading.Event()

    def work(job):
        job.on_progress(Progress(done=3, total=10, rows_per_s=1.5, eta_s=5.0))
        started.set()
        job.cancel.wait(120)
        raise Cancelled("stopped at 3 of 10 rows")

    job = jobs.start(path, "score", "small", work)
    assert started.wait(30)
    yield {"path": path, "job": job}
    close_app_workspace(path)


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def assert_job_shown(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="stop_job").label == "Stop"
    assert "3 / 10 rows" in at.get("progress")[0].proto.text


def upload(at, name: str, data: bytes):
    return at.file_uploader(key="upload").set_value((name, data, "application/json")).run()


def test_an_upload_with_no_good_row_keeps_the_running_job(running):
    at = app().run()
    assert_job_shown(at)
    at = upload(at, "broken.jsonl", b'{"instruction": "x", \n[1, 2]\nnot json\n')
    assert_job_shown(at)
    assert any("3 bad row(s) in broken.jsonl" in e.value for e in at.error), [e.value for e in at.error]
    assert at.dataframe[0].value["line"].tolist() == [1, 2, 3]
    at.button(key="stop_job").click().run()
    assert running["job"].cancel.is_set()


def test_a_taken_name_offers_another_name_in_the_page(running):
    from ui import state

    at = upload(app().run(), "small.jsonl", GOOD)
    assert at.text_input(key="name_small.jsonl").value == "small"
    at = at.button(key="import").click().run()
    assert_job_shown(at)
    shown = " ".join(e.value for e in at.error)
    assert "already exists" in shown and "--replace" not in shown and "--name" not in shown, shown
    assert "<code>" not in shown  # an alert shows no HTML
    assert at.button(key="replace_dataset").disabled  # the running job scores that dataset
    rename = at.text_input(key="rename_small.jsonl_small")
    assert rename.label == "Import under another name" and rename.value == "small-2"
    at = at.button(key="import_renamed").click().run()
    assert_job_shown(at)
    assert state.workspace(running["path"]).get_dataset("small-2").n_rows == 2
    assert state.workspace(running["path"]).get_dataset("small").n_rows == 10  # untouched
    assert at.session_state["dataset"] == "small-2" and not at.error


def test_a_taken_name_can_be_replaced_in_the_page(running):
    from ui import jobs, state

    ws = state.workspace(running["path"])
    make_dataset(ws, "other", 5)  # a second dataset, not the one the job scores
    at = upload(app().run(), "other.jsonl", GOOD)
    at = at.button(key="import").click().run()
    assert_job_shown(at)
    assert not at.button(key="replace_dataset").disabled
    at = at.button(key="replace_dataset").click().run()
    assert_job_shown(at)
    assert ws.get_dataset("other").n_rows == 2 and not at.error
    assert jobs.current(running["path"]).alive
