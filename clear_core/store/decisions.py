"""The append-only decision log: keep / drop / accept / edit, and undo.

Nothing in `decisions` is ever updated or deleted. The state of a row is its latest entry: for keep, drop, accept
and edit that entry's action and text; for an undo, the state before the entry it undid (that entry's prev_action
and prev_text). Each entry records the state it replaced, so undo needs no replay. Undo pops a stack per row: it
undoes the row's latest entry that is not an undo and not undone yet, so repeated undos walk further back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ClearError, UnknownNameError
from ..names import ACTIONS
from .db import as_rows, first, registered, to_json, transaction, utcnow
from .views import IN_ROWS, LATEST_PROPOSALS, current_sql

# Per row, the entry an undo would undo: the latest entry that is neither an undo nor undone.
_UNDO_TOPS = """
    SELECT d.id, d.row_idx, d.action, d.new_text, d.prev_action, d.prev_text, d.batch_id, d.reviewer
    FROM decisions d
    WHERE d.dataset_id = $dataset AND d.action <> 'undo'
      AND d.id NOT IN (SELECT undoes FROM decisions WHERE dataset_id = $dataset AND undoes IS NOT NULL)
    QUALIFY row_number() OVER (PARTITION BY d.row_idx ORDER BY d.id DESC) = 1"""

# The state each entry replaces is read by the statement that appends it (prev_* from the rows' standing state).
_APPEND = f"""
    INSERT INTO decisions (dataset_id, row_idx, action, new_text, reviewer, ts, prev_action, prev_text, thresholds,
                           batch_id, undoes)
    SELECT $dataset, b.row_idx, $action, b.new_text, $reviewer, $ts, s.action, s.text, $thresholds, $batch, b.undoes
    FROM _clear_decisions b
    LEFT JOIN ({current_sql("AND row_idx IN (SELECT row_idx FROM _clear_decisions)")}) s ON s.row_idx = b.row_idx
    ORDER BY b.pos"""


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


def decision_log(cur, dataset_id: int) -> pd.DataFrame:
    """Every entry of the log of a dataset, oldest first."""
    return cur.execute("SELECT id, row_idx, action, new_text, reviewer, ts, prev_action, prev_text, thresholds, "
                       "batch_id, undoes FROM decisions WHERE dataset_id = ? ORDER BY id", [int(dataset_id)]).df()


def _check_rows(cur, dataset_id: int, rows: np.ndarray) -> None:
    found = first(cur.execute("SELECT n_rows FROM datasets WHERE id = ?", [int(dataset_id)]))
    if found is None:
        raise ClearError(f"no dataset with id {dataset_id}")
    bad = rows[(rows < 0) | (rows >= found[0])]
    if len(bad):
        raise ClearError(f"row {int(bad[0])} is not a row of dataset {dataset_id} (it has {found[0]} rows)")


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
                     thresholds=None) -> int:
    """Append one entry per row (one batch id for them all) and return the batch id; committed before returning.

    action: keep, drop, accept (stores the row's latest proposal as the text) or edit (new_text: one string, or
    one per row). thresholds: the thresholds in force (a Thresholds, a dict or JSON), kept for the audit trail.
    The caller holds the workspace's decision lock (`Workspace` does): DuckDB lets two transactions append at once,
    each reading the state before the other's entries, so the lock is what makes an entry's prev_* the state it
    really replaced.
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
        texts = _texts(cur, dataset_id, rows, action, new_text)
        batch = _next_batch(cur)
        _append(cur, dataset_id, rows, texts, [None] * len(rows), action, reviewer, to_json(thresholds), batch)
    return batch


def _next_batch(cur) -> int:
    return int(cur.execute("SELECT nextval('decision_batches')").fetchall()[0][0])


def _append(cur, dataset_id: int, rows, texts, undoes, action: str, reviewer: str, thresholds, batch: int) -> None:
    """Append one entry per row, in the order given; each records the row's standing state as its prev_*."""
    frame = pd.DataFrame({"pos": np.arange(len(rows)), "row_idx": np.asarray(rows, dtype=np.int32),
                          # typed columns: an all-None object column would arrive as typed NULL
                          "new_text": pd.array(list(texts), dtype="string"),
                          "undoes": pd.array(list(undoes), dtype="Int64")})
    with registered(cur, "_clear_decisions", frame):
        cur.execute(_APPEND, {"dataset": int(dataset_id), "action": action, "reviewer": reviewer, "ts": utcnow(),
                              "thresholds": thresholds, "batch": batch})


def undo(cur, dataset_id: int, reviewer: str, row_idx: int | None = None) -> list[int]:
    """Undo the latest active decision of a row, or (row_idx None) of every row of this reviewer's latest batch
    that still stands; appends 'undo' entries and returns the rows undone (empty when there is nothing to undo).
    The caller holds the workspace's decision lock, as for `record_decisions`."""
    if not reviewer:
        raise ClearError("an undo needs a reviewer name")
    params = {"dataset": int(dataset_id)}
    with transaction(cur):
        if row_idx is not None:
            params["row"] = int(row_idx)
            tops = cur.execute(f"SELECT id, row_idx, prev_text FROM ({_UNDO_TOPS}) WHERE row_idx = $row",
                               params).fetchall()
        else:
            params["reviewer"] = reviewer
            tops = cur.execute(f"""
                WITH tops AS ({_UNDO_TOPS})
                SELECT id, row_idx, prev_text FROM tops
                WHERE batch_id = (SELECT max(batch_id) FROM tops WHERE reviewer = $reviewer)
                ORDER BY row_idx""", params).fetchall()
        if not tops:
            return []
        ids, rows, restored = zip(*tops)  # an undo's new_text is the text it restores
        _append(cur, dataset_id, rows, restored, ids, "undo", reviewer, None, _next_batch(cur))
    return sorted(int(r) for r in rows)
