"""Runs that go on in a background thread of the app's process: scoring, its resume, and Auto-Correct.

The run itself (status, batches, stop, progress, resume of any kind) is `clear_core.runs`, as in the CLI; this
module only gives it a thread and keeps its latest progress for the page.

One job per workspace at a time (DuckDB has one writer). The registry is a cached resource, so every browser
session of this process sees the same job and its progress; the thread writes through the shared Workspace,
whose `cursor()` gives it its own cursor.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import streamlit as st

from clear_core.errors import Cancelled, ClearError


STOPPING = "stopping…"


@dataclass
class Job:
    kind: str                      # "score" | "correct"
    dataset: str
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    state: str = "loading model"   # "loading model" | "running" | "done" | "stopped" | "failed"
    progress: object = None        # the latest clear_core Progress (done, total, rate, time left, stage, label)
    run_id: int | None = None
    message: str = ""
    details: str = ""
    started: float = field(default_factory=time.time)

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def phase(self) -> str:
        """What the page shows: the state, or "stopping…" from the Stop click until the run has stopped (the
        run finishes its batch in flight first, and the thread ends after it has marked the run)."""
        if self.cancel.is_set() and self.state in ("loading model", "running"):
            return STOPPING
        return self.state

    @phase.setter
    def phase(self, value: str) -> None:
        self.state = value

    def stop(self) -> None:
        """The Stop button: the run stops at its next check (between batches, signals or synthetic rows)."""
        self.cancel.set()

    def on_progress(self, progress) -> None:
        self.state, self.progress = "running", progress
        if getattr(progress, "run_id", None) is not None:
            self.run_id = progress.run_id

    def progress_text(self) -> str:
        """The current stage and its own progress ("calibration: ... · 40 / 120 synthetic rows · 12.5 synthetic
        rows/s · 6 s left"), the time left counted down since the last report; the phase before any report."""
        text = getattr(self.progress, "text", None)
        return text() if callable(text) else self.phase


@st.cache_resource
def _registry() -> dict:
    return {"lock": threading.Lock(), "jobs": {}}


def current(ws_path: str) -> Job | None:
    """The latest job of this workspace (running or finished), or None."""
    return _registry()["jobs"].get(ws_path)


def start(ws_path: str, kind: str, dataset: str, work: Callable[[Job], int | None]) -> Job:
    """Run `work(job)` in a daemon thread; it returns the run id. Refuses while another job of the workspace runs."""
    reg = _registry()
    with reg["lock"]:
        running = reg["jobs"].get(ws_path)
        if running is not None and running.alive:
            raise ClearError(f"a {running.kind} run on '{running.dataset}' is still going; stop it or wait for it")
        job = Job(kind=kind, dataset=dataset)
        job.thread = threading.Thread(target=_main, args=(job, work), name=f"clear-{kind}-{dataset}", daemon=True)
        reg["jobs"][ws_path] = job
        job.thread.start()
    return job


def _main(job: Job, work: Callable[[Job], int | None]) -> None:
    try:
        run_id = work(job)
        job.run_id = run_id if run_id is not None else job.run_id
        job.phase, job.message = "done", "finished"
    except Cancelled as exc:
        job.phase = "stopped"
        job.message = (f"Stopped: {exc}." if str(exc) else "Stopped.") + (
            f" Here, “Resume run #{job.run_id}” goes on from its last committed batch: nothing committed is lost."
            if job.run_id is not None else " Nothing committed is lost.")
    except ClearError as exc:
        job.phase, job.message = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - shown in the app with its details folded
        job.phase, job.message = "failed", f"{type(exc).__name__}: {exc}"
        job.details = traceback.format_exc()


def wait(job: Job, timeout: float) -> bool:
    """Block until the job's thread ends (tests and scripts); True when it ended within `timeout` seconds."""
    if job.thread is not None:
        job.thread.join(timeout)
    return not job.alive


# --------------------------------------------------------------------------------------------- the runs
def start_scoring(ws_path: str, dataset: str, config) -> Job:
    """A new scoring run of `dataset` with a ScoreConfig."""
    def work(job: Job):
        from clear_core import pipeline

        from . import state

        model = state.backend(config.model)
        return pipeline.run_scoring(state.workspace(ws_path), dataset, config, backend=model,
                                    progress=job.on_progress, cancel=job.cancel)

    return start(ws_path, "score", dataset, work)


def resume(ws_path: str, dataset: str, run) -> Job:
    """Go on with a stopped, failed or interrupted run (scoring or correction) from its last committed batch."""
    def work(job: Job):
        from clear_core import runs

        from . import state

        ws = state.workspace(ws_path)
        job.run_id = run.id
        model = state.backend(runs.model_spec(ws, run))  # cached: the model of the app's last run is reused
        return runs.resume(ws, run.id, backend=model, progress=job.on_progress, cancel=job.cancel)

    return start(ws_path, run.kind, dataset, work)


def start_correction(ws_path: str, dataset: str, score_run, thresholds) -> Job:
    """An Auto-Correct run over the rows of `score_run` below t_keep, judged with eta = thresholds.eta."""
    def work(job: Job):
        from clear_core import correct, runs
        from clear_core.config import CorrectConfig

        from . import state

        model = state.backend(runs.model_spec(state.workspace(ws_path), score_run))
        return correct.run_correction(state.workspace(ws_path), dataset, CorrectConfig(eta=thresholds.eta),
                                      score_run=score_run.id, thresholds=thresholds, backend=model,
                                      progress=job.on_progress, cancel=job.cancel)

    return start(ws_path, "correct", dataset, work)


# --------------------------------------------------------------------------------------------- the sidebar's line
def run_status(ws_path: str, run) -> str:
    """The sidebar's status line of a scoring run: while this process's job runs it, the job's phase ("stopping…"
    after a Stop) with the current stage's own progress; else the stored status and rows done."""
    job = current(ws_path)
    if job is not None and job.alive and job.run_id == run.id:
        return f":blue[{job.phase}] · {job.progress_text()}"  # no stored text in it: labels are the stages' own
    color = {"done": "green", "running": "blue", "stopped": "orange"}.get(run.status, "red")
    return (f":{color}[{run.status}] · {run.n_done:,} / {run.n_total:,} rows"
            + (f" · stage {run.stage}" if run.status != "done" and run.stage else ""))


def show_run_status(ws_path: str, run_id: int) -> None:
    """The status line, redrawn every second while a job of this process runs the run; the whole page once more
    when the job has ended, so that it shows the finished (or stopped) run."""
    job = current(ws_path)
    live = job is not None and job.alive and job.run_id == run_id

    @st.fragment(run_every=1 if live else None)
    def line() -> None:
        from . import state

        st.caption(run_status(ws_path, state.workspace(ws_path).get_run(run_id)))
        if live and not job.alive:
            st.rerun(scope="app")

    line()
