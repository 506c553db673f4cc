"""SQL fragments the store modules share: a row's standing decision, its latest proposal, the band of a confidence.

Each is a fixed text (or built from fixed texts); values are bound parameters. Both the decision log
(`decisions.py`) and the read-side queries (`queries.py`) compose these, so neither imports the other.
"""

from __future__ import annotations

from ..filtering import DROP, KEEP, REVIEW

IN_ROWS = "AND row_idx IN (SELECT unnest($rows::INTEGER[]))"  # restricts a view to the rows bound as $rows


def current_sql(rows: str = "") -> str:
    """Effective state per row of dataset $dataset (rows whose state is "undecided" have action NULL).

    The state of a row is its latest entry: for keep, drop, accept and edit that entry's action and text; for an
    undo, the state before the entry it undid (that entry's prev_action and prev_text).
    rows: a fixed SQL fragment restricting the rows before the latest entry per row is picked (e.g. IN_ROWS);
    restricting first keeps one-row and one-window reads cheap when the log is long.
    """
    return f"""
    SELECT l.row_idx,
           CASE WHEN l.action = 'undo' THEN u.prev_action ELSE l.action END AS action,
           CASE WHEN l.action = 'undo' THEN u.prev_text ELSE l.new_text END AS text,
           l.reviewer, l.ts, l.id
    FROM (SELECT * FROM decisions WHERE dataset_id = $dataset {rows}
          QUALIFY row_number() OVER (PARTITION BY row_idx ORDER BY id DESC) = 1) l
    LEFT JOIN decisions u ON u.id = l.undoes"""


CURRENT_DECISIONS = current_sql()
DECIDED = f"SELECT row_idx FROM ({CURRENT_DECISIONS}) WHERE action IS NOT NULL"


def latest_proposals_sql(rows: str = "") -> str:
    """The latest proposal per row of dataset $dataset: from the newest run (of any kind) on that dataset that
    proposed one. rows: a fixed SQL fragment on p.row_idx that narrows the rows before the latest is picked."""
    return f"""
    SELECT p.row_idx, p.candidate, p.source, p.judge_conf, p.confident, p.run_id
    FROM proposals p JOIN runs r ON r.id = p.run_id
    WHERE r.dataset_id = $dataset AND p.candidate IS NOT NULL {rows}
    QUALIFY row_number() OVER (PARTITION BY p.row_idx ORDER BY p.run_id DESC) = 1"""


LATEST_PROPOSALS = latest_proposals_sql()


def band_sql(value: str) -> str:
    """The band code (filtering.KEEP / REVIEW / DROP) of a confidence column under $t_drop / $t_keep: the SQL twin
    of `filtering.band_codes`, integers because they compare faster than text.

    keep (>= t_keep), drop (< t_drop), review otherwise, NaN and NULL included (DuckDB orders NaN above every
    number, so keep excludes it explicitly; pandas reads NULL back as NaN, so both must share a band).
    value: a fixed column name.
    """
    return (f"CASE WHEN {value} >= $t_keep AND NOT isnan({value}) THEN {KEEP} WHEN {value} < $t_drop THEN {DROP} "
            f"ELSE {REVIEW} END")
