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
from pathlib import Path

import streamlit as st

from clear_core.config import Thresholds
from clear_core.errors import ClearError
from clear_core.names import DEFAULT_WORKSPACE

from . import url
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
    """The session's first values: the workspace the server was started on, then what the page address holds (a
    reload or a copied link comes back to the same choices, see ui/url.py)."""
    s = st.session_state
    s.setdefault("workspace_path", default_path or DEFAULT_WORKSPACE)
    s.setdefault("ws_field", s["workspace_path"])
    s.setdefault("reviewer", "")
    s.setdefault("_default_workspace", s["workspace_path"])
    url.read(open_workspace)


def open_workspace(path: str) -> None:
    """Switch to the workspace file at `path` if there is one; otherwise ask first (the sidebar shows "Create a new
    empty workspace at PATH?"): a typo must not leave an empty database behind."""
    s = st.session_state
    path = path.strip()
    s.pop("_ws_ask", None)
    if not path or path == s["workspace_path"]:
        s["ws_field"] = s["workspace_path"]
    elif path == ":memory:" or Path(path).expanduser().exists():  # a folder or a bad file: its error is shown
        _switch_workspace(path)
    else:
        s["_ws_ask"] = path


def _switch_workspace(path: str) -> None:
    s = st.session_state
    s["workspace_path"] = s["ws_field"] = path
    s.pop("_ws_ask", None)
    s.pop("thr_run", None)  # run ids are per workspace: the thresholds of "run 3" here are not the other's


def _cancel_workspace() -> None:
    s = st.session_state
    s["ws_field"] = s["workspace_path"]
    s.pop("_ws_ask", None)


def workspace_field() -> None:
    """The sidebar's Workspace field: an existing file opens when typed; a path with no file asks first."""
    s = st.session_state
    st.text_input("Workspace", key="ws_field", on_change=lambda: open_workspace(s["ws_field"]),
                  help="The DuckDB file holding datasets, runs and decisions.")
    ask = s.get("_ws_ask")
    if ask:
        st.warning(f"Create a new empty workspace at {literal(ask)}?", icon=":material/help:")
        c1, c2 = st.columns(2)
        c1.button("Create", type="primary", key="ws_create", on_click=_switch_workspace, args=(ask,),
                  width="stretch")
        c2.button("Cancel", key="ws_cancel", on_click=_cancel_workspace, width="stretch")


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
        workspace_field()
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
                from . import jobs

                jobs.show_run_status(s["workspace_path"], s["run_id"])  # live: the running stage's own progress
            else:
                s.pop("run_id", None)
        else:
            s.pop("dataset", None)
            s.pop("run_id", None)
        st.text_input("Reviewer", key="reviewer", placeholder="your name",
                      help="Written with every decision; kept in the page address, so a reload keeps it.")
    url.write(s["_default_workspace"])


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
    """The thresholds in force for this run (shared by Explore, Review and Export). On a session's first look at a
    run: those stored with the run (where the CLI and export read them too), else the page address's, else the
    default (the median, `filtering.default_thresholds`).

    None while the run has no confidence scores yet.
    """
    s = st.session_state
    if s.get("thr_run") != run_id:
        from clear_core import filtering

        stored = filtering.stored_thresholds(ws().get_run(run_id))
        found = stored or url.thresholds_for(run_id)  # a person's choice: with the run, or in the address (F5)
        if found is None:
            try:
                found = filtering.run_thresholds(ws(), run_id)
            except ValueError:
                return None
        s["eta"] = found.eta
        # Only a person's thresholds are stored: the address's ones now if the run had none, the default never.
        chosen = stored is not None or url.thresholds_for(run_id) is not None
        set_thresholds(run_id, found.t_drop, found.t_keep, store=chosen and stored is None)
        s["thr_stored"] = run_id if chosen else None
    return Thresholds(t_drop=s["t_drop"], t_keep=s["t_keep"], eta=s.get("eta", 0.8))


def reset_thresholds(run_id: int, keep_fraction: float = 0.5) -> bool:
    """Back to the default thresholds: t_keep keeps `keep_fraction` of the rows (0.5 = the median, CLEAR's
    default) and t_drop = t_keep; stored with the run like a slider move."""
    from clear_core import filtering

    try:
        _, conf = filtering.run_confidence(ws(), run_id)
        t = filtering.default_thresholds(conf, keep_fraction, eta=st.session_state.get("eta", 0.8))
    except ValueError:
        return False
    set_thresholds(run_id, t.t_drop, t.t_keep)
    return True


def set_thresholds(run_id: int, t_drop: float, t_keep: float, store: bool = True) -> None:
    """This session's thresholds for the run, and (store=True, a person moved them) the run's stored ones: the CLI
    and export follow them. Called from the sliders' on_change, so once per change, not per drag step."""
    from clear_core import filtering

    s = st.session_state
    s["thr_run"], s["t_keep"] = run_id, float(t_keep)
    s["t_drop"] = min(float(t_drop), s["t_keep"])
    if store:
        s["thr_stored"] = run_id  # a person's thresholds: the page address keeps them too (ui/url.py)
        try:
            filtering.store_thresholds(ws(), run_id, Thresholds(t_drop=s["t_drop"], t_keep=s["t_keep"],
                                                                eta=s.get("eta", 0.8)))
        except ClearError as exc:  # a read-only workspace: the session keeps them, the page says why
            s["_callback_error"] = (exc, traceback.format_exc())
