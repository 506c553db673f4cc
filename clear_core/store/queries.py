"""Read-side queries of the app: what-if counts, distributions, the review queue, export rows.

Scores are in [0, 1], higher = more trustworthy; `confidence` is stored as a signal like the others. Every value is
a bound parameter; the only composed SQL is chosen from the fixed fragments below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UnknownNameError
from .db import arrow, first
from .decisions import CURRENT_DECISIONS

# The latest proposal per row of a dataset: from the newest run (of any kind) on that dataset that proposed one.
LATEST_PROPOSALS = """
    SELECT p.row_idx, p.candidate, p.source, p.judge_conf, p.confident, p.run_id
    FROM proposals p JOIN runs r ON r.id = p.run_id
    WHERE r.dataset_id = $dataset AND p.candidate IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY p.row_idx ORDER BY p.run_id DESC) = 1"""


def signals(cur, run_id: int) -> list[str]:
    """The signals a run has stored, `confidence` first, the others by name."""
    names = [r[0] for r in cur.execute("SELECT DISTINCT signal FROM scores WHERE run_id = ?", [int(run_id)]).fetchall()]
    return sorted(names, key=lambda s: (s != "confidence", s))


def scores_wide(cur, run_id: int, signals_: list[str] | None = None, raw: bool = False) -> pd.DataFrame:
    """DataFrame[row_idx, <signal>...] of a run, one row per scored row, in row order (raw values with raw=True)."""
    names = list(signals_) if signals_ is not None else signals(cur, run_id)
    column = "raw" if raw else "value"
    params: dict = {"run": int(run_id)}
    selects = []
    for i, name in enumerate(names):  # aliases are positional; the signal names themselves are bound values
        params[f"s{i}"] = name
        selects.append(f", max({column}) FILTER (WHERE signal = $s{i}) AS s{i}")
    frame = cur.execute(f"SELECT row_idx{''.join(selects)} FROM scores WHERE run_id = $run "
                        "GROUP BY row_idx ORDER BY row_idx", params).df()
    return frame.rename(columns={f"s{i}": name for i, name in enumerate(names)})


# Rows of the run's dataset whose latest proposal is confident (judge_conf >= $eta): confident proposals with no
# newer proposal for the same row. Filtering on eta before looking for newer proposals keeps this cheap.
_CONFIDENT_LATEST = """
    SELECT p.row_idx FROM proposals p
    WHERE p.run_id IN (SELECT id FROM runs WHERE dataset_id = (SELECT dataset_id FROM runs WHERE id = $run))
      AND p.candidate IS NOT NULL AND p.judge_conf >= $eta
      AND NOT EXISTS (SELECT 1 FROM proposals q
                      WHERE q.row_idx = p.row_idx AND q.run_id > p.run_id AND q.candidate IS NOT NULL
                        AND q.run_id IN (SELECT id FROM runs
                                         WHERE dataset_id = (SELECT dataset_id FROM runs WHERE id = $run)))"""


def band_counts(cur, run_id: int, t_drop: float, t_keep: float, eta: float = 0.8) -> dict:
    """What-if counts for thresholds, in one query: keep (>= t_keep), review, drop (< t_drop), confident_fix (rows
    below t_keep whose latest proposal has judge_conf >= eta) and total (rows with a confidence)."""
    row = first(cur.execute(f"""
        SELECT count(*) FILTER (WHERE value >= $t_keep),
               count(*) FILTER (WHERE value >= $t_drop AND value < $t_keep),
               count(*) FILTER (WHERE value < $t_drop),
               (SELECT count(*) FROM scores WHERE run_id = $run AND signal = 'confidence' AND value < $t_keep
                  AND row_idx IN ({_CONFIDENT_LATEST})),
               count(value)
        FROM scores WHERE run_id = $run AND signal = 'confidence'""",
        {"run": int(run_id), "t_drop": float(t_drop), "t_keep": float(t_keep), "eta": float(eta)}))
    return dict(zip(("keep", "review", "drop", "confident_fix", "total"), (int(v) for v in row)))


def histogram(cur, run_id: int, signal: str, bins: int = 40, lo: float = 0.0, hi: float = 1.0) -> pd.DataFrame:
    """DataFrame[bin_lo, bin_hi, count]: equal-width bins over [lo, hi] (the last bin includes hi), as numpy's."""
    if bins < 1 or not hi > lo:
        raise ValueError(f"histogram needs bins >= 1 and hi > lo, got bins={bins}, lo={lo}, hi={hi}")
    rows = cur.execute("""
        SELECT least(floor((value - $lo) * ($bins / ($hi - $lo))), $bins - 1)::INTEGER AS b, count(*) AS n
        FROM scores WHERE run_id = $run AND signal = $signal AND value >= $lo AND value <= $hi
        GROUP BY b""", {"run": int(run_id), "signal": signal, "bins": int(bins), "lo": float(lo),
                        "hi": float(hi)}).fetchall()
    counts = np.zeros(bins, dtype=np.int64)
    for b, n in rows:
        counts[b] = n
    edges = np.linspace(lo, hi, bins + 1)
    return pd.DataFrame({"bin_lo": edges[:-1], "bin_hi": edges[1:], "count": counts})


