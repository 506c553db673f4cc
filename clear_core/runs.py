"""The run lifecycle, one for every kind of run: scoring (`pipeline`) and correction (`correct.run`), driven from
the CLI or from the app's background thread (ui/jobs.py).

A run is a row of the workspace's `runs` table: a kind, its settings, a status, and stages whose rows are committed
batch by batch (`row_status`, the resume point). This module owns what every kind shares:
* `execute(ws, run_id, kind, work)`: the run is marked running while `work(run)` goes on, then done; stopped on the
  cancel event or Ctrl-C, failed on any other error (with its message). A finished run returns at once.
* `run_batches`: a stage's pending rows in batches; each batch's results committed in ONE transaction, the cancel
  event checked between batches, `Progress` reported after every commit.
* `Meter` and `check_cancel`: the same progress and the same stop for a stage's work that is not batches of
  committed rows (the dataset stage's signals, calibration's synthetic rows): a stage that commits nothing until
  its end is simply done again on resume.
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


# Weight of the latest batch in the smoothed rate: the estimate follows a change of speed within a few batches,
# and one slow batch (a long row, another process on the CPU) moves it by a third, not all the way.
SMOOTHING = 0.3


@dataclass(frozen=True)
class Progress:
    """What a progress callback receives after every committed batch (and once at the start of a stage)."""

    done: int  # rows committed for this stage, including those of earlier sessions of the run
    total: int
    rows_per_s: float  # this session's rate, smoothed over batches (`Meter`); 0 before the first batch
    eta_s: float | None
    stage: str = "rows"
    run_id: int | None = None
    label: str = ""  # what the stage does, in words ("calibration: 120 synthetic rows (from 50 of 100 rows)")
    unit: str = "rows"  # what `done` counts: "rows", "synthetic rows", "signals"
    at: float = 0.0  # time.time() when sent: a display counts the time left down between two reports

    def eta_now(self, now: float | None = None) -> float | None:
        """The time left as of `now` (default: the clock): eta_s less the time since the report, never below 0."""
        if self.eta_s is None or not self.at:  # `at` unset: a Progress made by hand, its eta as given
            return self.eta_s
        return max(0.0, self.eta_s - max(0.0, (time.time() if now is None else now) - self.at))

    def text(self, now: float | None = None) -> str:
        """One line for a person: what the stage does, units done of the total, the rate and the time left as of
        `now` ("calibration: 120 synthetic rows (...) · 40 / 120 synthetic rows · 12.5 synthetic rows/s · 6 s
        left")."""
        parts = [self.label or self.stage, f"{self.done:,} / {self.total:,} {self.unit}"]
        if self.rows_per_s > 0:
            parts.append(f"{self.rows_per_s:,.1f} {self.unit}/s")
        left = self.eta_now(now)
        if left is not None and self.done < self.total:
            parts.append(f"{duration(left)} left")
        return " · ".join(parts)


def duration(seconds: float) -> str:
    """42 s, 3 min 05 s, 1 h 02 min."""
    seconds = int(round(max(seconds, 0)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


ProgressFn = Callable[[Progress], None]


class Meter:
    """The progress of one stage of a run: units done of a total, the rate as an exponential moving average of each
    step's own rate (a cumulative mean only creeps after a change of speed, and its time left freezes and grows),
    and the time left at that rate. `clock` is for tests."""

    def __init__(self, progress: ProgressFn | None, run_id: int | None, stage: str, total: int, done: int = 0,
                 label: str = "", unit: str = "rows", clock: Callable[[], float] = time.perf_counter):
        self.progress, self.run_id, self.stage, self.total = progress, run_id, stage, int(total)
        self.done, self.label, self.unit, self.clock = int(done), label, unit, clock
        self.rate: float | None = None
        self._last = clock()
        self.send()

    def add(self, n: int) -> None:
        """`n` more units are done since the last call (or the start): update the rate and report."""
        now = self.clock()
        elapsed, self._last = now - self._last, now
        self.done += int(n)
        if n > 0 and elapsed > 0:
            step = n / elapsed
            self.rate = step if self.rate is None else SMOOTHING * step + (1 - SMOOTHING) * self.rate
        self.send()

    def send(self) -> None:
        if self.progress is None:
            return
        rate = self.rate or 0.0
        eta = max(0, self.total - self.done) / rate if rate > 0 else None
        self.progress(Progress(done=self.done, total=self.total, rows_per_s=rate, eta_s=eta, stage=self.stage,
                               run_id=self.run_id, label=self.label, unit=self.unit, at=time.time()))


def check_cancel(cancel, run_id: int, where: str) -> None:
    """Raise Cancelled when the stop event is set; `where` says what is kept ("at 16 of 48 rows")."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"run {run_id} stopped {where}; `{resume_command(run_id)}` goes on from there")


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
                progress: ProgressFn | None = None, cancel=None, rows=None, label: str = "") -> None:
    """Run `compute(row_idx: ndarray) -> dict of commit_batch keywords` over a stage's pending rows.

    `rows` is the run's row set when it is not 0 .. total - 1 (a correction run's flagged rows). Each batch is
    committed in one transaction; `cancel` is checked before each batch (raises Cancelled). `compute` must record a
    failing row in the returned `errors` ({row_idx: message}) rather than raise.
    """
    pending = np.asarray(ws.pending_rows(run_id, stage, rows=rows), dtype=np.int64)
    meter = Meter(progress, run_id, stage, total, done=total - len(pending), label=label)
    for start in range(0, len(pending), max(1, int(batch_size))):
        check_cancel(cancel, run_id, f"at {meter.done} of {total} rows ({stage} stage)")
        batch = pending[start:start + batch_size]
        ws.commit_batch(run_id, stage, batch, **compute(batch))
        meter.add(len(batch))


def report(progress: ProgressFn | None, run_id: int, stage: str, done: int, total: int, done_here: int,
           t0: float) -> None:
    """Send a Progress: `done_here` rows of this session since `t0` (perf_counter) give the rate (a plain mean;
    `Meter` smooths) and the ETA."""
    if progress is None:
        return
    elapsed = time.perf_counter() - t0
    rate = done_here / elapsed if elapsed > 0 and done_here else 0.0
    eta = (total - done) / rate if rate > 0 else None
    progress(Progress(done=done, total=total, rows_per_s=rate, eta_s=eta, stage=stage, run_id=run_id,
                      at=time.time()))


def model_spec(ws, run) -> str:
    """The model a run loads: a scoring run's own, a correction run's scoring run's (its judge and generator)."""
    if run.kind == "correct":
        run = ws.get_run(int(run.config["score_run"]))
    return str((run.config or {}).get("model", "default"))


def resume_command(run_id: int, workspace: str | None = None) -> str:
    """The command line that goes on with a run (with --workspace when one is named)."""
    return f"clear-studio resume {int(run_id)}" + (f" --workspace {shlex.quote(str(workspace))}" if workspace else "")
