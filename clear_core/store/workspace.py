"""The workspace: one DuckDB file holding datasets, runs, scores, proposals and the decision log.

`Workspace` is the facade the app, the pipeline and the CLI hold. It owns one DuckDB connection; every method runs
on the calling thread's own cursor (`ws.cursor()`), so the app can score in a background thread while the UI
queries. Results are read fully (DataFrames, lists, dataclasses) before a method returns.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ..errors import ClearError, WorkspaceLockedError
from . import datasets as _datasets
from . import decisions as _decisions
from . import queries as _queries
from . import reviewers as _reviewers
from . import runs as _runs
from .datasets import DatasetInfo, ExampleRow
from .runs import RunInfo
from .schema import migrate

# One lock per database file, shared by every Workspace of this process on it: decisions are read-then-appended
# under it (see decisions.record_decisions). DuckDB lets a single process write a file, so this covers all writers.
_DECISION_LOCKS: dict[str, threading.Lock] = {}
_DECISION_LOCKS_GUARD = threading.Lock()


def _decision_lock(path: str) -> threading.Lock:
    if path == ":memory:":  # every in-memory connection is a database of its own
        return threading.Lock()
    with _DECISION_LOCKS_GUARD:
        return _DECISION_LOCKS.setdefault(os.path.realpath(Path(path).expanduser()), threading.Lock())


_DUCKDB_MAGIC = b"DUCK"  # bytes 8-12 of every DuckDB database file, after the header's checksum
_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt", ".tsv")


def _check_file(path: str) -> None:
    """Refuse an existing path that is not a DuckDB database: DuckDB would open a data file given by mistake as a
    throw-away in-memory database, and what is imported into it would be lost. A path that does not exist yet is
    a new workspace."""
    file = Path(path).expanduser()
    if not file.exists():
        return
    if file.is_dir():
        raise ClearError(f"workspace {path} is a folder; pass a workspace file (a new path makes one)")
    if not file.is_file():
        raise ClearError(f"workspace {path} is not a regular file; pass a workspace file (a new path makes one)")
    try:
        with file.open("rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise ClearError(f"cannot read workspace {path}: {exc.strerror}") from None
    if head[8:12] != _DUCKDB_MAGIC:
        hint = (f"; to import it, run `clear-studio ingest {path}`" if file.suffix.lower() in _DATA_SUFFIXES
                else "")
        raise ClearError(f"{path} is not a CLEAR Studio workspace (not a DuckDB database file){hint}; pass "
                         "--workspace a new path or an existing workspace")


def _damage(path: str, exc: BaseException) -> ClearError | None:
    """The one-line error for a DuckDB error that comes from the file itself (truncated, corrupt, unreadable),
    or None for any other error."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "Corrupt database file" in text or "Could not read enough bytes" in text:
        return ClearError(f"workspace {path} is damaged (truncated or corrupt: {text}); restore it from a backup "
                          "or pass --workspace OTHER.db")
    if isinstance(exc, (duckdb.IOException, duckdb.FatalException)):
        return ClearError(f"cannot read or write workspace {path}: {text}")
    return None


def _reports_damage(method):
    """A Workspace method whose errors from a damaged file become the one-line ClearError."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except duckdb.Error as exc:
            error = _damage(self.path, exc)
            if error is None:
                raise
            raise error from None
    return wrapper


def buffer_limit() -> str:
    """DuckDB's memory limit for a workspace connection: an eighth of this machine's memory, at most 1 GiB.

    DuckDB's own default (80 %) keeps every page a large run reads cached (a million rows' embeddings are 4.6 GB)
    beside the arrays the dataset stage builds from them; past this limit DuckDB evicts pages, or spills to disk.
    The workspace's own queries work on scores and row text, far below it."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2 ** 30
    return f"{max(256, min(1024, total // 8 // 2 ** 20))}MB"


