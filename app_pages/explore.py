"""Explore: score distributions, the keep / review / drop thresholds and what they do to the counts."""

from __future__ import annotations

import streamlit as st

from clear_core.config import ScoreConfig
from clear_core.filtering import band_codes
from ui import charts, state, widgets

SCATTER_POINTS = 20_000
s = st.session_state


@st.cache_data(max_entries=64, show_spinner=False)
def histogram(_ws, ws_path: str, run_id: int, version: tuple, signal: str):
    """A run's histogram; `version` (status, rows done) keys the cache so a running run is re-read."""
    return _ws.histogram(run_id, signal, bins=40)


@st.cache_data(max_entries=8, show_spinner="Sampling points…")
def sample_points(_ws, ws_path: str, run_id: int, version: tuple, x: str, y: str):
    frame = _ws.scores_wide(run_id, signals=sorted({x, y, "confidence"})).dropna()
    if len(frame) > SCATTER_POINTS:
        frame = frame.sample(SCATTER_POINTS, random_state=0)
    return frame


@st.cache_resource(max_entries=2, show_spinner="Reading the signals…")
def run_bins(_ws, ws_path: str, run_id: int, version: tuple, names: tuple) -> dict:
    """Each row's confidence and the histogram bin of each of its signals, read once per run version and shared,
    not copied (a cached resource): a threshold change only recounts the bars of each band."""
    frame = _ws.scores_wide(run_id, signals=["confidence", *names])
    return {"confidence": frame["confidence"].to_numpy(dtype=float), **{n: charts.bin_index(frame[n]) for n in names}}


def open_in_review(run_id: int, rows: list[int], filters: dict, what: str) -> None:
    """Hand the picked rows to Review (which reads st.session_state["review_rows"])."""
    s["review_rows"] = charts.review_pick(run_id, rows, filters, what)
    s["_open_review"] = True  # a callback cannot switch pages: the script does, first thing


@state.safe  # a failure is a message on the page, not a callback traceback
def pick_bars(key: str, signal: str, run_id: int, thr) -> None:
    """A click (or box) on histogram bars: the rows in their value range, and in their band for a signal's bars."""
    pick = charts.picked_bins(s[key].selection.points)
    if pick is not None:
        frame = state.ws().scores_wide(run_id, signals=sorted({signal, "confidence"}))
        open_in_review(run_id, *charts.bar_rows(frame, signal, pick, thr.t_drop, thr.t_keep))


@state.safe  # a failure is a message on the page, not a callback traceback
def pick_points(key: str, x: str, y: str, run_id: int) -> None:
    """A click (or box, lasso) on scatter dots: those rows."""
    picked = charts.dot_rows(s[key].selection.points, x, y)
    if picked is not None:
        open_in_review(run_id, *picked)


def signal_grid(names: list[str], weights: dict, codes, bins: dict, small: bool, run_id: int, thr) -> None:
    cols = st.columns(4 if small else 3)
    for i, name in enumerate(names):
        fig = charts.signal_histogram(charts.band_split(bins[name], codes), name,
                                      float(weights.get(name, 0.0)) if weights else None, small=small)
        key = f"hist_{name}"
        with cols[i % len(cols)]:
            st.plotly_chart(fig, width="stretch", key=key, on_select=lambda k=key, n=name: pick_bars(k, n, run_id, thr),
                            selection_mode=("points", "box"))


@st.cache_data(max_entries=16, show_spinner=False)
def run_signals(_ws, ws_path: str, run_id: int, version: tuple) -> list[str]:
    return [name for name in _ws.signals(run_id) if name != "confidence"]


@st.cache_data(max_entries=16, show_spinner=False)
def lowest_rows(_ws, ws_path: str, dataset_id: int, run_id: int, version: tuple, fixes: tuple):
    """The 25 least trustworthy rows with their proposed fix; keyed by the run and the latest correction run."""
    low = _ws.review_queue(dataset_id, run_id, band="all", order="confidence", limit=25)
    return low[["row_idx", "confidence", "prompt_text", "response", "proposal"]].fillna({"proposal": ""})


