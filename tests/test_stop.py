"""Stop stops in every stage, and a stopped run resumes to the scores of an uninterrupted one: the rows and context
stages (between batches), the dataset stage (between its signals), its label-free calibration (between batches of
synthetic rows) and a correction run. Progress in every stage: done / total, a smoothed rate, the time left; the
calibration sized to the dataset; the app's "stopping…" until the run has stopped."""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clear_core import calibrate, correct, pipeline, runs
from clear_core.config import CorrectConfig, preset_config
from clear_core.correct.run import CALIBRATE
from clear_core.errors import Cancelled
from clear_core.runs import Meter, Progress

ROOT = Path(__file__).resolve().parents[1]
CONFIG = preset_config("fast", batch_size=8)
CTX_SIGNALS = ("likelihood", "likelihood_ctx", "neighbors")
CTX_CONFIG = preset_config("fast", batch_size=8, signals=CTX_SIGNALS, weights={s: 1.0 for s in CTX_SIGNALS})
STOP_WITHIN_S = 5.0


def _stop_when(stage: str, after: int = 0):
    """A progress callback that sets the stop event at the first report of `stage` with `after` units done, and
    the moment it did."""
    cancel, clicked, seen = threading.Event(), [], []

    def progress(p: Progress) -> None:
        seen.append(p)
        if p.stage == stage and p.done >= after and not cancel.is_set():
            cancel.set()
            clicked.append(time.perf_counter())

    return cancel, clicked, seen, progress


@pytest.mark.parametrize("stage, after, config", [
    ("calibration", 8, CONFIG),  # inside calibration, between two batches of synthetic rows
    ("dataset", 0, CONFIG),      # at the start of the dataset stage: before its first signal is fitted
    ("dataset", 2, CONFIG),      # between two dataset signals
    ("context", 8, CTX_CONFIG),  # between two batches of the in-context pass
])
def test_stop_in_a_stage_then_resume_equals_uninterrupted(small_workspace, tiny_backend, stage, after, config):
    ws = small_workspace
    full = pipeline.run_scoring(ws, "small", config, backend=tiny_backend)
    cancel, clicked, seen, progress = _stop_when(stage, after)
    with pytest.raises(Cancelled) as stopped:
        pipeline.run_scoring(ws, "small", config, backend=tiny_backend, progress=progress, cancel=cancel)
    took = time.perf_counter() - clicked[0]
    assert took < STOP_WITHIN_S, f"stopped {took:.1f} s after the click in {stage}"
    run = ws.latest_run(ws.get_dataset("small").id)
    assert run.status == "stopped" and run.message == "stopped by the user"
    assert f"clear-studio resume {run.id}" in str(stopped.value)
    assert seen[-1].stage == stage  # nothing of a later stage was started after the click
    assert len(ws.scores_wide(run.id, ["confidence"]).dropna()) == 0  # the dataset stage committed nothing
    kept = ws.scores_wide(run.id, ["likelihood"])
    if stage != "context":  # every row signal committed before the stop is kept
        assert len(kept) == 48

    pipeline.resume(ws, run.id, backend=tiny_backend)
    done = ws.get_run(run.id)
    assert done.status == "done" and done.n_done == 48
    pd.testing.assert_frame_equal(ws.scores_wide(full), ws.scores_wide(run.id), atol=1e-5, rtol=1e-5)
    assert done.weights == pytest.approx(ws.get_run(full).weights, abs=1e-6)


@pytest.mark.parametrize("stage", [CALIBRATE, correct.PROPOSE])  # the acceptance rule's synthetic rows, the fixes
def test_stop_in_a_correction_run_then_resume_equals_uninterrupted(small_workspace, tiny_backend, stage):
    ws = small_workspace
    score_run = pipeline.run_scoring(ws, "small", preset_config("fast", batch_size=16), backend=tiny_backend)
    cfg = CorrectConfig(batch_size=4, max_new_tokens=4)
    full = correct.run_correction(ws, "small", cfg, score_run=score_run, backend=tiny_backend)
    cancel, clicked, seen, progress = _stop_when(stage, after=4)
    with pytest.raises(Cancelled):
        correct.run_correction(ws, "small", cfg, score_run=score_run, backend=tiny_backend, progress=progress,
                               cancel=cancel)
    assert time.perf_counter() - clicked[0] < STOP_WITHIN_S
    run = ws.latest_run(ws.get_dataset("small").id, kind="correct")
    assert run.status == "stopped" and seen[-1].stage == stage
    if stage == correct.PROPOSE:
        assert len(ws.done_rows(run.id, correct.PROPOSE)) == 4 < run.n_total
        assert seen[-1].label == "proposing fixes" and seen[-1].text().startswith("proposing fixes · 4 / ")
    else:  # nothing proposed yet, and no rule stored: resume fits it again
        assert len(ws.done_rows(run.id, correct.PROPOSE)) == 0 and "acceptance" not in ws.get_run(run.id).config
    runs.resume(ws, run.id, backend=tiny_backend)
    assert ws.get_run(run.id).status == "done"
    cols = ["row_idx", "candidate", "judge_conf", "confident"]
    a = ws.proposals(full)[cols].sort_values("row_idx", ignore_index=True)
    b = ws.proposals(run.id)[cols].sort_values("row_idx", ignore_index=True)
    pd.testing.assert_frame_equal(a, b, atol=1e-5, rtol=1e-5)


