"""The session's choices in the page address (st.query_params): a reload (F5) or a copied link comes back to the
same reviewer, dataset, scoring run, thresholds and Review filters.

The address is read once, on a session's first script run (`read`), into the session state the widgets use, and
written on every run from that state (`write`, only the keys that changed). Only the keys below are touched: other
query parameters belong to someone else. Values from an address are checked the way typed ones would be: the
sidebar falls back from a dataset or run that is gone, a workspace path that does not exist is asked about first.
"""

from __future__ import annotations

import streamlit as st

from clear_core.config import Thresholds

FIELDS = {"reviewer": "reviewer", "dataset": "dataset", "band": "f_band", "q": "f_search", "fix": "f_prop",
          "signal": "f_signal"}  # query parameter -> session key, both text
THRESHOLDS = ("t_drop", "t_keep", "eta")
OWN = (*FIELDS, "run", "undecided", "range", *THRESHOLDS, "ws", "guide")  # every parameter written here


def read(open_workspace) -> None:
    """On a session's first run: the address's values into the session state. `open_workspace(path)` is asked to
    switch to a workspace named in the address (it asks the user first when there is no file there)."""
    s = st.session_state
    if s.get("_url_read"):
        return
    s["_url_read"] = True
    q = st.query_params
    for param, key in FIELDS.items():
        if param in q:
            s[key] = q[param]
    if _number(q.get("run", ""), int) is not None:
        s["run_id"] = int(q["run"])
    if "undecided" in q:
        s["f_undecided"] = q["undecided"] != "0"
    if "range" in q and s.get("f_signal"):
        lo, _, hi = q["range"].partition(",")
        lo, hi = _number(lo, float), _number(hi, float)
        if lo is not None and hi is not None and 0.0 <= lo <= hi <= 1.0:
            s[f"f_range_{s['f_signal']}"] = (lo, hi)
    values = [_number(q.get(k, ""), float) for k in THRESHOLDS]
    if s.get("run_id") is not None and None not in values:
        try:
            s["_url_thresholds"] = (s["run_id"], Thresholds(t_drop=values[0], t_keep=values[1], eta=values[2]))
        except ValueError:  # out of [0, 1] or crossed: the address was edited by hand
            pass
    if q.get("guide") == "off":
        s["guide_off"] = True
    if q.get("ws"):
        open_workspace(q["ws"])


def thresholds_for(run_id: int) -> Thresholds | None:
    """The thresholds the address held for this run on the session's first run, if any."""
    found = st.session_state.get("_url_thresholds")
    return found[1] if found is not None and found[0] == run_id else None


def write(default_workspace: str) -> None:
    """The session's current choices into the address; keys whose value is unset are taken out of it."""
    s = st.session_state
    want = {param: str(s[key]) for param, key in FIELDS.items() if s.get(key) not in (None, "")}
    if s.get("run_id") is not None:
        want["run"] = str(int(s["run_id"]))
        if s.get("thr_stored") == s["run_id"] and s.get("thr_run") == s["run_id"]:  # set by a person, not default
            want.update({k: f"{float(s.get(k, 0.8)):.6g}" for k in THRESHOLDS})
    if "f_undecided" in s:
        want["undecided"] = "1" if s["f_undecided"] else "0"
    chosen = s.get(f"f_range_{s.get('f_signal')}")
    if chosen is not None:
        want["range"] = f"{chosen[0]:.6g},{chosen[1]:.6g}"
    if s.get("workspace_path") and s["workspace_path"] != default_workspace:
        want["ws"] = s["workspace_path"]
    if s.get("guide_off"):
        want["guide"] = "off"
    q = st.query_params
    for key in [k for k in OWN if k in q and k not in want]:
        del q[key]
    for key, value in want.items():
        if q.get(key) != value:  # an unchanged value is not sent to the browser again
            q[key] = value


def _number(text: str, kind):
    try:
        return kind(text)
    except (TypeError, ValueError):
        return None