def quantile(cur, run_id: int, signal: str, q):
    """Linear-interpolated quantile(s) of a signal (numpy's default method); None when the run has no values."""
    many = np.ndim(q) > 0
    qs = [float(x) for x in np.atleast_1d(q)]
    value = cur.execute("SELECT quantile_cont(value, $q) FROM scores WHERE run_id = $run AND signal = $signal "
                        "AND value IS NOT NULL", {"run": int(run_id), "signal": signal, "q": qs}).fetchall()[0][0]
    if value is None:
        return None
    return [float(v) for v in value] if many else float(value[0])


_BANDS = {
    None: "TRUE", "all": "TRUE",
    "keep": "c.value >= $t_keep",
    "review": "c.value >= $t_drop AND c.value < $t_keep",
    "drop": "c.value < $t_drop",
    "flagged": "c.value < $t_keep",  # review + drop
    "unscored": "c.value IS NULL",
}
_ORDERS = {
    "confidence": "c.value ASC NULLS LAST, e.row_idx",  # least trustworthy first: the review order
    "-confidence": "c.value DESC NULLS LAST, e.row_idx",
    "row": "e.row_idx",
    "judge": "p.judge_conf DESC NULLS LAST, e.row_idx",
}
_ACTIONS = ("keep", "drop", "accept", "edit")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _review_from(dataset_id: int, run_id: int | None, band=None, t_drop=None, t_keep=None, signal_ranges=None,
                 search=None, has_proposal=None, undecided_only=False, action=None) -> tuple[str, dict]:
    """FROM + WHERE of the review queue, with its parameters; shared by review_queue and review_count."""
    if band not in _BANDS:
        raise UnknownNameError("band", str(band), [b for b in _BANDS if b])
    if action is not None and action not in _ACTIONS:
        raise UnknownNameError("decision action", action, _ACTIONS)
    params: dict = {"dataset": int(dataset_id), "run": None if run_id is None else int(run_id)}
    where = [_BANDS[band]]
    if band in ("keep", "review", "flagged"):
        params["t_keep"] = float(t_keep if t_keep is not None else 0.5)
    if band in ("review", "drop"):
        params["t_drop"] = float(t_drop if t_drop is not None else 0.0)
    for i, (signal, (lo, hi)) in enumerate((signal_ranges or {}).items()):
        params.update({f"sig{i}": signal, f"lo{i}": float(lo), f"hi{i}": float(hi)})
        where.append(f"e.row_idx IN (SELECT row_idx FROM scores WHERE run_id = $run AND signal = $sig{i} "
                     f"AND value BETWEEN $lo{i} AND $hi{i})")
    if search:
        params["search"] = f"%{_escape_like(search)}%"
        where.append("(e.prompt_text ILIKE $search ESCAPE '\\' OR e.response ILIKE $search ESCAPE '\\' "
                     "OR p.candidate ILIKE $search ESCAPE '\\')")
    if has_proposal is not None:
        where.append("p.candidate IS NOT NULL" if has_proposal else "p.candidate IS NULL")
    if undecided_only:
        where.append("d.action IS NULL")
    if action is not None:
        params["action"] = action
        where.append("d.action = $action")
    sql = f"""
        FROM examples e
        LEFT JOIN (SELECT row_idx, value FROM scores WHERE run_id = $run AND signal = 'confidence') c
               ON c.row_idx = e.row_idx
        LEFT JOIN ({LATEST_PROPOSALS}) p ON p.row_idx = e.row_idx
        LEFT JOIN ({CURRENT_DECISIONS}) d ON d.row_idx = e.row_idx
        WHERE e.dataset_id = $dataset AND {' AND '.join(where)}"""
    return sql, params


