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


@dataclass
class Job:
    kind: str                      # "score" | "correct"
    dataset: str
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    phase: str = "loading model"   # "loading model" | "running" | "done" | "stopped" | "failed"
    progress: object = None        # the latest clear_core Progress(done, total, rows_per_s, eta_s)
    run_id: int | None = None
    message: str = ""
    details: str = ""
    started: float = field(default_factory=time.time)

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def on_progress(self, progress) -> None:
        self.phase, self.progress = "running", progress
        if getattr(progress, "run_id", None) is not None:
            self.run_id = progress.run_id


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
        job.phase, job.message = "stopped", str(exc) or "stopped; Resume goes on from the last committed batch"
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
