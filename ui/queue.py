"""The Review page's queue: a window of rows read ahead from the store, checked against the live decisions.

The store's queue query sorts the whole filter; running it on every keystroke would cost tens of ms on a
million rows. So WINDOW rows are read at once (with the filter's count, in one pass), and on every rerun the
window's rows are checked against their current decisions (read fresh, never cached): a row someone else decided
meanwhile is skipped ("undecided only") or shown with its new state, and the counts and progress are corrected by
what changed inside the window. A change outside the window (another reviewer's bulk action, an undo) is seen in
the log's newest entries, and the counts are read again.
"""

from __future__ import annotations

import streamlit as st

WINDOW = 50


def _load(s, ws, ds_id: int, run_id: int, filters: dict, sig: str, offset: int, i: int = 0) -> dict:
    log_id = ws.changed_since(ds_id, None, [])[0]  # before the counts: a decision in between is read again
    frame, count = ws.review_window(ds_id, run_id, **filters, limit=WINDOW, offset=offset)
    frame = frame.reset_index(drop=True)
    s["_queue"] = {"sig": sig, "offset": offset, "frame": frame, "i": i, "count": count, "log_id": log_id,
                   "then": frame["decision"].notna().to_numpy(),  # what the counts were read with
                   "progress": ws.review_progress(ds_id, run_id, filters["t_keep"])}
    return s["_queue"]


def _recount(ws, ds_id: int, run_id: int, filters: dict, q: dict, decided: dict) -> None:
    """Read the counts again when the log changed outside the window since they were read."""
    rows = q["frame"]["row_idx"].astype(int).tolist()
    q["log_id"], outside = ws.changed_since(ds_id, q["log_id"], rows)
    if outside:
        q["count"] = ws.review_count(ds_id, run_id, **filters)
        q["progress"] = ws.review_progress(ds_id, run_id, filters["t_keep"])
        q["then"] = q["frame"]["row_idx"].astype(int).isin(list(decided)).to_numpy()


def _decided(ws, ds_id: int, q: dict) -> dict:
    """{row_idx: (action, text, reviewer)} of the window's rows that have a decision now."""
    rows = q["frame"]["row_idx"].astype(int).tolist()
    if not rows:
        return {}
    current = ws.current_decisions(ds_id, rows=rows)
    return {int(r): (a, t, who) for r, a, t, who in
            current[["row_idx", "action", "text", "reviewer"]].itertuples(index=False)}


def reset(focus: list[int] | None = None) -> None:
    """Read the queue again on the next rerun (after a bulk action or an undo, or to start over); focus: rows to
    show, the first of them in queue order, when the window read holds one."""
    s = st.session_state
    s.pop("_queue", None)
    s["editing"], s["_queue_focus"] = None, focus


def view(ws, ds_id: int, run_id: int, filters: dict, s=None) -> dict:
    """What to show now: {"row": Series or None (end of the queue), "position", "count", "progress"}.

    s: where the window lives between reruns (this session's st.session_state by default)."""
    s = st.session_state if s is None else s
    sig = repr(sorted(filters.items()))
    q = s.get("_queue")
    if q is None or q["sig"] != sig:
        q = _load(s, ws, ds_id, run_id, filters, sig, 0)
        focus = s.pop("_queue_focus", None)
        if focus:
            show_row(focus, s)
    decided = _decided(ws, ds_id, q)
    only_new = bool(filters.get("undecided_only"))
    if s.pop("_queue_dir", 1) < 0:  # after "previous": the nearest row before the cursor that is still shown
        while True:
            rows = q["frame"]["row_idx"].astype(int).tolist()
            if not rows:
                q["i"] = 0
                break
            if q["i"] < 0 or (only_new and q["i"] == 0 and rows[0] in decided):
                if q["offset"] == 0:
                    q["i"] = 0
                    break
                start = max(0, q["offset"] - WINDOW)  # read the window before this one
                q = _load(s, ws, ds_id, run_id, filters, sig, start, q["offset"] - start - 1)
                decided = _decided(ws, ds_id, q)
                continue
            while only_new and q["i"] > 0 and rows[q["i"]] in decided:
                q["i"] -= 1
            if not (only_new and rows[q["i"]] in decided and q["offset"] > 0):
                break
    while True:
        rows = q["frame"]["row_idx"].astype(int).tolist()
        i = q["i"]
        while only_new and i < len(rows) and rows[i] in decided:
            i += 1
        if i < len(rows) or len(rows) < WINDOW:
            break
        # this window is used up: the next one starts after its rows that are still in the filter
        still = sum(r not in decided for r in rows) if only_new else len(rows)
        q = _load(s, ws, ds_id, run_id, filters, sig, q["offset"] + still)
        decided = _decided(ws, ds_id, q)
    q["i"] = i
    _recount(ws, ds_id, run_id, filters, q, decided)
    frame, then = q["frame"], q["then"]
    now = frame["row_idx"].astype(int).isin(list(decided)).to_numpy()
    changed = now.astype(int) - then.astype(int)
    flagged = (frame["confidence"] < filters["t_keep"]).to_numpy(dtype=bool)
    progress = dict(q["progress"])
    progress["reviewed"] += int(changed.sum())
    progress["flagged_reviewed"] += int(changed[flagged].sum())
    count = q["count"] - (int((now & ~then).sum()) if only_new else 0)
    row = None
    if i < len(rows):
        row = frame.iloc[i].copy()
        state = ws.row_state(ds_id, rows[i]) or {}
        row["decision"], row["decision_text"], row["decided_by"] = (state.get(k) for k in ("action", "text",
                                                                                          "reviewer"))
        row["version"] = ws.row_versions(ds_id, [rows[i]]).get(rows[i])  # what a decision on it is made on
    position = q["offset"] + i - (int(now[:i].sum()) if only_new else 0)
    return {"row": row, "position": position, "count": max(count, 0), "progress": progress}


def step(delta: int, s=None) -> None:
    """Next (+1) or previous (-1) row; going back past the window's start reads the window before it."""
    s = st.session_state if s is None else s
    q = s.get("_queue")
    if q is not None:
        q["i"] += 1 if delta > 0 else -1
        s["editing"], s["_queue_dir"] = None, delta


def show_row(rows, s=None) -> None:
    """Put the cursor on a row of the window, the first in queue order of `rows` (a row or a list) that it holds
    (undone rows come back into view)."""
    s = st.session_state if s is None else s
    q = s.get("_queue")
    if q is not None:
        wanted = [int(r) for r in (rows if isinstance(rows, (list, tuple)) else [rows])]
        hits = q["frame"].index[q["frame"]["row_idx"].astype(int).isin(wanted)]
        if len(hits):
            q["i"] = int(hits[0])

