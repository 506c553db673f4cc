"""Runs and their per-batch results: the resume point of a scoring or correction run.

`commit_batch` writes a batch's scores, embeddings and proposals AND marks its rows done for the stage in one
transaction; `pending_rows` is everything of the run not marked yet. A process killed at any moment (even SIGKILL)
therefore loses at most the batch in flight, and a resumed run does no row twice.

A run marked `running` records the process that marked it (`owner`, `process_token()`). Such a process cannot mark
its run when it is killed (SIGKILL, a crash, the machine going down), so the run is read back as `interrupted`
whenever its owner is not the reading process. That is exact, not a guess: DuckDB lets one read-write process at a
time hold the workspace file and refuses every other open while it does, so a process that can read the runs table
knows that no other process is writing to it, and a `running` run of another process cannot be going on. A
heartbeat (a time stamp per committed batch, stale after a timeout) was the other way; it needs a timeout longer
than the longest gap between commits, and the dataset stage of a large run commits nothing for minutes.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ClearError, UnknownNameError
from .db import as_rows, first, from_json, registered, sorted_unique, to_json, transaction, utcnow

RUN_KINDS = ("score", "correct")
RUN_STATUSES = ("running", "stopped", "done", "failed")  # what is stored
INTERRUPTED = "interrupted"  # read back instead of `running` when the run's process is gone (see above)
_NONCE = secrets.token_hex(4)  # per import: a reused pid does not pass for this process
PROPOSAL_COLUMNS = ("candidate", "source", "judge_conf", "confident")


@dataclass(frozen=True)
class RunInfo:
    id: int
    dataset_id: int
    kind: str
    config: dict
    status: str
    n_total: int
    n_done: int  # rows committed ok in `stage` (the latest stage committed)
    n_failed: int  # rows committed with an error in `stage`
    created_at: datetime
    updated_at: datetime
    weights: dict | None
    message: str | None
    stage: str | None
    thresholds: dict | None = None  # {t_drop, t_keep, eta} an analyst set (set_thresholds); None = the default


def process_token() -> str:
    """This process, as written into the runs it marks running: host, pid (read now, so a forked child differs)
    and a random part drawn at import."""
    return f"{socket.gethostname()}:{os.getpid()}:{_NONCE}"


_RUN_COLUMNS = ("id, dataset_id, kind, config, status, n_total, n_done, n_failed, created_at, updated_at, weights, "
                "message, stage, owner, thresholds")


def _info(row) -> RunInfo:
    status, message = row[4], row[11]
    if status == "running" and row[13] != process_token():
        pid = str(row[13]).rsplit(":", 2)[1] if row[13] and str(row[13]).count(":") >= 2 else "?"
        status, message = INTERRUPTED, f"the process that ran it (pid {pid}) ended without closing it (killed or crashed)"
    return RunInfo(int(row[0]), int(row[1]), row[2], from_json(row[3]), status, int(row[5]), int(row[6]),
                   int(row[7]), row[8], row[9], from_json(row[10]), message, row[12], from_json(row[14]))


def create_run(cur, dataset_id: int, kind: str, config_json, n_total: int, status: str = "running") -> int:
    if kind not in RUN_KINDS:
        raise UnknownNameError("run kind", kind, RUN_KINDS)
    if status not in RUN_STATUSES:
        raise UnknownNameError("run status", status, RUN_STATUSES)
    if cur.execute("SELECT count(*) FROM datasets WHERE id = ?", [int(dataset_id)]).fetchall()[0][0] == 0:
        raise ClearError(f"no dataset with id {dataset_id}")
    now = utcnow()
    return int(cur.execute(
        "INSERT INTO runs (dataset_id, kind, config, status, n_total, created_at, updated_at, owner) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [int(dataset_id), kind, to_json(config_json), status, int(n_total), now, now, process_token()],
    ).fetchall()[0][0])


def get_run(cur, run_id: int) -> RunInfo:
    row = first(cur.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", [int(run_id)]))
    if row is None:
        ids = [str(r[0]) for r in cur.execute("SELECT id FROM runs ORDER BY id").fetchall()]
        raise UnknownNameError("run", str(run_id), ids)
    return _info(row)


def list_runs(cur, dataset_id: int | None = None) -> list[RunInfo]:
    if dataset_id is None:
        rows = cur.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id").fetchall()
    else:
        rows = cur.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE dataset_id = ? ORDER BY id",
                           [int(dataset_id)]).fetchall()
    return [_info(r) for r in rows]


def latest_run(cur, dataset_id: int, kind: str = "score", status: str | None = None) -> RunInfo | None:
    """The newest run of that kind (and status, when given) on the dataset, or None."""
    row = first(cur.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE dataset_id = ? AND kind = ? AND (? IS NULL OR status = ?) "
        "ORDER BY id DESC LIMIT 1", [int(dataset_id), kind, status, status]))
    return _info(row) if row else None


_UPDATABLE = ("status", "message", "weights", "n_total", "stage", "config")


def update_run(cur, run_id: int, **changes) -> RunInfo:
    """Set some of status, message, weights, n_total, stage, config (None values are left unchanged).

    Setting a status records this process as the run's owner (the one that can still be running it)."""
    unknown = [k for k in changes if k not in _UPDATABLE]
    if unknown:
        raise UnknownNameError("run field", unknown[0], _UPDATABLE)
    if changes.get("status") is not None and changes["status"] not in RUN_STATUSES:
        raise UnknownNameError("run status", changes["status"], RUN_STATUSES)
    values = {k: v for k, v in changes.items() if v is not None}
    for key in ("weights", "config"):
        if key in values:
            values[key] = to_json(values[key])
    if "status" in values:
        values["owner"] = process_token()
    get_run(cur, run_id)  # raises for an unknown run
    sets = ", ".join(f"{k} = ?" for k in values)  # keys validated against _UPDATABLE
    cur.execute(f"UPDATE runs SET {sets + ', ' if sets else ''}updated_at = ? WHERE id = ?",
                [*values.values(), utcnow(), int(run_id)])
    return get_run(cur, run_id)


