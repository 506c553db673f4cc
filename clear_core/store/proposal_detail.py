"""Read-side queries for Auto-Correct's proposals as the Review page explains them: one row's latest proposal with
its judge components and its correction run's settings, and the undecided rows whose latest proposal is confident
(what "accept all confident" touches). Values are bound parameters; the fragments are `views`'.
"""

from __future__ import annotations

import json

import numpy as np

from .views import DECIDED, IN_ROWS, latest_proposals_sql

COMPONENTS = ("judge_llm", "judge_dataset", "judge_scorer", "relabel_llm")  # correct.judging.STORED_SIGNALS


def proposal_detail(ws, dataset_id: int, row_idx: int) -> dict | None:
    """{candidate, source, judge_conf, confident, run_id, components: {name: value}, settings: the correction
    run's config} of the row's latest proposal; None without one."""
    cur = ws.cursor()
    found = cur.execute(f"SELECT row_idx, candidate, source, judge_conf, confident, run_id "
                        f"FROM ({latest_proposals_sql('AND p.row_idx = $row')})",
                        {"dataset": int(dataset_id), "row": int(row_idx)}).fetchone()
    if found is None:
        return None
    _, candidate, source, judge_conf, confident, run_id = found
    parts = cur.execute("SELECT signal, value FROM scores WHERE run_id = $run AND row_idx = $row "
                        "AND signal IN (SELECT unnest($names::VARCHAR[]))",
                        {"run": int(run_id), "row": int(row_idx), "names": list(COMPONENTS)}).fetchall()
    config = cur.execute("SELECT config FROM runs WHERE id = ?", [int(run_id)]).fetchone()[0]
    return {"candidate": candidate, "source": source, "judge_conf": judge_conf, "confident": bool(confident),
            "run_id": int(run_id), "components": {k: float(v) for k, v in parts},
            "settings": json.loads(config) if isinstance(config, str) else dict(config or {})}


def confident_undecided(ws, dataset_id: int, eta: float, rows=None) -> np.ndarray:
    """Rows (sorted) whose latest proposal has judge_conf >= eta and no standing decision; `rows` narrows them."""
    restrict = "" if rows is None else IN_ROWS.replace("row_idx", "p.row_idx")
    params = {"dataset": int(dataset_id), "eta": float(eta)}
    if rows is not None:
        params["rows"] = [int(r) for r in rows]
    found = ws.cursor().execute(
        f"SELECT row_idx FROM ({latest_proposals_sql(restrict)}) WHERE judge_conf >= $eta AND NOT isnan(judge_conf) "
        f"AND row_idx NOT IN ({DECIDED}) ORDER BY row_idx", params).fetchall()
    return np.array([r[0] for r in found], dtype=np.int64)