def review_queue(cur, dataset_id: int, run_id: int | None, band=None, t_drop=None, t_keep=None,
                 signal_ranges: dict | None = None, search: str | None = None, has_proposal: bool | None = None,
                 undecided_only: bool = False, action: str | None = None, order: str = "confidence",
                 limit: int = 50, offset: int = 0) -> pd.DataFrame:
    """One page of rows to review with their prompt, response, proposal, decision, confidence and signal columns.

    band: None/"all", "keep", "review", "drop", "flagged" (review + drop) or "unscored"; signal_ranges:
    {signal: (lo, hi)} inclusive; search: case-insensitive substring of prompt, response or proposal; order:
    "confidence" (least trustworthy first), "-confidence", "row" or "judge" (most confident proposals first).
    """
    if order not in _ORDERS:
        raise UnknownNameError("order", order, list(_ORDERS))
    body, params = _review_from(dataset_id, run_id, band, t_drop, t_keep, signal_ranges, search, has_proposal,
                                undecided_only, action)
    params.update(limit=int(limit), offset=int(offset))
    page = cur.execute(f"""
        SELECT e.row_idx, e.row_id, e.line, e.prompt, e.prompt_text, e.response, c.value AS confidence,
               p.candidate AS proposal, p.source AS proposal_source, p.judge_conf, p.confident,
               d.action AS decision, d.text AS decision_text,
               CASE WHEN d.action IS NOT NULL THEN d.reviewer END AS decided_by
        {body} ORDER BY {_ORDERS[order]} LIMIT $limit OFFSET $offset""", params).df()
    if run_id is None or page.empty:
        return page
    long = cur.execute("SELECT row_idx, signal, value FROM scores WHERE run_id = $run AND signal <> 'confidence' "
                       "AND row_idx IN (SELECT unnest($rows::INTEGER[]))",
                       {"run": int(run_id), "rows": page["row_idx"].astype("int64").tolist()}).df()
    if long.empty:
        return page
    wide = long.pivot_table(index="row_idx", columns="signal", values="value", aggfunc="first")
    wide = wide[sorted(wide.columns)]
    return page.merge(wide, left_on="row_idx", right_index=True, how="left")


def review_rows(cur, dataset_id: int, run_id: int | None, order: str = "row", **filters) -> np.ndarray:
    """Every row index review_queue would page through with the same filters (for bulk actions), as an array."""
    if order not in _ORDERS:
        raise UnknownNameError("order", order, list(_ORDERS))
    body, params = _review_from(dataset_id, run_id, **filters)
    found = cur.execute(f"SELECT e.row_idx {body} ORDER BY {_ORDERS[order]}", params).fetchnumpy()["row_idx"]
    return np.asarray(found, dtype=np.int64)


def review_count(cur, dataset_id: int, run_id: int | None, **filters) -> int:
    """How many rows review_queue would page through with the same filters."""
    body, params = _review_from(dataset_id, run_id, **filters)
    return int(cur.execute(f"SELECT count(*) {body}", params).fetchall()[0][0])


def review_progress(cur, dataset_id: int, run_id: int | None, t_keep: float) -> dict:
    """Counts for the progress bar: reviewed (rows with a decision), flagged (confidence < t_keep),
    flagged_reviewed, total rows."""
    row = first(cur.execute(f"""
        SELECT count(d.action), count(*) FILTER (WHERE c.value < $t_keep),
               count(d.action) FILTER (WHERE c.value < $t_keep), count(*)
        FROM examples e
        LEFT JOIN (SELECT row_idx, value FROM scores WHERE run_id = $run AND signal = 'confidence') c
               ON c.row_idx = e.row_idx
        LEFT JOIN ({CURRENT_DECISIONS}) d ON d.row_idx = e.row_idx
        WHERE e.dataset_id = $dataset""",
        {"dataset": int(dataset_id), "run": None if run_id is None else int(run_id),
         "t_keep": float(t_keep)}))
    return dict(zip(("reviewed", "flagged", "flagged_reviewed", "total"), (int(v) for v in row)))


def export_frame(cur, dataset_id: int, run_id: int | None = None) -> pd.DataFrame:
    """Every row of a dataset with what export needs: [row_idx, row_id, original, response, confidence, decision,
    decision_text], in row order. Columns are Arrow-backed (a million rows convert without a Python object each)."""
    table = arrow(cur, f"""
        SELECT e.row_idx, e.row_id, e.original, e.response, c.value AS confidence, d.action AS decision,
               d.text AS decision_text
        FROM examples e
        LEFT JOIN (SELECT row_idx, value FROM scores WHERE run_id = $run AND signal = 'confidence') c
               ON c.row_idx = e.row_idx
        LEFT JOIN ({CURRENT_DECISIONS}) d ON d.row_idx = e.row_idx
        WHERE e.dataset_id = $dataset ORDER BY e.row_idx""",
        {"dataset": int(dataset_id), "run": None if run_id is None else int(run_id)})
    return table.to_pandas(types_mapper=pd.ArrowDtype)