def sync_sliders(run_id: int) -> None:
    s["eta"] = s["w_eta"]
    state.set_thresholds(run_id, s["w_t_drop"], s["w_t_keep"])
    if s["t_drop"] > s["t_keep"]:  # the handle moved past the other one: move both
        moved_drop = s["w_t_drop"] > s["w_t_keep"]
        value = s["w_t_drop"] if moved_drop else s["w_t_keep"]
        state.set_thresholds(run_id, value, value)


def refit_weights(run_id: int) -> None:
    """The refit button: new weights from the people's keep / drop decisions, stored on the run with the
    recombined confidence; the thresholds go back to the new median (the old ones were set on other scores)."""
    from clear_core.errors import ClearError
    from clear_core.reweight import refit_from_decisions

    try:
        refit = refit_from_decisions(state.ws(), run_id)
    except ClearError as exc:  # too few decisions: said on the page, nothing changed
        s["refit_note"] = (run_id, "error", str(exc))
        return
    state.reset_thresholds(run_id)
    cal = refit.calibration
    changes = ", ".join(f"{k} {refit.old_weights.get(k, 0.0):.2f} → {v:.2f}" for k, v in sorted(refit.weights.items()))
    s["refit_note"] = (run_id, "success", f"Weights refit from {cal.n_good + cal.n_bad:,} decisions ({cal.n_good:,} "
                                          f"kept, {cal.n_bad:,} dropped, edited or fixed): {changes}. The "
                                          "thresholds are back at the new median.")


def refit_controls(run_id: int) -> None:
    st.button("Refit weights from decisions", key="refit_weights", icon=":material/model_training:",
              on_click=refit_weights, args=(run_id,),
              help="Fit the weights to the rows people kept (good) and dropped, edited or fixed (bad) on Review, "
                   "then recompute every row's confidence with them. Needs at least 5 of each.")
    note = s.get("refit_note")
    if note is not None and note[0] == run_id:  # the message names only runs, counts and signals: no user text
        (st.success if note[1] == "success" else st.error)(note[2])


def threshold_controls(run_id: int) -> None:
    s["w_t_drop"], s["w_t_keep"], s["w_eta"] = s["t_drop"], s["t_keep"], s["eta"]
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2], vertical_alignment="bottom")
    c1.slider(":red[Drop] below", 0.0, 1.0, step=0.005, format="%.3f", key="w_t_drop", on_change=sync_sliders,
              args=(run_id,), help="Rows with confidence below this are dropped unless a reviewer keeps them.")
    c2.slider(":green[Keep] from", 0.0, 1.0, step=0.005, format="%.3f", key="w_t_keep", on_change=sync_sliders,
              args=(run_id,), help="Rows with confidence at or above this are kept; between the two: review.")
    c3.slider(":violet[Fix confidence] η", 0.5, 1.0, step=0.01, key="w_eta", on_change=sync_sliders,
              args=(run_id,), help="A proposed correction is confident when the judge's confidence is at least η.")
    c4.button("Reset to median", on_click=state.reset_thresholds, args=(run_id,), key="reset_median",
              icon=":material/restart_alt:", help="CLEAR's default: keep the rows above the median confidence, drop the rest.",
              width="stretch")
    with c4.popover("Keep a fraction…", width="stretch"):
        st.number_input("Share of rows to keep", 0.0, 1.0, value=0.5, step=0.05, key="keep_fraction")
        st.button("Apply", on_click=lambda: state.reset_thresholds(run_id, s["keep_fraction"]),
                  key="apply_fraction")

if s.pop("_open_review", False):  # rows picked on a plot (pick_bars, pick_points)
    st.switch_page("app_pages/review.py")
st.title("Explore")
ds, run = state.dataset(), state.run()
if ds is None:
    state.stop_with_hint("No dataset yet: load one on **Data & Scoring**.")
