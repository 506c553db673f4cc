"""The run lifecycle, one for every kind of run: scoring (`pipeline`) and correction (`correct.run`), driven from
the CLI or from the app's background thread (ui/jobs.py).

A run is a row of the workspace's `runs` table: a kind, its settings, a status, and stages whose rows are committed
batch by batch (`row_status`, the resume point). This module owns what every kind shares:
* `execute(ws, run_id, kind, work)`: the run is marked running while `work(run)` goes on, then done; stopped on the
  cancel event or Ctrl-C, failed on any other error (with its message). A finished run returns at once.
* `run_batches`: a stage's pending rows in batches; each batch's results committed in ONE transaction, the cancel
  event checked between batches, `Progress` reported after every commit.
* `resume(ws, run_id)`: goes on with a run of any kind from its last committed batch.
* A process killed outright cannot mark its run: the store reads such a run back as `interrupted` (the reasoning
  is in clear_core/store/runs.py), and `resume_command` is what a user types to go on.
"""

from __future__ import annotations

import importlib
import shlex
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import Cancelled, ClearError

# The module of each kind's runs; each has resume(ws, run_id, backend=None, progress=None, cancel=None) -> run_id.
RUNNERS = {"score": "clear_core.pipeline", "correct": "clear_core.correct.run"}
UNFINISHED = ("running", "interrupted", "stopped", "failed")  # statuses `resume` goes on from


@dataclass(frozen=True)
class Progress:
    """What a progress callback receives after every committed batch (and once at the start of a stage)."""

    done: int  # rows committed for this stage, including those of earlier sessions of the run
    total: int
    rows_per_s: float  # over this session's rows
    eta_s: float | None
    stage: str = "rows"
    run_id: int | None = None


ProgressFn = Callable[[Progress], None]


def resume(ws, run_id: int, backend=None, progress: ProgressFn | None = None, cancel=None) -> int:
    """Go on with a run of any kind from where it stopped, failed or was killed; returns its run id.

    backend: the model (default: loaded from the run's settings); cancel: a threading.Event checked between batches.
    """
    run = ws.get_run(run_id)
    runner = importlib.import_module(RUNNERS[run.kind])
    return runner.resume(ws, run.id, backend=backend, progress=progress, cancel=cancel)


def execute(ws, run_id: int, kind: str, work: Callable[[object], None]) -> int:
    """Run `work(run)` (the kind's stages, given the RunInfo) under `tracked_run`; returns the run id.

    Refuses a run of another kind; a run that is done already is left as it is.
    """
    run = ws.get_run(run_id)
    if run.kind != kind:
        raise ClearError(f"run {run_id} is a {run.kind} run, not a {kind} run; clear_core.runs.resume goes on with "
                         "a run of any kind")
    if run.status == "done":
        return run_id
    with tracked_run(ws, run_id):
        work(run)
    return run_id


@contextmanager
def tracked_run(ws, run_id: int):
    """Mark a run running for the block, then done; stopped on Cancelled / Ctrl-C, failed on any other error."""
    ws.update_run(run_id, status="running", message="")
    try:
        yield
    except (Cancelled, KeyboardInterrupt):
        ws.update_run(run_id, status="stopped", message="stopped by the user")
        raise
    except Exception as exc:
        ws.update_run(run_id, status="failed", message=f"{type(exc).__name__}: {exc}")
        raise
    ws.update_run(run_id, status="done", message="")


def run_batches(ws, run_id: int, stage: str, total: int, compute: Callable, batch_size: int,
                progress: ProgressFn | None = None, cancel=None, rows=None) -> None:
    """Run `compute(row_idx: ndarray) -> dict of commit_batch keywords` over a stage's pending rows.

    `rows` is the run's row set when it is not 0 .. total - 1 (a correction run's flagged rows). Each batch is
    committed in one transaction; `cancel` is checked before each batch (raises Cancelled). `compute` must record a
    failing row in the returned `errors` ({row_idx: message}) rather than raise.
    """
    pending = np.asarray(ws.pending_rows(run_id, stage, rows=rows), dtype=np.int64)
    done0 = total - len(pending)
    t0, done_here = time.perf_counter(), 0
    report(progress, run_id, stage, done0, total, 0, t0)
    for start in range(0, len(pending), max(1, int(batch_size))):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"run {run_id} stopped at {done0 + done_here} of {total} rows; "
                            f"`{resume_command(run_id)}` goes on from there")
        batch = pending[start:start + batch_size]
        ws.commit_batch(run_id, stage, batch, **compute(batch))
        done_here += len(batch)
        report(progress, run_id, stage, done0 + done_here, total, done_here, t0)


def report(progress: ProgressFn | None, run_id: int, stage: str, done: int, total: int, done_here: int,
           t0: float) -> None:
    """Send a Progress: `done_here` rows of this session since `t0` (perf_counter) give the rate and the ETA."""
    if progress is None:
        return
    elapsed = time.perf_counter() - t0
    rate = done_here / elapsed if elapsed > 0 and done_here else 0.0
    eta = (total - done) / rate if rate > 0 else None
    progress(Progress(done=done, total=total, rows_per_s=rate, eta_s=eta, stage=stage, run_id=run_id))


def model_spec(ws, run) -> str:
    """The model a run loads: a scoring run's own, a correction run's scoring run's (its judge and generator)."""
    if run.kind == "correct":
        run = ws.get_run(int(run.config["score_run"]))
    return str((run.config or {}).get("model", "default"))


def resume_command(run_id: int, workspace: str | None = None) -> str:
    """The command line that goes on with a run (with --workspace when one is named)."""
    return f"clear-studio resume {int(run_id)}" + (f" --workspace {shlex.quote(str(workspace))}" if workspace else "")