THRESHOLD_KEYS = ("t_drop", "t_keep", "eta")


def set_thresholds(cur, run_id: int, thresholds: Mapping[str, float] | None) -> RunInfo:
    """Store the thresholds of a score run ({t_drop, t_keep, eta}, each in [0, 1], t_drop <= t_keep), or clear them
    with None (the default then applies). The run's updated_at is left alone: it keys caches of its scores."""
    run = get_run(cur, run_id)
    if run.kind != "score":
        raise ClearError(f"run {run_id} is a {run.kind} run; thresholds belong to score runs")
    value = None
    if thresholds is not None:
        missing = [k for k in THRESHOLD_KEYS if k not in thresholds]
        if missing:
            raise ClearError(f"thresholds of run {run_id}: '{missing[0]}' is missing")
        value = {k: float(thresholds[k]) for k in THRESHOLD_KEYS}
        if not all(0.0 <= v <= 1.0 for v in value.values()) or value["t_drop"] > value["t_keep"]:
            raise ClearError(f"thresholds of run {run_id} must lie in [0, 1] with t_drop <= t_keep, got {value}")
    cur.execute("UPDATE runs SET thresholds = ? WHERE id = ?", [None if value is None else to_json(value),
                                                                int(run_id)])
    return get_run(cur, run_id)


def replace_signal(cur, run_id: int, signal: str, rows, values, weights: Mapping[str, float] | None = None) -> None:
    """Replace a run's values of one signal (value and raw) by `values` aligned with `rows`, and set its weights
    when given, in ONE transaction: a finished run's `confidence` recombined with new weights. Values lie in
    [0, 1], higher = more trustworthy."""
    rows, values = as_rows(rows), np.asarray(values, dtype=np.float64)
    if len(rows) != len(values):
        raise ValueError(f"{len(values)} values for {len(rows)} rows")
    if np.any((values < 0) | (values > 1)):
        raise ClearError(f"replace_signal: values of '{signal}' must lie in [0, 1] (run {run_id})")
    get_run(cur, run_id)  # raises for an unknown run
    frame = pd.DataFrame({"row_idx": rows.astype(np.int32), "value": values})
    with transaction(cur), registered(cur, "_clear_signal", frame):
        cur.execute("DELETE FROM scores WHERE run_id = ? AND signal = ?", [int(run_id), signal])
        cur.execute("INSERT INTO scores SELECT ?, row_idx, ?, value, CASE WHEN isnan(value) THEN NULL ELSE value END "
                    "FROM _clear_signal", [int(run_id), signal])
        cur.execute("UPDATE runs SET weights = coalesce(?, weights), updated_at = ? WHERE id = ?",
                    [None if weights is None else to_json(dict(weights)), utcnow(), int(run_id)])


