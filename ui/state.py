"""Cached resources (the workspace, the model) and the selectors every page shares: dataset, scoring run,
thresholds, reviewer. The sidebar is drawn here once per script run, before the page runs.

Values a page wants the sidebar to switch to (a dataset just loaded, a run just started) go through
`select(...)` + st.rerun(): a widget's value cannot be changed after it is drawn in the same run.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import traceback

import streamlit as st

from clear_core.config import Thresholds
from clear_core.errors import ClearError
from clear_core.names import DEFAULT_WORKSPACE

from .widgets import literal


@st.cache_resource(show_spinner="Opening the workspace…")
def workspace(path: str):
    """The one Workspace (DuckDB connection) of this process for `path`, shared by every session."""
    from clear_core.store import Workspace

    ws = Workspace.open(path)
    atexit.register(ws.close)  # checkpoint and release the file when the server stops
    return ws


@st.cache_resource(show_spinner=False)
def backend(spec: str):
    """The loaded model for a spec ("default", "tiny", a local dir or a HF id), loaded once per process."""
    from clear_core.backends import load_backend

    return load_backend(spec)


def init(default_path: str) -> None:
    st.session_state.setdefault("workspace_path", default_path or DEFAULT_WORKSPACE)
    st.session_state.setdefault("reviewer", "")


# Widgets whose values outlive a page change (Streamlit forgets a widget's value once its page is not shown).
KEPT_WIDGETS = ("f_", "x_fmt", "x_variant", "model_pick", "model_custom", "preset_pick", "score_limit")


def keep_widget_values() -> None:
    """Re-assign the kept widgets' values so that they survive while their page is not shown."""
    s = st.session_state
    for key in [k for k in s.keys() if str(k).startswith(KEPT_WIDGETS)]:
        s[key] = s[key]


def ws():
    return workspace(st.session_state["workspace_path"])


def select(dataset: str | None = None, run_id: int | None = None) -> None:
    """Ask the sidebar to show this dataset / run on the next script run."""
    if dataset is not None:
        st.session_state["_next_dataset"] = dataset
    if run_id is not None:
        st.session_state["_next_run"] = int(run_id)


@contextlib.contextmanager
def guard(what: str = "This step"):
    """Show errors as messages, never as tracebacks: ClearError's own message, anything else with details folded.
    A widget callback's error (see `safe`) is shown here first: the callback ran just before this script run."""
    failed = st.session_state.pop("_callback_error", None)
    if failed is not None:
        show_error(what, *failed)
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the app must keep running and say what happened
        show_error(what, exc, traceback.format_exc())


def show_error(what: str, exc: Exception, details: str) -> None:
    """One line for the user (names in it shown literally); for an unexpected error, the traceback folded away."""
    if isinstance(exc, ClearError):
        st.error(literal(exc), icon=":material/error:")
        return
    st.error(f"{what} failed unexpectedly ({type(exc).__name__}: {literal(exc)}). The workspace is unchanged by "
             "the failed step; the details below help a bug report.", icon=":material/bug_report:")
    with st.expander("Details"):
        st.code(details, language=None)


def safe(callback):
    """A widget callback whose error becomes a message on the page: callbacks run before the page script, outside
    `guard`, and Streamlit would show their traceback."""
    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported by guard() on this run of the page
            st.session_state["_callback_error"] = (exc, traceback.format_exc())
    return run


def sidebar() -> None:
    s = st.session_state
    with st.sidebar:
        st.text_input("Workspace", key="workspace_path", help="The DuckDB file holding datasets, runs and decisions.")
        try:
            w = ws()
        except ClearError as exc:
            st.error(literal(exc))
            st.stop()
        datasets = [d.name for d in w.list_datasets()]
        if "_next_dataset" in s and s["_next_dataset"] in datasets:
            s["dataset"] = s.pop("_next_dataset")
        if datasets:
            if s.get("dataset") not in datasets:
                s["dataset"] = datasets[-1]
            st.selectbox("Dataset", datasets, key="dataset")
            runs = [r for r in w.list_runs(w.get_dataset(s["dataset"]).id) if r.kind == "score"]
            ids = [r.id for r in runs]
            labels = {r.id: f"#{r.id} · {_preset(r)}" for r in runs}
            if s.get("_next_run") in ids:
                s["run_id"] = s.pop("_next_run")
            if ids:
                if s.get("run_id") not in ids:
                    s["run_id"] = max(ids)
                st.selectbox("Scoring run", ids, key="run_id", format_func=labels.get)
                current = next(r for r in runs if r.id == s["run_id"])
                color = {"done": "green", "running": "blue", "stopped": "orange"}.get(current.status, "red")
                st.caption(f":{color}[{current.status}] · {current.n_done:,} / {current.n_total:,} rows"
                           + (f" · stage {current.stage}" if current.status != "done" and current.stage else ""))
            else:
                s.pop("run_id", None)
        else:
            s.pop("dataset", None)
            s.pop("run_id", None)
        st.text_input("Reviewer", key="reviewer", placeholder="your name",
                      help="Written with every decision; remembered for this browser session.")


def _preset(run) -> str:
    cfg = run.config or {}
    return f"{cfg.get('preset', '?')} · {cfg.get('model', '?')}"


def stop_with_hint(message: str) -> None:
    """End the page with a message and a link to the page where the missing step is done."""
    st.info(message)
    st.page_link("app_pages/data.py", label="Go to Data & Scoring", icon=":material/database:")
    st.stop()


def dataset():
    """The selected DatasetInfo, or None when the workspace has none."""
    name = st.session_state.get("dataset")
    return ws().get_dataset(name) if name else None


def run():
    """The selected scoring RunInfo, or None."""
    run_id = st.session_state.get("run_id")
    return ws().get_run(run_id) if run_id is not None else None


def reviewer() -> str:
    return (st.session_state.get("reviewer") or "").strip() or "anonymous"


def thresholds(run_id: int) -> Thresholds | None:
    """The thresholds in force for this run (shared by Explore, Review and Export); median-based by default.

    None while the run has no confidence scores yet.
    """
    s = st.session_state
    if s.get("thr_run") != run_id and not reset_thresholds(run_id):
        return None
    return Thresholds(t_drop=s["t_drop"], t_keep=s["t_keep"], eta=s.get("eta", 0.8))


def reset_thresholds(run_id: int, keep_fraction: float = 0.5) -> bool:
    """t_keep keeps `keep_fraction` of the rows (0.5 = the median, CLEAR's default); the lower half of the flagged
    rows is the drop band, the upper half the review band."""
    from clear_core import filtering

    try:
        t = filtering.run_thresholds(ws(), run_id, keep_fraction=None if keep_fraction == 0.5 else keep_fraction,
                                     drop_fraction=(1.0 - keep_fraction) / 2)
    except ValueError:
        return False
    set_thresholds(run_id, t.t_drop, t.t_keep)
    return True


def set_thresholds(run_id: int, t_drop: float, t_keep: float) -> None:
    s = st.session_state
    s["thr_run"], s["t_keep"] = run_id, float(t_keep)
    s["t_drop"] = min(float(t_drop), s["t_keep"])
