"""Reviewers as people: what each has decided, and the rows where their decisions differ (the adjudication queue).

Read from the decision log only. A reviewer's decision on a row is their latest entry on it that is not undone;
it counts whether or not it is the row's standing state (another reviewer may have decided after them). Entries of
the `auto` reviewer (`curate --auto`, decided from the confidence itself) are not a person's and are left out.
"""

from __future__ import annotations

import pandas as pd

from ..names import ACTIONS
from .decisions import OPEN_SQL, STANDING_SQL
from .views import current_sql

AUTO = "auto"  # reweight.AUTO_REVIEWER (the store does not import the layers above it)

# Per (row, reviewer) the reviewer's latest entry not undone, after the row's latest settling entry still in force
# ($since_settled: a settled disagreement is over; later decisions can start a new one).
_MINE = f"""
    WITH open AS (SELECT * FROM decisions WHERE id IN (SELECT id FROM ({OPEN_SQL})) AND reviewer <> '{AUTO}'),
         settled AS (SELECT row_idx, max(id) AS since FROM open WHERE settles GROUP BY row_idx)
    SELECT o.row_idx, o.reviewer, o.action, o.new_text AS text, o.ts, o.id
    FROM open o LEFT JOIN settled s ON s.row_idx = o.row_idx
    WHERE NOT $since_settled OR s.since IS NULL OR o.id >= s.since
    QUALIFY row_number() OVER (PARTITION BY o.row_idx, o.reviewer ORDER BY o.id DESC) = 1"""


def reviewer_progress(cur, dataset_id: int) -> pd.DataFrame:
    """One row per reviewer, most rows first: [reviewer, rows (decided by them), one count per action, standing
    (rows where their decision is the row's state now), last (their latest decision's time)]."""
    counts = ", ".join(f"count(*) FILTER (WHERE m.action = '{a}') AS {a}" for a in ACTIONS)
    return cur.execute(f"""
        SELECT m.reviewer, count(*) AS rows, {counts},
               count(*) FILTER (WHERE m.id IN (SELECT id FROM ({STANDING_SQL}))) AS standing, max(m.ts) AS last
        FROM ({_MINE}) m
        GROUP BY m.reviewer ORDER BY rows DESC, m.reviewer""", {"dataset": int(dataset_id),
                                                                 "since_settled": False}).df()


def disagreements(cur, dataset_id: int, limit: int | None = None) -> pd.DataFrame:
    """The adjudication queue: rows where reviewers' decisions differ (action, or text of an edit / accept) and no
    settling decision came after them. Long form, one line per (row, reviewer): [row_idx, reviewer, action, text,
    ts, id, version (the row's latest entry, what a settling decision passes as expected)], rows in row order
    (at most `limit` rows)."""
    return cur.execute(f"""
        WITH m AS ({_MINE}),
             rows AS (SELECT row_idx FROM m GROUP BY row_idx
                      HAVING count(DISTINCT action || ':' || coalesce(text, '')) > 1
                      ORDER BY row_idx LIMIT $limit)
        SELECT m.*, s.id AS version
        FROM m JOIN rows USING (row_idx) LEFT JOIN ({current_sql()}) s ON s.row_idx = m.row_idx
        ORDER BY m.row_idx, m.ts, m.reviewer""", {"dataset": int(dataset_id), "since_settled": True,
                                                  "limit": limit}).df()
