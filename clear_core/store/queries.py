"""Read-side queries of the app: what-if counts, distributions, the review queue, export rows.

Scores are in [0, 1], higher = more trustworthy; `confidence` is stored as a signal like the others. Every value is
a bound parameter; the only composed SQL is chosen from the fixed fragments below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UnknownNameError
from ..filtering import DROP, KEEP, REVIEW, band_codes
from ..names import ACTIONS
from .db import arrow, first
from .views import CURRENT_DECISIONS, DECIDED, LATEST_PROPOSALS, band_sql, current_sql, latest_proposals_sql


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


# Rows of the run's dataset whose latest proposal is confident (judge_conf >= $eta, never NaN): confident proposals
# with no newer proposal for the same row. Filtering on eta before looking for newer proposals keeps this cheap.
_CONFIDENT_LATEST = """
    SELECT p.row_idx FROM proposals p
    WHERE p.run_id IN (SELECT id FROM runs WHERE dataset_id = (SELECT dataset_id FROM runs WHERE id = $run))
      AND p.candidate IS NOT NULL AND p.judge_conf >= $eta AND NOT isnan(p.judge_conf)
      AND NOT EXISTS (SELECT 1 FROM proposals q
                      WHERE q.row_idx = p.row_idx AND q.run_id > p.run_id AND q.candidate IS NOT NULL
                        AND q.run_id IN (SELECT id FROM runs
                                         WHERE dataset_id = (SELECT dataset_id FROM runs WHERE id = $run)))"""
# The state of the runs of a run's dataset: every commit_batch, create_run and update_run changes it (updated_at,
# n_done, the count), so an unchanged stamp means unchanged scores and proposals. The last column counts running runs.
_RUNS_STAMP = """
    SELECT count(*), max(id), max(updated_at), sum(n_done), sum(n_failed), count(*) FILTER (WHERE status = 'running')
    FROM runs WHERE dataset_id = (SELECT dataset_id FROM runs WHERE id = $run)"""
# Per scored row with a latest proposal: its confidence and that proposal's judge_conf.
_FIX_CONFIDENCES = f"""
    SELECT coalesce(c.value, 'NaN'::DOUBLE) AS value, l.judge_conf
    FROM scores c JOIN ({latest_proposals_sql()}) l ON l.row_idx = c.row_idx
    WHERE c.run_id = $run AND c.signal = 'confidence' AND l.judge_conf IS NOT NULL"""


def band_counts(cur, run_id: int, t_drop: float, t_keep: float, eta: float = 0.8, cache: dict | None = None) -> dict:
    """What-if counts for thresholds: keep, review and drop (the bands of `filtering.band_codes`: NaN is review),
    confident_fix (rows not kept whose latest proposal has judge_conf >= eta) and total (rows with a confidence
    entry: keep + review + drop).

    With a `cache` and no run of the dataset running, the run's confidences are read once into arrays, kept while
    the runs of its dataset are unchanged: a new pair of thresholds then costs one lookup in the runs table and a few
    vector comparisons. While a run is running (its scores change with every batch) one query counts them.
    """
    stamp = first(cur.execute(_RUNS_STAMP, {"run": int(run_id)}))
    if cache is None or stamp[-1]:
        return _band_counts_sql(cur, run_id, t_drop, t_keep, eta)
    hit = cache.get(int(run_id))
    if hit is None or hit[0] != stamp:
        if len(cache) >= 4:
            cache.clear()
        hit = cache[int(run_id)] = (stamp, _band_arrays(cur, run_id))
    values, fix_values, fix_judge = hit[1]
    keep, review, drop = np.bincount(band_codes(values, float(t_drop), float(t_keep)), minlength=3).tolist()
    fixes = (band_codes(fix_values, float(t_drop), float(t_keep)) != KEEP) & (fix_judge >= float(eta))
    return {"keep": keep, "review": review, "drop": drop, "confident_fix": int(np.count_nonzero(fixes)),
            "total": int(len(values))}


def _band_arrays(cur, run_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confidences, confidences and judge_confs of the rows with a latest proposal) of a run; a NULL confidence
    reads as NaN (review, as in SQL), and a NaN judge_conf is never confident (it compares false)."""
    values = cur.execute("SELECT coalesce(value, 'NaN'::DOUBLE) AS value FROM scores WHERE run_id = $run "
                         "AND signal = 'confidence'", {"run": int(run_id)}).fetchnumpy()["value"]
    dataset = first(cur.execute("SELECT dataset_id FROM runs WHERE id = ?", [int(run_id)]))
    fixes = cur.execute(_FIX_CONFIDENCES, {"run": int(run_id), "dataset": dataset[0] if dataset else None}
                        ).fetchnumpy()
    return tuple(np.asarray(a, dtype=np.float64) for a in (values, fixes["value"], fixes["judge_conf"]))