def test_every_stage_reports_its_own_progress(small_workspace, tiny_backend):
    seen = []
    pipeline.run_scoring(small_workspace, "small", CONFIG, backend=tiny_backend, progress=seen.append)
    for stage, unit in (("rows", "rows"), ("dataset", "steps"), ("calibration", "synthetic rows")):
        mine = [p for p in seen if p.stage == stage]
        assert mine and {p.unit for p in mine} == {unit} and all(p.label for p in mine), stage
        assert mine[-1].done == mine[-1].total and [p.done for p in mine] == sorted(p.done for p in mine)
        assert mine[-1].rows_per_s > 0 and all(p.at > 0 for p in mine)
    cal = [p for p in seen if p.stage == "calibration"]
    # The label says what calibration costs: how many synthetic rows, made from how many of the dataset's rows.
    n = cal[0].total
    assert cal[0].label == (f"calibration: {n} synthetic rows (made from 48 of the 48 rows; each scored like a "
                            "dataset row)")
    middle = next(p for p in cal if 0 < p.done < p.total)  # a rate and a time left while it goes on
    assert middle.eta_s == pytest.approx((n - middle.done) / middle.rows_per_s)
    assert f"{middle.done} / {n} synthetic rows" in middle.text() and " left" in middle.text()
    steps = [p.label for p in seen if p.stage == "dataset"]
    assert any("fitting neighbors over 48 rows" in label for label in steps) and steps[-1] == "dataset: done"


def test_the_rate_is_a_moving_average_and_the_time_left_counts_down():
    now, sent = [0.0], []
    meter = Meter(sent.append, 1, "rows", 100, clock=lambda: now[0])
    for step_s in (1.0, 1.0, 1.0, 3.0):  # 10 rows a step: 10 rows/s three times, then one slow step
        now[0] += step_s
        meter.add(10)
    rates = [p.rows_per_s for p in sent[1:]]
    assert rates[:3] == pytest.approx([10.0, 10.0, 10.0])
    # The slow step moves the rate by SMOOTHING of the way (a cumulative mean would say 40 / 6 = 6.67).
    assert rates[3] == pytest.approx(runs.SMOOTHING * 10 / 3 + (1 - runs.SMOOTHING) * 10)
    last = sent[-1]
    assert last.eta_s == pytest.approx(60 / rates[3])
    assert last.eta_now(last.at + 2.0) == pytest.approx(last.eta_s - 2.0)  # counted down between two reports
    assert last.eta_now(last.at + 1e6) == 0.0
    assert Progress(3, 10, 1.5, 5.0).eta_now() == 5.0  # made by hand (no `at`): its eta as given


@pytest.mark.parametrize("n_rows, sampled", [(10, 10), (48, 48), (100, 50), (300, 150), (400, 200), (5000, 200)])
def test_calibration_is_sized_to_the_dataset(n_rows, sampled):
    assert calibrate.SYNTHETIC_SIZE.sampled(n_rows) == sampled


def test_a_small_dataset_scores_fewer_synthetic_rows_than_it_has(tmp_path, tiny_backend):
    """120 rows: calibration used to sample every one of them (about 2.4 synthetic rows each, ~290 in all)."""
    from conftest import _ingest, write_rows

    ws = _ingest(tmp_path / "ws.duckdb", write_rows(tmp_path / "m.jsonl", n=120, seed=3), "m")
    try:
        seen = []
        pipeline.run_scoring(ws, "m", preset_config("fast", batch_size=16), backend=tiny_backend,
                             progress=seen.append)
        cal = [p for p in seen if p.stage == "calibration"]
        assert "made from 60 of the 120 rows" in cal[0].label and cal[0].total < 120 * 1.5
    finally:
        ws.close()


# ------------------------------------------------------------------------------------------------ the app
@pytest.fixture
def held_job(tmp_path, monkeypatch):
    """A job that reports progress, and once Stop is clicked goes on until `release` is set (a batch in flight),
    then stops like a run does."""
    from bench.ui_latency import make_dataset
    from clear_core.store import Workspace
    from ui import jobs

    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, "small", 10)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    started, release = threading.Event(), threading.Event()

    def work(job):
        job.on_progress(Progress(done=40, total=120, rows_per_s=8.0, eta_s=10.0, stage="calibration",
                                 label="calibration: 120 synthetic rows", unit="synthetic rows", at=time.time(),
                                 run_id=7))
        started.set()
        job.cancel.wait(120)
        release.wait(120)
        raise Cancelled("run 7 stopped in calibration; `clear-studio resume 7` goes on from there")

    job = jobs.start(path, "score", "small", work)
    assert started.wait(30)
    yield {"path": path, "job": job, "release": release}
    release.set()
    from app_helpers import close_app_workspace

    close_app_workspace(path)