def _connect(path: str, read_only: bool):
    try:
        return duckdb.connect(path, read_only=read_only, config={"memory_limit": buffer_limit()})
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WorkspaceLockedError(
                f"workspace {path} is open in another process (the app or a CLI command); "
                "close it or pass --workspace OTHER.db") from None
        raise _damage(path, exc) from None
    except duckdb.Error as exc:
        raise _damage(path, exc) or ClearError(f"cannot open workspace {path}: {str(exc).splitlines()[0]}") from None


class Workspace:
    """A CLEAR Studio workspace file. Open with `Workspace.open(path)`; use as a context manager or call close()."""

    def __init__(self, path: str, connection, read_only: bool):
        self.path, self.read_only = path, read_only
        self._con = connection
        self._cursors: dict[threading.Thread, object] = {}  # one cursor per live thread
        self._lock = threading.Lock()
        self._decision_lock = _decision_lock(path)
        self._bands: dict = {}  # band_counts' sorted confidences per run, checked against the runs table on use

    @classmethod
    def open(cls, path: str | os.PathLike = ":memory:", read_only: bool = False) -> "Workspace":
        """Open (creating and migrating as needed) a workspace; WorkspaceLockedError when another process holds it."""
        path = str(path)
        if path != ":memory:":
            parent = Path(path).expanduser().resolve().parent
            if not parent.is_dir():
                raise ClearError(f"cannot create workspace {path}: folder {parent} does not exist")
            if read_only and not Path(path).exists():
                raise ClearError(f"no workspace at {path}")
            _check_file(path)
        con = _connect(path, read_only)
        ws = cls(path, con, read_only)
        try:
            migrate(ws.cursor(), path, read_only=read_only)
        except BaseException as exc:
            ws.close()
            error = _damage(path, exc) if isinstance(exc, duckdb.Error) else None
            if error is None:
                raise
            raise error from None
        return ws

    def cursor(self):
        """This thread's own cursor on the workspace connection (created on first use).

        Cursors of threads that have ended are closed when a new one is made: Streamlit runs every rerun of a page
        in a fresh thread, so a long session would otherwise pile up one open cursor per rerun.
        """
        thread = threading.current_thread()
        cur = self._cursors.get(thread)
        if cur is not None:
            return cur
        with self._lock:
            if self._con is None:
                raise ClearError(f"workspace {self.path} is closed")
            for old in [t for t in self._cursors if not t.is_alive()]:
                self._cursors.pop(old).close()
            cur = self._cursors[thread] = self._con.cursor()
        return cur

    def close(self) -> None:
        with self._lock:
            for cur in self._cursors.values():
                try:
                    cur.close()
                except duckdb.Error:
                    pass
            self._cursors.clear()
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({self.path!r}{', read_only=True' if self.read_only else ''})"

    # datasets -----------------------------------------------------------------------------------------------
    def add_dataset(self, name: str, result, replace: bool = False, progress=None) -> DatasetInfo:
        return _datasets.add_dataset(self.cursor(), name, result, replace=replace, progress=progress)

    def list_datasets(self) -> list[DatasetInfo]:
        return _datasets.list_datasets(self.cursor())

    def get_dataset(self, name_or_id) -> DatasetInfo:
        return _datasets.get_dataset(self.cursor(), name_or_id)

    def delete_dataset(self, name_or_id) -> None:
        _datasets.delete_dataset(self.cursor(), name_or_id)

    def examples(self, dataset_id: int, row_idx=None, limit: int | None = None, offset: int = 0,
                 columns=_datasets.EXAMPLE_COLUMNS) -> pd.DataFrame:
        return _datasets.examples(self.cursor(), dataset_id, row_idx, limit, offset, columns)

    def rows(self, dataset_id: int, row_idx=None, limit: int | None = None, offset: int = 0) -> list[ExampleRow]:
        return _datasets.example_rows(self.cursor(), dataset_id, row_idx, limit, offset)

    def scoring_rows(self, dataset_id: int, row_idx) -> list[dict]:
        return _datasets.scoring_rows(self.cursor(), dataset_id, row_idx)

    # runs ---------------------------------------------------------------------------------------------------
    def create_run(self, dataset_id: int, kind: str, config_json, n_total: int, status: str = "running") -> int:
        return _runs.create_run(self.cursor(), dataset_id, kind, config_json, n_total, status)

    def get_run(self, run_id: int) -> RunInfo:
        return _runs.get_run(self.cursor(), run_id)

    def list_runs(self, dataset_id: int | None = None) -> list[RunInfo]:
        return _runs.list_runs(self.cursor(), dataset_id)

    def latest_run(self, dataset_id: int, kind: str = "score", status: str | None = None) -> RunInfo | None:
        return _runs.latest_run(self.cursor(), dataset_id, kind, status)

    def score_run(self, dataset, run_id: int | None = None, finished: bool = True) -> RunInfo:
        """The score run `run_id` of `dataset` (name, id or DatasetInfo), checked to be one, or by default its
        latest finished one; with finished=False an unfinished run also does. A ClearError saying what to run
        when there is none."""
        info = self.get_dataset(dataset)
        if run_id is not None:
            run = self.get_run(run_id)
            if run.dataset_id != info.id or run.kind != "score":
                raise ClearError(f"run {run_id} is a {run.kind} run of dataset {run.dataset_id}, not a score run "
                                 f"of dataset '{info.name}'")
            if finished and run.status != "done":
                raise ClearError(f"score run {run_id} is {run.status}, not finished; `clear-studio resume {run_id}` "
                                 "goes on with it")
            return run
        run = self.latest_run(info.id, "score", status="done" if finished else None)
        if run is None:
            raise ClearError(f"dataset '{info.name}' has no {'finished ' if finished else ''}scoring run; start a "
                             f"score run with `clear-studio score {info.name}` (or finish one with "
                             "`clear-studio resume RUN_ID`)")
        return run

    def update_run(self, run_id: int, **changes) -> RunInfo:
        return _runs.update_run(self.cursor(), run_id, **changes)

    def set_thresholds(self, run_id: int, thresholds) -> RunInfo:
        """Store a score run's {t_drop, t_keep, eta} (None clears them); read back as RunInfo.thresholds."""
        return _runs.set_thresholds(self.cursor(), run_id, thresholds)

    def replace_signal(self, run_id: int, signal: str, rows, values, weights=None) -> None:
        _runs.replace_signal(self.cursor(), run_id, signal, rows, values, weights)

    def pending_rows(self, run_id: int, stage: str, rows=None) -> np.ndarray:
        return _runs.pending_rows(self.cursor(), run_id, stage, rows)

    def done_rows(self, run_id: int, stage: str, failed: bool | None = None) -> np.ndarray:
        return _runs.done_rows(self.cursor(), run_id, stage, failed)

    def commit_batch(self, run_id: int, stage: str, rows, scores=None, embeddings=None, proposals=None,
                     errors=None) -> None:
        _runs.commit_batch(self.cursor(), run_id, stage, rows, scores, embeddings, proposals, errors)

    def load_embeddings(self, run_id: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
        return _runs.load_embeddings(self.cursor(), run_id, kind)

    def embeddings(self, run_id: int, kind: str, row_idx=None) -> np.ndarray:
        return _runs.embeddings(self.cursor(), run_id, kind, row_idx)

    def proposals(self, run_id: int) -> pd.DataFrame:
        return _runs.proposals(self.cursor(), run_id)

    def row_errors(self, run_id: int, stage: str | None = None) -> pd.DataFrame:
        return _runs.row_errors(self.cursor(), run_id, stage)

    # queries (scores in [0, 1], higher = more trustworthy) ---------------------------------------------------
    def signals(self, run_id: int) -> list[str]:
        return _queries.signals(self.cursor(), run_id)

    def scores_wide(self, run_id: int, signals=None, raw: bool = False) -> pd.DataFrame:
        return _queries.scores_wide(self.cursor(), run_id, signals, raw)

    def band_counts(self, run_id: int, t_drop: float, t_keep: float, eta: float = 0.8) -> dict:
        return _queries.band_counts(self.cursor(), run_id, t_drop, t_keep, eta, self._bands)

    def histogram(self, run_id: int, signal: str, bins: int = 40, lo: float = 0.0, hi: float = 1.0) -> pd.DataFrame:
        return _queries.histogram(self.cursor(), run_id, signal, bins, lo, hi)

    def quantile(self, run_id: int, signal: str, q):
        return _queries.quantile(self.cursor(), run_id, signal, q)

    def review_queue(self, dataset_id: int, run_id: int | None, **filters) -> pd.DataFrame:
        return _queries.review_queue(self.cursor(), dataset_id, run_id, **filters)

    def review_window(self, dataset_id: int, run_id: int | None, **filters) -> tuple[pd.DataFrame, int]:
        return _queries.review_window(self.cursor(), dataset_id, run_id, **filters)

    def review_rows(self, dataset_id: int, run_id: int | None, order: str = "row", **filters) -> np.ndarray:
        return _queries.review_rows(self.cursor(), dataset_id, run_id, order, **filters)

    def review_count(self, dataset_id: int, run_id: int | None, **filters) -> int:
        return _queries.review_count(self.cursor(), dataset_id, run_id, **filters)

    def review_progress(self, dataset_id: int, run_id: int | None, t_keep: float) -> dict:
        return _queries.review_progress(self.cursor(), dataset_id, run_id, t_keep)

    def export_frame(self, dataset_id: int, run_id: int | None = None, text: bool = True) -> pd.DataFrame:
        return _queries.export_frame(self.cursor(), dataset_id, run_id, text)

    # decisions ----------------------------------------------------------------------------------------------
    def record_decisions(self, dataset_id: int, rows, action: str, reviewer: str, new_text=None,
                         thresholds=None, expected: dict | None = None, settles: bool = False) -> int:
        with self._decision_lock:
            return _decisions.record_decisions(self.cursor(), dataset_id, rows, action, reviewer, new_text,
                                               thresholds, expected, settles)

    def undo(self, dataset_id: int, reviewer: str, row_idx: int | None = None,
             batch_id: int | None = None) -> list[int]:
        with self._decision_lock:
            return _decisions.undo(self.cursor(), dataset_id, reviewer, row_idx, batch_id)

    def last_action(self, dataset_id: int, reviewer: str, before: int | None = None) -> dict | None:
        return _decisions.last_action(self.cursor(), dataset_id, reviewer, before)

    def row_versions(self, dataset_id: int, rows) -> dict[int, int]:
        return _decisions.row_versions(self.cursor(), dataset_id, rows)

    def changed_since(self, dataset_id: int, since: int | None, rows) -> tuple[int, bool]:
        return _decisions.changed_since(self.cursor(), dataset_id, since, rows)

    def reviewer_progress(self, dataset_id: int) -> pd.DataFrame:
        return _reviewers.reviewer_progress(self.cursor(), dataset_id)

    def disagreements(self, dataset_id: int, limit: int | None = None) -> pd.DataFrame:
        return _reviewers.disagreements(self.cursor(), dataset_id, limit)

    def current_decisions(self, dataset_id: int, rows=None) -> pd.DataFrame:
        return _decisions.current_decisions(self.cursor(), dataset_id, rows)

    def row_state(self, dataset_id: int, row_idx: int) -> dict | None:
        return _decisions.row_state(self.cursor(), dataset_id, row_idx)

    def decision_log(self, dataset_id: int) -> pd.DataFrame:
        return _decisions.decision_log(self.cursor(), dataset_id)


# Every public method: an error that comes from a damaged file is reported in one line, wherever it surfaces (a
# truncated file may open and fail only when a later query reads the missing blocks).
for _name, _method in list(vars(Workspace).items()):
    if callable(_method) and not _name.startswith("_") and _name not in ("cursor", "close"):
        setattr(Workspace, _name, _reports_damage(_method))