if run is None:
    state.stop_with_hint(f"“{widgets.literal(ds.name)}” is not scored yet: start a run on **Data & Scoring**.")
s.setdefault("eta", 0.8)
thr = state.thresholds(run.id)
if thr is None:  # no confidence yet: the row signals committed so far, marked provisional
    from ui import provisional

    provisional.show(s["workspace_path"], run, "explore")
    st.stop()

ws, version = state.ws(), (run.status, run.n_done, run.stage, run.updated_at)  # updated_at: a refit's new scores
threshold_controls(run.id)
thr = state.thresholds(run.id)
widgets.band_metrics(ws.band_counts(run.id, thr.t_drop, thr.t_keep, thr.eta))

st.plotly_chart(charts.histogram(histogram(ws, ws.path, run.id, version, "confidence"), "confidence",
                                 thr.t_drop, thr.t_keep), width="stretch", key="hist_confidence",
                on_select=lambda r=run.id, t=thr: pick_bars("hist_confidence", "confidence", r, t),
                selection_mode=("points", "box"))
mean = ScoreConfig.from_dict(run.config or {}).mean  # a run stored before `mean` existed reads as arithmetic
st.caption(f"How trustworthy each row looks (0 = surely bad, 1 = surely good): the weighted {mean} mean of the "
           "signals. Rows left of the red line are dropped, right of the green line kept, in between sent to review.")

others = run_signals(ws, ws.path, run.id, version)
if others:
    weights = run.weights or {}
    counting, idle = charts.order_by_weight(others, weights)
    bins = run_bins(ws, ws.path, run.id, version, tuple(others))
    codes = band_codes(bins["confidence"], thr.t_drop, thr.t_keep)
    st.markdown("##### Signals" + (", heaviest first" if weights else ""))
    signal_grid(counting, weights, codes, bins, False, run.id, thr)
    st.caption("Each signal's own distribution, in [0, 1], higher = more trustworthy, its bars split by the band "
               "the confidence puts the rows in: a signal that separates the red from the green counts. The "
               "weight is its share in this run's confidence" + ("." if weights else " (not fitted yet).")
               + " Click a bar, or drag a box, to review those rows.")
    if idle:
        with st.expander(f"{len(idle)} signal(s) that do not count in this run (weight 0)",
                         icon=":material/visibility_off:"):
            signal_grid(idle, weights, codes, bins, True, run.id, thr)
    refit_controls(run.id)

    st.markdown("##### Two signals against each other")
    c1, c2, _ = st.columns([1, 1, 2])
    named = dict(format_func=lambda n: f"{charts.title_of(n)} ({n})")
    x = c1.selectbox("x", counting + idle, index=0, key="scatter_x", **named)
    y = c2.selectbox("y", counting + idle, index=min(1, len(others) - 1), key="scatter_y", **named)
    points = sample_points(ws, ws.path, run.id, version, x, y)
    st.plotly_chart(charts.scatter(points, x, y, thr.t_drop, thr.t_keep), width="stretch", key="scatter",
                    on_select=lambda x=x, y=y, r=run.id: pick_points("scatter", x, y, r),
                    selection_mode=("points", "box", "lasso"))
    st.caption(f"One dot per row (a random sample of {len(points):,}), coloured by its band. Rows where the "
               "signals disagree are the ones worth a look: click a dot or draw a box to review them.")

st.markdown("##### Lowest-confidence rows")
fix_run = ws.latest_run(ds.id, kind="correct")
fixes = (fix_run.id, fix_run.status, fix_run.n_done) if fix_run is not None else ()
st.dataframe(lowest_rows(ws, ws.path, ds.id, run.id, version, fixes), hide_index=True, width="stretch", height=320,
             column_config={"confidence": st.column_config.ProgressColumn("confidence", format="%.3g",
                                                                          min_value=0.0, max_value=1.0),
                            "prompt_text": "prompt", "row_idx": "row"})
st.caption("The 25 rows the model trusts least, with any proposed fix (decisions are on *Review*).")
