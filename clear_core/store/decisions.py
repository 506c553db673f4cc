"""The append-only decision log: keep / drop / accept / edit, and undo, signed by reviewer and made on a version.

Nothing in `decisions` is ever updated or deleted. The state of a row is its latest entry: for keep, drop, accept
and edit that entry's action and text; for an undo, the state before the entry it undid (that entry's prev_action
and prev_text). Each entry records the state it replaced, so undo needs no replay, and the row's version it was
made on (`base_id`: the id of the row's latest entry then, NULL for a row without one).

A row's version is the id of its latest entry. A reviewer passes the versions their screen showed (`expected`);
when another entry has been appended to one of those rows since, nothing is written and `DecisionConflict` says
whose decision is in the way, so no one's decision is overwritten unseen. Undo takes back the reviewer's own
entries only: a row's latest standing entry when it is theirs, or the standing entries of their latest batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ClearError, UnknownNameError
from ..names import ACTIONS
from .db import as_rows, first, registered, to_json, transaction, utcnow
from .views import IN_ROWS, LATEST_PROPOSALS, current_sql

# Entries an undo may still take back (not undos, not undone yet), and per row the latest of them: the entry whose
# state stands (a later undo restores what it replaced, so an undone entry's predecessor stands again).
OPEN_SQL = """
    SELECT d.id, d.row_idx, d.action, d.new_text, d.prev_action, d.prev_text, d.batch_id, d.reviewer
    FROM decisions d
    WHERE d.dataset_id = $dataset AND d.action <> 'undo'
      AND d.id NOT IN (SELECT undoes FROM decisions WHERE dataset_id = $dataset AND undoes IS NOT NULL)"""
STANDING_SQL = f"SELECT * FROM ({OPEN_SQL}) QUALIFY row_number() OVER (PARTITION BY row_idx ORDER BY id DESC) = 1"

# The reviewer's last action: their latest batch with an entry still open that either still stands somewhere, or
# has not been undone in part yet (a batch partly undone, whose other rows other reviewers changed since, is
# done with: the next undo goes back to the batch before it). $before: only batches older than this one.
_LAST_BATCH = f"""
    WITH open AS ({OPEN_SQL}), tops AS ({STANDING_SQL}),
         mine AS (SELECT batch_id, bool_or(id IN (SELECT id FROM tops)) AS stands FROM open
                  WHERE reviewer = $reviewer AND ($before IS NULL OR batch_id < $before) GROUP BY batch_id),
         touched AS (SELECT DISTINCT d.batch_id FROM decisions d JOIN decisions u ON u.undoes = d.id
                     WHERE d.dataset_id = $dataset AND d.reviewer = $reviewer)
    SELECT max(batch_id) FROM mine WHERE stands OR batch_id NOT IN (SELECT batch_id FROM touched)"""

# The state each entry replaces, and the version it was made on, are read by the statement that appends it.
_APPEND = f"""
    INSERT INTO decisions (dataset_id, row_idx, action, new_text, reviewer, ts, prev_action, prev_text, thresholds,
                           batch_id, undoes, base_id, settles)
    SELECT $dataset, b.row_idx, $action, b.new_text, $reviewer, $ts, s.action, s.text, $thresholds, $batch, b.undoes,
           s.id, $settles
    FROM _clear_decisions b
    LEFT JOIN ({current_sql("AND row_idx IN (SELECT row_idx FROM _clear_decisions)")}) s ON s.row_idx = b.row_idx
    ORDER BY b.pos"""


class DecisionConflict(ClearError):
    """Rows changed since the reviewer's screen loaded them; nothing was written.

    conflicts: one dict per row, {"row_idx", "seen" (the version the screen showed, None for no entry), "theirs":
    {"id", "action", "text", "reviewer", "ts"} (the row's state now; action None when it was undone to undecided)}.
    """

    def __init__(self, conflicts: list[dict]):
        self.conflicts = conflicts
        c = conflicts[0]
        theirs = c["theirs"]
        what = f"{theirs['action']} by {theirs['reviewer']}" if theirs["action"] else f"undone by {theirs['reviewer']}"
        more = f" (and {len(conflicts) - 1} more rows)" if len(conflicts) > 1 else ""
        super().__init__(f"row {c['row_idx']} changed since you loaded it ({what}){more}; nothing was saved")


def current_decisions(cur, dataset_id: int, rows=None) -> pd.DataFrame:
    """DataFrame[row_idx, action, text, reviewer, ts]: the decided rows and their state, in row order (only among
    `rows` when given)."""
    params: dict = {"dataset": int(dataset_id)}
    if rows is not None:
        params["rows"] = as_rows(rows).tolist()
    current = current_sql(IN_ROWS if rows is not None else "")
    return cur.execute(f"SELECT row_idx, action, text, reviewer, ts FROM ({current}) WHERE action IS NOT NULL "
                       "ORDER BY row_idx", params).df()


def row_state(cur, dataset_id: int, row_idx: int) -> dict | None:
    """The standing decision of one row as {"action", "text", "reviewer"}, or None when the row is undecided."""
    row = first(cur.execute(f"SELECT action, text, reviewer FROM ({current_sql('AND row_idx = $row')}) "
                            "WHERE action IS NOT NULL", {"dataset": int(dataset_id), "row": int(row_idx)}))
    return None if row is None else {"action": row[0], "text": row[1], "reviewer": row[2]}


def row_versions(cur, dataset_id: int, rows) -> dict[int, int]:
    """{row_idx: version} of those rows that have log entries (version: the id of the row's latest entry); what a
    screen passes back as `expected` with a decision on rows it shows."""
    return {int(r): int(v) for r, v in cur.execute(
        f"SELECT row_idx, id FROM ({current_sql(IN_ROWS)})",
        {"dataset": int(dataset_id), "rows": as_rows(rows).tolist()}).fetchall()}


def decision_log(cur, dataset_id: int) -> pd.DataFrame:
    """Every entry of the log of a dataset, oldest first."""
    return cur.execute("SELECT id, row_idx, action, new_text, reviewer, ts, prev_action, prev_text, thresholds, "
                       "batch_id, undoes, base_id, settles FROM decisions WHERE dataset_id = ? ORDER BY id",
                       [int(dataset_id)]).df()


def _check_rows(cur, dataset_id: int, rows: np.ndarray) -> None:
    found = first(cur.execute("SELECT n_rows FROM datasets WHERE id = ?", [int(dataset_id)]))
    if found is None:
        raise ClearError(f"no dataset with id {dataset_id}")
    bad = rows[(rows < 0) | (rows >= found[0])]
    if len(bad):
        raise ClearError(f"row {int(bad[0])} is not a row of dataset {dataset_id} (it has {found[0]} rows)")


def _check_versions(cur, dataset_id: int, expected: dict) -> None:
    """Raise DecisionConflict for the rows whose latest entry is no longer the one the screen showed."""
    rows = sorted(int(r) for r in expected)
    now = cur.execute(f"SELECT row_idx, id, action, text, reviewer, ts FROM ({current_sql(IN_ROWS)})",
                      {"dataset": int(dataset_id), "rows": rows}).fetchall()
    latest = {int(r[0]): r[1:] for r in now}
    conflicts = []
    for row in rows:
        seen, got = expected[row], latest.get(row)
        if (None if got is None else int(got[0])) != (None if seen is None else int(seen)):
            conflicts.append({"row_idx": row, "seen": seen,
                              "theirs": dict(zip(("id", "action", "text", "reviewer", "ts"), got))})
    if conflicts:
        raise DecisionConflict(conflicts)


def _texts(cur, dataset_id: int, rows: np.ndarray, action: str, new_text) -> list:
    """The text each row's decision stores: the edit, the accepted proposal, or nothing for keep / drop."""
    if action in ("keep", "drop"):
        if new_text is not None:
            raise ClearError(f"a '{action}' decision takes no text")
        return [None] * len(rows)
    if action == "edit":
        if new_text is None:
            raise ClearError("an 'edit' decision needs the new response text")
        texts = [new_text] * len(rows) if isinstance(new_text, str) else list(new_text)
        if len(texts) != len(rows) or not all(isinstance(t, str) for t in texts):
            raise ClearError("edit texts must be one string, or one string per row")
        return texts
    if new_text is not None:
        raise ClearError("an 'accept' decision takes the row's latest proposal; it takes no text")
    found = dict(cur.execute(f"SELECT row_idx, candidate FROM ({LATEST_PROPOSALS}) "
                             "WHERE row_idx IN (SELECT unnest($rows::INTEGER[]))",
                             {"dataset": int(dataset_id), "rows": rows.tolist()}).fetchall())
    missing = [r for r in rows.tolist() if r not in found]
    if missing:
        raise ClearError(f"row {missing[0]} has no proposal to accept"
                         + (f" (and {len(missing) - 1} more rows)" if len(missing) > 1 else ""))
    return [found[r] for r in rows.tolist()]


def record_decisions(cur, dataset_id: int, rows, action: str, reviewer: str, new_text=None,
                     thresholds=None, expected: dict | None = None, settles: bool = False) -> int:
    """Append one entry per row (one batch id for them all) and return the batch id; committed before returning.

    action: keep, drop, accept (stores the row's latest proposal as the text) or edit (new_text: one string, or
    one per row). thresholds: the thresholds in force (a Thresholds, a dict or JSON), kept for the audit trail.
    expected: {row_idx: version the reviewer's screen showed, None for a row it showed without entries} (see
    `row_versions`); when a row's version differs now, DecisionConflict is raised and nothing is written. Rows not
    in `expected` are not checked (the CLI, a bulk action over a filter read just now). settles: the entry settles
    reviewers' disagreement on the row (the adjudication queue's decisions).
    The caller holds the workspace's decision lock (`Workspace` does): DuckDB lets two transactions append at once,
    each reading the state before the other's entries, so the lock is what makes an entry's prev_* the state it
    really replaced, and the version check final.
    """
    if action not in ACTIONS:
        raise UnknownNameError("decision action", action, ACTIONS)
    if not reviewer:
        raise ClearError("a decision needs a reviewer name")
    rows = as_rows(rows)
    if len(rows) == 0:
        raise ClearError("no rows to decide")
    if len(rows) > 1 and np.any(np.diff(np.sort(rows)) == 0):
        raise ClearError("a row appears twice in one decision")
    with transaction(cur):
        _check_rows(cur, dataset_id, rows)
        if expected:
            _check_versions(cur, dataset_id, {int(r): v for r, v in expected.items()})
        texts = _texts(cur, dataset_id, rows, action, new_text)
        batch = _next_batch(cur)
        _append(cur, dataset_id, rows, texts, [None] * len(rows), action, reviewer, to_json(thresholds), batch,
                bool(settles))
    return batch


def _next_batch(cur) -> int:
    return int(cur.execute("SELECT nextval('decision_batches')").fetchall()[0][0])


def _append(cur, dataset_id: int, rows, texts, undoes, action: str, reviewer: str, thresholds, batch: int,
            settles: bool = False) -> None:
    """Append one entry per row, in the order given; each records the row's standing state as its prev_*."""
    frame = pd.DataFrame({"pos": np.arange(len(rows)), "row_idx": np.asarray(rows, dtype=np.int32),
                          # typed columns: an all-None object column would arrive as typed NULL
                          "new_text": pd.array(list(texts), dtype="string"),
                          "undoes": pd.array(list(undoes), dtype="Int64")})
    with registered(cur, "_clear_decisions", frame):
        cur.execute(_APPEND, {"dataset": int(dataset_id), "action": action, "reviewer": reviewer, "ts": utcnow(),
                              "thresholds": thresholds, "batch": batch, "settles": settles})


def last_action(cur, dataset_id: int, reviewer: str, before: int | None = None) -> dict | None:
    """What this reviewer's next batch undo would address, or None when they have nothing left to undo:
    {"batch_id", "action", "rows" (its open rows), "standing" (those an undo takes back), "taken" (one dict per
    other row: {"row_idx", "action", "reviewer"}, the decision another reviewer put on it since)}.
    before: look only at batches older than this one (to step past a batch others have wholly changed)."""
    params = {"dataset": int(dataset_id), "reviewer": reviewer, "before": before}
    batch = first(cur.execute(_LAST_BATCH, params))[0]
    if batch is None:
        return None
    params = {"dataset": int(dataset_id), "batch": int(batch)}
    entries = cur.execute(f"""
        WITH tops AS ({STANDING_SQL})
        SELECT o.row_idx, o.action, o.id IN (SELECT id FROM tops), s.action, s.reviewer
        FROM ({OPEN_SQL}) o LEFT JOIN ({current_sql()}) s ON s.row_idx = o.row_idx
        WHERE o.batch_id = $batch ORDER BY o.row_idx""", params).fetchall()
    return {"batch_id": int(batch), "action": entries[0][1], "rows": [int(e[0]) for e in entries],
            "standing": [int(e[0]) for e in entries if e[2]],
            "taken": [{"row_idx": int(e[0]), "action": e[3], "reviewer": e[4]} for e in entries if not e[2]]}


def undo(cur, dataset_id: int, reviewer: str, row_idx: int | None = None, batch_id: int | None = None) -> list[int]:
    """Undo this reviewer's own decisions; appends 'undo' entries and returns the rows undone (empty when there is
    nothing of theirs to undo).

    row_idx: the row's latest standing decision, when it is this reviewer's (another reviewer's is theirs to undo).
    Otherwise the standing rows of one batch of this reviewer: `batch_id`, or their last action (`last_action`);
    a row of it that another reviewer decided since keeps that decision.
    The caller holds the workspace's decision lock, as for `record_decisions`."""
    if not reviewer:
        raise ClearError("an undo needs a reviewer name")
    params: dict = {"dataset": int(dataset_id), "reviewer": reviewer}
    with transaction(cur):
        if row_idx is not None:
            params["row"] = int(row_idx)
            where = "row_idx = $row"
        else:
            if batch_id is None:
                batch_id = first(cur.execute(_LAST_BATCH, {**params, "before": None}))[0]
                if batch_id is None:
                    return []
            params["batch"] = int(batch_id)
            where = "batch_id = $batch"
        tops = cur.execute(f"SELECT id, row_idx, prev_text FROM ({STANDING_SQL}) "
                           f"WHERE reviewer = $reviewer AND {where} ORDER BY row_idx", params).fetchall()
        if not tops:
            return []
        ids, rows, restored = zip(*tops)  # an undo's new_text is the text it restores
        _append(cur, dataset_id, rows, restored, ids, "undo", reviewer, None, _next_batch(cur))
    return sorted(int(r) for r in rows)


def changed_since(cur, dataset_id: int, since: int | None, rows) -> tuple[int, bool]:
    """(the log's latest entry id, whether an entry after `since` touched a row outside `rows`): lets a screen that
    keeps counts for a window of rows know when to read them again. Reads only the entries after `since`."""
    latest, outside = first(cur.execute(
        "SELECT max(id), count(*) FILTER (WHERE row_idx NOT IN (SELECT unnest($rows::INTEGER[]))) FROM decisions "
        "WHERE dataset_id = $dataset AND id > $since",
        {"dataset": int(dataset_id), "since": -1 if since is None else int(since),
         "rows": as_rows(rows).tolist()}))
    return (since if latest is None else int(latest)), bool(outside)
