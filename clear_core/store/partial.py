"""The row signals a run has committed so far, for the provisional view while it goes on (no `confidence` yet).

The provisional value of a row is the plain mean of its committed signal values: uncalibrated (the run's weights
come from its last stage), but in [0, 1] with higher = more trustworthy like every score, so the rows it ranks
lowest are worth a first look. Every value is a bound parameter.
"""

from __future__ import annotations

import pandas as pd

# Per committed row: the mean of its signals so far and how many there are (confidence excluded: it comes last).
_MEANS = """
    SELECT row_idx, avg(value) AS provisional, count(*) AS n_signals FROM scores
    WHERE run_id = $run AND signal <> 'confidence' AND value IS NOT NULL AND NOT isnan(value)
    GROUP BY row_idx"""


def provisional_rows(ws, run_id: int, limit: int = 50, offset: int = 0) -> tuple[pd.DataFrame, int]:
    """(page, rows with committed signals): the page's rows lowest provisional value first (then by row), with
    row_idx, provisional, n_signals, prompt_text, response and one column per committed signal."""
    cur = ws.cursor()
    params = {"run": int(run_id), "limit": int(limit), "offset": int(offset)}
    page = cur.execute(f"""
        WITH m AS ({_MEANS})
        SELECT m.row_idx, m.provisional, m.n_signals, e.prompt_text, e.response, (SELECT count(*) FROM m) AS total
        FROM m JOIN examples e ON e.row_idx = m.row_idx
                              AND e.dataset_id = (SELECT dataset_id FROM runs WHERE id = $run)
        ORDER BY m.provisional, m.row_idx LIMIT $limit OFFSET $offset""", params).df()
    if page.empty:
        total = int(cur.execute(f"SELECT count(*) FROM ({_MEANS})", {"run": int(run_id)}).fetchall()[0][0])
        return page.drop(columns="total"), total
    total = int(page["total"].iloc[0])
    values = cur.execute("""
        SELECT row_idx, signal, value FROM scores
        WHERE run_id = $run AND signal <> 'confidence' AND list_contains($rows, row_idx)""",
                         {"run": int(run_id), "rows": [int(r) for r in page["row_idx"]]}).df()
    wide = values.pivot(index="row_idx", columns="signal", values="value")
    wide = wide[sorted(wide.columns)].reset_index()
    wide.columns.name = None
    return page.drop(columns="total").merge(wide, on="row_idx", how="left"), total