def test_the_app_says_stopping_from_the_click_until_the_run_has_stopped(held_job):
    from streamlit.testing.v1 import AppTest

    from ui import jobs

    job = held_job["job"]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/data.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "calibration: 120 synthetic rows · 40 / 120 synthetic rows · 8.0 synthetic rows/s" in \
        at.get("progress")[0].proto.text
    at.button(key="stop_job").click().run()
    assert job.alive and job.phase == jobs.STOPPING
    shown = " ".join(m.value for m in at.markdown)
    assert "· stopping…" in shown, shown
    held_job["release"].set()
    assert jobs.wait(job, 30) and job.phase == "stopped"
    at.run()
    info = html.unescape(" ".join(i.value for i in at.info))  # shown literally: escaped for Markdown
    assert "Stopped: run 7 stopped in calibration" in info and "goes on from its last committed batch" in info
    assert "stopping" not in " ".join(m.value for m in at.markdown)


def test_the_sidebar_shows_the_running_stage_and_its_progress(held_job):
    from ui import jobs

    job = held_job["job"]

    class Run:  # the job's run, as the store has it: its count is of the last committed stage
        id, status, n_done, n_total, stage = 7, "running", 0, 400, "rows"

    line = jobs.run_status(held_job["path"], Run())
    assert line.startswith(":blue[running] · calibration: 120 synthetic rows · 40 / 120 synthetic rows")
    assert "0 / 400" not in line and " left" in line
    job.stop()
    assert jobs.run_status(held_job["path"], Run()).startswith(":blue[stopping…] · calibration")
    job.run_id = None  # another run: its stored status
    assert jobs.run_status(held_job["path"], Run()) == ":blue[running] · 0 / 400 rows · stage rows"


def _running_run_with_some_rows(path: str) -> dict:
    """Dataset "small" (10 rows) and a scoring run, running, with the rows stage committed for rows 0-5 only (the
    last stage not begun: no confidence), as the store has it while the run goes on."""
    from bench.ui_latency import make_dataset
    from clear_core.store import Workspace

    values = {r: {"likelihood": 0.1 * (r + 1), "reflection": 0.9} for r in range(6)}  # row 0 the lowest
    with Workspace.open(path) as ws:
        info = make_dataset(ws, "small", 10)
        run_id = ws.create_run(info.id, "score", preset_config("fast", model="tiny").to_json(), 10)
        ws.update_run(run_id, status="running")
        frame = pd.DataFrame([(r, s, v, v) for r, vs in values.items() for s, v in vs.items()],
                             columns=["row_idx", "signal", "value", "raw"])
        ws.commit_batch(run_id, "rows", list(values), scores=frame)
        prompts = ws.examples(info.id)["prompt_text"].tolist()
    return {"run_id": run_id, "values": values, "prompts": prompts}


@pytest.mark.parametrize("page", ["explore", "review"])
def test_explore_and_review_show_the_rows_committed_so_far_as_provisional(tmp_path, monkeypatch, page):
    from streamlit.testing.v1 import AppTest

    from app_helpers import close_app_workspace

    path = str(tmp_path / "ws.duckdb")
    made = _running_run_with_some_rows(path)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        banner = " ".join(i.value for i in at.info)
        assert "Provisional (uncalibrated)" in banner and "6 of 10 rows have row signals so far" in banner, banner
        shown = at.dataframe[0].value
        assert shown["row_idx"].tolist() == [0, 1, 2, 3, 4, 5]  # the lowest provisional value first
        expect = [np.mean(list(made["values"][r].values())) for r in range(6)]
        np.testing.assert_allclose(shown["provisional"], expect)
        np.testing.assert_allclose(shown["likelihood"], [made["values"][r]["likelihood"] for r in range(6)])
        assert shown["prompt_text"].tolist() == made["prompts"][:6]
        assert "confidence" not in shown.columns
    finally:
        close_app_workspace(path)


def test_the_provisional_query_pages_and_counts(tmp_path):
    from clear_core.store import Workspace
    from clear_core.store.partial import provisional_rows

    path = str(tmp_path / "ws.duckdb")
    made = _running_run_with_some_rows(path)
    with Workspace.open(path) as ws:
        page, total = provisional_rows(ws, made["run_id"], limit=2, offset=3)
        assert total == 6 and page["row_idx"].tolist() == [3, 4]
        past, total = provisional_rows(ws, made["run_id"], limit=2, offset=10)
        assert past.empty and total == 6