def _band_counts_sql(cur, run_id: int, t_drop: float, t_keep: float, eta: float) -> dict:
    """band_counts in one query."""
    row = first(cur.execute(f"""
        SELECT count(*) FILTER (WHERE band = {KEEP}), count(*) FILTER (WHERE band = {REVIEW}),
               count(*) FILTER (WHERE band = {DROP}),
               count(*) FILTER (WHERE band <> {KEEP} AND row_idx IN ({_CONFIDENT_LATEST})),
               count(*)
        FROM (SELECT row_idx, value, {band_sql("value")} AS band FROM scores
              WHERE run_id = $run AND signal = 'confidence')""",
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


# A band holds the rows with a confidence entry (c.row_idx is NULL only for a row the run has none for, joined from
# examples), by the one band rule; "unscored" are the rows without a number, whether they have an entry or not.
_BANDS = {
    None: "TRUE", "all": "TRUE",
    "keep": f"c.row_idx IS NOT NULL AND {band_sql('c.value')} = {KEEP}",
    "review": f"c.row_idx IS NOT NULL AND {band_sql('c.value')} = {REVIEW}",
    "drop": f"c.row_idx IS NOT NULL AND {band_sql('c.value')} = {DROP}",
    "flagged": f"c.row_idx IS NOT NULL AND {band_sql('c.value')} <> {KEEP}",  # review + drop
    "unscored": "(c.value IS NULL OR isnan(c.value))",
}
_SCORED_BANDS = ("keep", "review", "drop", "flagged")  # bands that only hold rows with a confidence
# Orders over the key columns of _review_keys (row_idx, confidence, judge_conf); row_idx makes each one total.
_ORDERS = {
    "confidence": "confidence ASC NULLS LAST, row_idx",  # least trustworthy first: the review order
    "-confidence": "confidence DESC NULLS LAST, row_idx",
    "row": "row_idx",
    "judge": "judge_conf DESC NULLS LAST, row_idx",
}
_IN_PAGE = "= ANY($rows::INTEGER[])"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _review_keys(cur, dataset_id: int, run_id: int | None, band=None, t_drop=None, t_keep=None, signal_ranges=None,
                 search=None, has_proposal=None, undecided_only=False, action=None,
                 order: str = "row") -> tuple[str, dict]:
    """SELECT row_idx, confidence, judge_conf of every row in the review filter, with its parameters.

    A band that needs a confidence is read from the run's scores alone (rows 0 .. n_rows - 1 of the dataset);
    examples are joined only for a search and proposals only for a search or the judge order, the other filters
    being semi-joins on the small proposal and decision sets. Shared by the queue, its count and bulk actions.
    """
    if band not in _BANDS:
        raise UnknownNameError("band", str(band), [b for b in _BANDS if b])
    if action is not None and action not in ACTIONS:
        raise UnknownNameError("decision action", action, ACTIONS)
    if order not in _ORDERS:
        raise UnknownNameError("order", order, list(_ORDERS))
    params: dict = {"dataset": int(dataset_id), "run": None if run_id is None else int(run_id)}
    params["t_drop"] = float(t_drop if t_drop is not None else 0.0)
    params["t_keep"] = float(t_keep if t_keep is not None else max(0.5, params["t_drop"]))  # drop: only t_drop counts
    if band in _SCORED_BANDS and not search:
        row = "c.row_idx"
        source = "scores c"
        found = first(cur.execute("SELECT n_rows FROM datasets WHERE id = ?", [int(dataset_id)]))
        params["n_rows"] = int(found[0]) if found else 0
        where = ["c.run_id = $run", "c.signal = 'confidence'", "c.row_idx >= 0", "c.row_idx < $n_rows"]
    else:
        row = "e.row_idx"
        source = ("examples e LEFT JOIN (SELECT row_idx, value FROM scores WHERE run_id = $run "
                  "AND signal = 'confidence') c ON c.row_idx = e.row_idx")
        where = ["e.dataset_id = $dataset"]
    where.append(_BANDS[band])
    joined = bool(search) or order == "judge"
    if joined:
        source += f" LEFT JOIN ({LATEST_PROPOSALS}) p ON p.row_idx = {row}"
    for i, (signal, (lo, hi)) in enumerate((signal_ranges or {}).items()):
        params.update({f"sig{i}": signal, f"lo{i}": float(lo), f"hi{i}": float(hi)})
        where.append(f"{row} IN (SELECT row_idx FROM scores WHERE run_id = $run AND signal = $sig{i} "
                     f"AND value BETWEEN $lo{i} AND $hi{i})")
    if search:
        params["search"] = f"%{_escape_like(search)}%"
        where.append("(e.prompt_text ILIKE $search ESCAPE '\\' OR e.response ILIKE $search ESCAPE '\\' "
                     "OR p.candidate ILIKE $search ESCAPE '\\')")
    if has_proposal is not None:
        if joined:
            where.append("p.candidate IS NOT NULL" if has_proposal else "p.candidate IS NULL")
        else:
            where.append(f"{row} {'' if has_proposal else 'NOT '}IN (SELECT row_idx FROM ({LATEST_PROPOSALS}))")
    if undecided_only:
        where.append(f"{row} NOT IN ({DECIDED})")
    if action is not None:
        params["action"] = action
        where.append(f"{row} IN (SELECT row_idx FROM ({CURRENT_DECISIONS}) WHERE action = $action)")
    judge = "p.judge_conf" if joined else "NULL::DOUBLE"
    sql = (f"SELECT {row} AS row_idx, c.value AS confidence, {judge} AS judge_conf FROM {source} "
           f"WHERE {' AND '.join(where)}")
    return sql, {k: v for k, v in params.items() if f"${k}" in sql}  # DuckDB refuses unused parameters


def review_window(cur, dataset_id: int, run_id: int | None, band=None, t_drop=None, t_keep=None,
                  signal_ranges: dict | None = None, search: str | None = None, has_proposal: bool | None = None,
                  undecided_only: bool = False, action: str | None = None, order: str = "confidence",
                  limit: int = 50, offset: int = 0) -> tuple[pd.DataFrame, int]:
    """One page of rows to review and the number of rows in the whole filter, from one pass over the filter.

    The page holds each row's prompt, response, proposal, decision, confidence (in [0, 1], higher = more
    trustworthy) and signal columns. band: None/"all", "keep", "review", "drop", "flagged" (review + drop) or
    "unscored"; signal_ranges: {signal: (lo, hi)} inclusive; search: case-insensitive substring of prompt,
    response or proposal; order: "confidence" (least trustworthy first), "-confidence", "row" or "judge" (most
    confident proposals first).
    """
    keys, params = _review_keys(cur, dataset_id, run_id, band, t_drop, t_keep, signal_ranges, search, has_proposal,
                                undecided_only, action, order)
    top = cur.execute(f"""
        WITH k AS ({keys})
        SELECT row_idx, confidence, (SELECT count(*) FROM k) FROM k ORDER BY {_ORDERS[order]}
        LIMIT $limit OFFSET $offset""", {**params, "limit": int(limit), "offset": int(offset)}).fetchall()
    if top:
        total = int(top[0][2])
    else:  # past the end of the filter: the count comes from its own query
        total = int(cur.execute(f"SELECT count(*) FROM ({keys})", params).fetchall()[0][0])
    # The page's rows are read by their row numbers: only these rows' text is fetched from `examples`.
    page = cur.execute(f"""
        WITH w AS (SELECT unnest($rows::INTEGER[]) AS row_idx, unnest($conf::DOUBLE[]) AS confidence,
                          unnest(range(len($rows::INTEGER[]))) AS pos)
        SELECT w.row_idx, e.row_id, e.line, e.prompt, e.prompt_text, e.response, w.confidence,
               p.candidate AS proposal, p.source AS proposal_source, p.judge_conf, p.confident,
               d.action AS decision, d.text AS decision_text,
               CASE WHEN d.action IS NOT NULL THEN d.reviewer END AS decided_by
        FROM w JOIN examples e ON e.dataset_id = $dataset AND e.row_idx = w.row_idx
        LEFT JOIN ({latest_proposals_sql('AND p.row_idx ' + _IN_PAGE)}) p ON p.row_idx = w.row_idx
        LEFT JOIN ({current_sql('AND row_idx ' + _IN_PAGE)}) d ON d.row_idx = w.row_idx
        ORDER BY w.pos""", {"dataset": int(dataset_id), "rows": [r[0] for r in top],
                            "conf": [r[1] for r in top]}).df()
    if run_id is None or page.empty:
        return page, total
    long = cur.execute("SELECT row_idx, signal, value FROM scores WHERE run_id = $run AND signal <> 'confidence' "
                       "AND row_idx IN (SELECT unnest($rows::INTEGER[]))",
                       {"run": int(run_id), "rows": page["row_idx"].astype("int64").tolist()}).df()
    if long.empty:
        return page, total
    wide = long.pivot_table(index="row_idx", columns="signal", values="value", aggfunc="first")
    wide = wide[sorted(wide.columns)]
    return page.merge(wide, left_on="row_idx", right_index=True, how="left"), total


def review_queue(cur, dataset_id: int, run_id: int | None, **filters) -> pd.DataFrame:
    """One page of rows to review: review_window without the count (same filters, order, limit and offset)."""
    return review_window(cur, dataset_id, run_id, **filters)[0]


def review_rows(cur, dataset_id: int, run_id: int | None, order: str = "row", **filters) -> np.ndarray:
    """Every row index review_queue would page through with the same filters (for bulk actions), as an array."""
    keys, params = _review_keys(cur, dataset_id, run_id, **filters, order=order)
    found = cur.execute(f"SELECT row_idx FROM ({keys}) ORDER BY {_ORDERS[order]}", params).fetchnumpy()["row_idx"]
    return np.asarray(found, dtype=np.int64)


def review_count(cur, dataset_id: int, run_id: int | None, **filters) -> int:
    """How many rows review_queue would page through with the same filters."""
    keys, params = _review_keys(cur, dataset_id, run_id, **filters)
    return int(cur.execute(f"SELECT count(*) FROM ({keys})", params).fetchall()[0][0])


def review_progress(cur, dataset_id: int, run_id: int | None, t_keep: float) -> dict:
    """Counts for the progress bar: reviewed (rows with a decision), flagged (not in the keep band),
    flagged_reviewed, total rows. Reads the run's confidences and the decision log, not the rows themselves."""
    found = first(cur.execute("SELECT n_rows FROM datasets WHERE id = ?", [int(dataset_id)]))
    n_rows = int(found[0]) if found else 0
    row = first(cur.execute(f"""
        WITH d AS ({DECIDED}),
             f AS (SELECT row_idx FROM scores WHERE run_id = $run AND signal = 'confidence'
                     AND {band_sql("value")} <> {KEEP}
                     AND row_idx >= 0 AND row_idx < $n_rows)
        SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM f),
               (SELECT count(*) FROM f WHERE row_idx IN (SELECT row_idx FROM d)), $n_rows""",
        {"dataset": int(dataset_id), "run": None if run_id is None else int(run_id),
         "t_keep": float(t_keep), "t_drop": float(t_keep), "n_rows": n_rows}))
    return dict(zip(("reviewed", "flagged", "flagged_reviewed", "total"), (int(v) for v in row)))


def export_frame(cur, dataset_id: int, run_id: int | None = None, text: bool = True) -> pd.DataFrame:
    """Every row of a dataset with what export needs: [row_idx, row_id, original, response, confidence, scored,
    decision, decision_text], in row order (text=False: [row_idx, confidence, decision] only, what its counts
    need). scored: the run has a confidence entry for the row (its value may still be NULL). Columns are
    Arrow-backed (a million rows convert without a Python object each)."""
    columns = (("e.row_id, e.original, e.response, " if text else "") + "c.value AS confidence, "
               + ("c.row_idx IS NOT NULL AS scored, " if text else "") + "d.action AS decision")
    table = arrow(cur, f"""
        SELECT e.row_idx, {columns}{", d.text AS decision_text" if text else ""}
        FROM examples e
        LEFT JOIN (SELECT row_idx, value FROM scores WHERE run_id = $run AND signal = 'confidence') c
               ON c.row_idx = e.row_idx
        LEFT JOIN ({CURRENT_DECISIONS}) d ON d.row_idx = e.row_idx
        WHERE e.dataset_id = $dataset ORDER BY e.row_idx""",
        {"dataset": int(dataset_id), "run": None if run_id is None else int(run_id)})
    return table.to_pandas(types_mapper=pd.ArrowDtype)