def done_rows(cur, run_id: int, stage: str, failed: bool | None = None) -> np.ndarray:
    """Rows committed for the stage (all, only failed ones with failed=True, only ok ones with failed=False)."""
    sql = "SELECT row_idx FROM row_status WHERE run_id = ? AND stage = ? AND (? IS NULL OR ok = ?) ORDER BY row_idx"
    ok = None if failed is None else not failed
    return cur.execute(sql, [int(run_id), stage, ok, ok]).fetchnumpy()["row_idx"].astype(np.int64)


def pending_rows(cur, run_id: int, stage: str, rows=None) -> np.ndarray:
    """Rows of the run not yet committed for `stage`, in row order.

    A run covers rows 0 .. n_total - 1 of its dataset (a `limit` takes the first rows); a run over another set of
    rows (a correction run over the flagged rows) passes that set as `rows`. Rows committed with an error count as
    done: they are reported, not retried.
    """
    run = get_run(cur, run_id)
    wanted = np.arange(run.n_total, dtype=np.int64) if rows is None else sorted_unique(as_rows(rows))
    return np.setdiff1d(wanted, done_rows(cur, run_id, stage), assume_unique=True)


def long_scores(rows, values: Mapping[str, np.ndarray], raw: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Scores as the long DataFrame commit_batch takes, from {signal: values aligned with rows} (+ raw values)."""
    rows = as_rows(rows)
    parts = []
    for signal, vals in values.items():
        raw_vals = (raw or {}).get(signal)
        parts.append(pd.DataFrame({
            "row_idx": rows, "signal": signal, "value": np.asarray(vals, dtype=np.float64),
            "raw": np.full(len(rows), np.nan) if raw_vals is None else np.asarray(raw_vals, dtype=np.float64)}))
    if not parts:
        return pd.DataFrame({"row_idx": [], "signal": [], "value": [], "raw": []})
    return pd.concat(parts, ignore_index=True)


def _embedding_table(rows: np.ndarray, embeddings) -> pa.Table:
    """Arrow table (row_idx, kind, vec) from {kind: (len(rows), dim) array} or a DataFrame with those columns."""
    if isinstance(embeddings, pd.DataFrame):
        return pa.Table.from_pandas(embeddings[["row_idx", "kind", "vec"]], preserve_index=False)
    tables = []
    for kind, matrix in embeddings.items():
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(rows):
            raise ValueError(f"embeddings[{kind!r}] must have shape (len(rows), dim), got {matrix.shape}")
        offsets = np.arange(0, matrix.size + 1, max(matrix.shape[1], 1), dtype=np.int32)[: len(rows) + 1]
        vec = pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.reshape(-1)))
        tables.append(pa.table({"row_idx": pa.array(rows, pa.int32()), "kind": pa.array([kind] * len(rows)),
                                "vec": vec}))
    return pa.concat_tables(tables)


def commit_batch(cur, run_id: int, stage: str, rows, scores: pd.DataFrame | None = None, embeddings=None,
                 proposals: pd.DataFrame | None = None, errors: Mapping[int, str] | None = None) -> None:
    """Write one batch's results and mark its rows done for `stage`, all in ONE transaction.

    rows: every row the batch processed (ok or failed). scores: long DataFrame [row_idx, signal, value, raw?]
    (`long_scores` builds it; values in [0, 1], higher = more trustworthy). embeddings: {kind: (len(rows), dim)}
    or a DataFrame [row_idx, kind, vec]. proposals: DataFrame [row_idx, candidate?, source?, judge_conf?,
    confident?]; a row that already has a proposal in this run is updated (NULLs keep the stored value), so a
    judge stage can add judge_conf to the candidates of the propose stage. errors: {row_idx: message} for the rows
    that failed. Committing a row twice for the same stage raises ClearError and writes nothing.
    """
    rows = as_rows(rows)
    if len(rows) > 1 and np.any(np.diff(np.sort(rows)) == 0):
        raise ClearError(f"commit_batch: duplicate rows in the batch of run {run_id}, stage {stage}")
    status = _status_frame(rows, errors or {})
    if scores is not None and len(scores):
        values = np.asarray(scores["value"], dtype=np.float64)
        if np.any((values < 0) | (values > 1)):
            raise ClearError(f"commit_batch: score values must lie in [0, 1] (run {run_id}, stage '{stage}')")
    with transaction(cur):
        with registered(cur, "_clear_status", status):
            already = cur.execute(
                "SELECT count(*) FROM row_status WHERE run_id = ? AND stage = ? "
                "AND row_idx IN (SELECT row_idx FROM _clear_status)", [int(run_id), stage]).fetchall()[0][0]
            if already:
                raise ClearError(f"commit_batch: {already} of these rows are already committed for run {run_id}, "
                                 f"stage '{stage}'")
            cur.execute("INSERT INTO row_status SELECT ?, ?, row_idx, ok, error FROM _clear_status",
                        [int(run_id), stage])
        if scores is not None and len(scores):
            frame = scores if "raw" in scores.columns else scores.assign(raw=np.nan)
            with registered(cur, "_clear_scores", frame[["row_idx", "signal", "value", "raw"]]):
                cur.execute("INSERT INTO scores SELECT ?, row_idx, signal, value, CASE WHEN isnan(raw) THEN NULL "
                            "ELSE raw END FROM _clear_scores", [int(run_id)])
        if embeddings is not None and len(embeddings):
            with registered(cur, "_clear_embeddings", _embedding_table(rows, embeddings)):
                cur.execute("INSERT INTO embeddings SELECT ?, row_idx, kind, vec FROM _clear_embeddings",
                            [int(run_id)])
        if proposals is not None and len(proposals):
            _upsert_proposals(cur, int(run_id), proposals)
        cur.execute(
            "UPDATE runs SET stage = ?, updated_at = ?, "
            "n_done = (SELECT count(*) FROM row_status WHERE run_id = ? AND stage = ? AND ok), "
            "n_failed = (SELECT count(*) FROM row_status WHERE run_id = ? AND stage = ? AND NOT ok) WHERE id = ?",
            [stage, utcnow(), int(run_id), stage, int(run_id), stage, int(run_id)])


def _status_frame(rows: np.ndarray, errors: Mapping[int, str]) -> pd.DataFrame:
    """row_status rows of a batch: ok unless the row has an error message."""
    errors = {int(k): str(v) for k, v in errors.items()}
    outside = sorted(set(errors) - set(rows.tolist()))
    if outside:
        raise ClearError(f"commit_batch: errors for rows outside the batch: {outside[:5]}")
    failed = np.isin(rows, np.fromiter(errors, dtype=np.int64, count=len(errors)))
    messages = [errors.get(r) for r in rows.tolist()] if errors else [None] * len(rows)
    return pd.DataFrame({"row_idx": rows.astype(np.int32), "ok": ~failed, "error": pd.array(messages, dtype="string")})


def _upsert_proposals(cur, run_id: int, proposals: pd.DataFrame) -> None:
    frame = pd.DataFrame({"row_idx": np.asarray(proposals["row_idx"], dtype=np.int32)})
    for column, dtype in zip(PROPOSAL_COLUMNS, (object, object, "float64", "boolean")):
        frame[column] = proposals[column].to_numpy() if column in proposals else pd.array([None] * len(frame), dtype)
    frame["candidate"] = frame["candidate"].astype(object)
    frame["source"] = frame["source"].astype(object)
    with registered(cur, "_clear_proposals", frame):
        cur.execute(
            "UPDATE proposals SET candidate = coalesce(b.candidate::VARCHAR, proposals.candidate), "
            "source = coalesce(b.source::VARCHAR, proposals.source), "
            "judge_conf = coalesce(b.judge_conf::DOUBLE, proposals.judge_conf), "
            "confident = coalesce(b.confident::BOOLEAN, proposals.confident) "
            "FROM _clear_proposals b WHERE proposals.run_id = ? AND proposals.row_idx = b.row_idx", [run_id])
        cur.execute(
            "INSERT INTO proposals SELECT ?, b.row_idx, b.candidate::VARCHAR, b.source::VARCHAR, "
            "b.judge_conf::DOUBLE, b.confident::BOOLEAN FROM _clear_proposals b "
            "WHERE b.row_idx NOT IN (SELECT row_idx FROM proposals WHERE run_id = ?)", [run_id, run_id])


EMBEDDING_BATCH = 65_536  # rows per streamed batch of load_embeddings


def load_embeddings(cur, run_id: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, float32 matrix with one row per index) of a run's embeddings of that kind, in row order.

    Streamed into one preallocated matrix a batch at a time: a million 576-d rows are 2.3 GB, and a whole Arrow
    result plus its combined copy would hold two more of them. Rows are read in storage order (no ORDER BY over
    the vectors); only a run whose batches were committed out of order pays one reordering copy."""
    params = {"run": int(run_id), "kind": kind}
    n = cur.execute("SELECT count(*) FROM embeddings WHERE run_id = $run AND kind = $kind", params).fetchall()[0][0]
    rows, matrix = np.empty(n, dtype=np.int64), None
    # a relation's reader streams; the same on an executed statement would first copy every row
    reader = cur.sql("SELECT row_idx, vec FROM embeddings WHERE run_id = $run AND kind = $kind",
                     params=params).to_arrow_reader(EMBEDDING_BATCH)
    done = 0
    for batch in reader:
        m = batch.num_rows
        if m == 0:
            continue
        flat = batch.column(1).flatten().to_numpy(zero_copy_only=False)  # FLOAT: already float32
        if matrix is None:
            dim = len(flat) // m
            matrix = np.empty((n, dim), dtype=np.float32)
        if len(flat) != m * dim:
            raise ClearError(f"run {run_id} has {kind} embeddings of different lengths; score the run again")
        rows[done:done + m] = batch.column(0).to_numpy(zero_copy_only=False)
        matrix[done:done + m] = flat.reshape(m, dim)
        done += m
    if done != n:  # the table changed between the count and the read (it never should within one transaction)
        raise ClearError(f"run {run_id}: {kind} embeddings changed while they were read")
    if matrix is None:
        return rows, np.zeros((0, 0), dtype=np.float32)
    if n > 1 and np.any(np.diff(rows) < 0):
        order = np.argsort(rows, kind="stable")
        rows, matrix = rows[order], matrix[order]
    return rows, matrix


def embeddings(cur, run_id: int, kind: str, row_idx=None) -> np.ndarray:
    """Float32 matrix of a run's embeddings of that kind, one row per entry of `row_idx` (all rows when None)."""
    rows, matrix = load_embeddings(cur, run_id, kind)
    if row_idx is None:
        return matrix
    wanted = as_rows(row_idx)
    if np.array_equal(rows, wanted):  # every row, in order (the dataset stage): no reindexed copy
        return matrix
    pos = np.searchsorted(rows, wanted)
    if len(rows) == 0 or np.any(pos >= len(rows)) or np.any(rows[np.minimum(pos, len(rows) - 1)] != wanted):
        missing = wanted[(pos >= len(rows)) | (rows[np.minimum(pos, max(len(rows) - 1, 0))] != wanted)] \
            if len(rows) else wanted
        raise ClearError(f"run {run_id} has no {kind} embedding for row {int(missing[0])}")
    return matrix[pos]


def proposals(cur, run_id: int) -> pd.DataFrame:
    return cur.execute("SELECT row_idx, candidate, source, judge_conf, confident FROM proposals WHERE run_id = ? "
                       "ORDER BY row_idx", [int(run_id)]).df()


def row_errors(cur, run_id: int, stage: str | None = None) -> pd.DataFrame:
    """The rows committed with an error: [stage, row_idx, error]."""
    return cur.execute("SELECT stage, row_idx, error FROM row_status WHERE run_id = ? AND NOT ok "
                       "AND (? IS NULL OR stage = ?) ORDER BY stage, row_idx", [int(run_id), stage, stage]).df()
