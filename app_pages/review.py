"""Review: the flagged rows one at a time; keep, drop, accept the proposed fix, or edit, from the keyboard.

Every decision is written to the workspace (committed) before the page says it is saved; nothing about decisions
is cached, so another browser session sees them on its next rerun. The buttons' callbacks go through state.safe:
a failed decision is a message on the page, not a traceback.
"""

from __future__ import annotations

import streamlit as st

from clear_core.filtering import bands
from clear_core.signals import REGISTRY
from ui import proposal, queue, state, widgets

BANDS = {"flagged": "Flagged", "review": "Review band", "drop": "Drop band", "keep": "Keep band", "all": "All rows"}
PROPOSAL = {"any": "Any", "yes": "With a proposed fix", "no": "Without a fix"}
s = st.session_state


def read_filters(signals: list[str], thr) -> dict:
    with st.container(border=True):
        c1, c2, c3, c4, c5 = st.columns([2, 3, 2, 3, 2], vertical_alignment="bottom")
        band = c1.selectbox("Rows", list(BANDS), format_func=BANDS.get, key="f_band",
                            help="Flagged = the review and drop bands (confidence below the keep threshold).")
        search = c2.text_input("Search", key="f_search", placeholder="words in the prompt, response or fix")
        proposal = c3.selectbox("Proposed fix", list(PROPOSAL), format_func=PROPOSAL.get, key="f_prop")
        signal = c4.selectbox("Signal range", ["(none)", *signals], key="f_signal")
        s.setdefault("f_undecided", True)
        undecided = c5.toggle("Undecided only", key="f_undecided")
        ranges = None
        if signal != "(none)":
            s.setdefault(f"f_range_{signal}", (0.0, 1.0))
            lo, hi = st.slider(f"{widgets.literal(signal)} between", 0.0, 1.0, step=0.01, key=f"f_range_{signal}")
            ranges = {signal: (lo, hi)}
    return dict(band=band, t_drop=thr.t_drop, t_keep=thr.t_keep, signal_ranges=ranges, search=search.strip() or None,
                has_proposal={"any": None, "yes": True, "no": False}[proposal], undecided_only=undecided)


def flash(kind: str, message: str) -> None:
    s["_flash"] = (kind, message)


@state.safe
def decide(ds_id: int, row_idx: int, action: str, thr: dict, advance: bool, new_text: str | None = None) -> None:
    state.ws().record_decisions(ds_id, [row_idx], action, state.reviewer(), new_text=new_text, thresholds=thr)
    flash("saved", f"Saved: {action} · row {row_idx}")
    s["editing"] = None
    if advance:
        queue.step(1)


@state.safe
def undo(ds_id: int) -> None:
    rows = state.ws().undo(ds_id, state.reviewer())
    flash("saved" if rows else "info",
          f"Undone: your last decision on row {', '.join(map(str, rows[:5]))}" + (" …" if len(rows) > 5 else "")
          if rows else "Nothing of yours to undo")
    s["editing"] = None
    if rows:
        queue.show_row(rows[0])


@state.safe
def bulk(ds_id: int, run_id: int, filters: dict, thr: dict) -> None:
    ws, action = state.ws(), s["bulk_action"]
    if action == "accept":
        filters = {**filters, "has_proposal": True}
    rows = ws.review_rows(ds_id, run_id, order="confidence", **filters).tolist()
    s["bulk_confirm"] = False
    queue.reset()
    if not rows:
        flash("info", "No row to apply it to")
        return
    ws.record_decisions(ds_id, rows, action, state.reviewer(), thresholds=thr)
    flash("saved", f"Saved: {action} on {len(rows):,} rows (one batch; Undo takes it back)")


def show_row(row, thr, position: str, signal_names: list[str]) -> None:
    conf = row["confidence"]
    band = bands([conf], thr)[0]
    decided = (f" · decided <b>{widgets.html_text(row['decision'])}</b> by {widgets.html_text(row['decided_by'])}"
               if isinstance(row["decision"], str) else "")
    # One raw HTML block: the reviewer's name is stored text and must show as typed, never as HTML or Markdown.
    st.markdown(f"<div class='cs-rowhead'><span class='cs-pos'>{position}</span>{widgets.chip(band)} &nbsp; "
                f"<b>Row {int(row['row_idx'])}</b> · line {int(row['line'])} · confidence <b>{conf:.3f}</b>"
                f"{decided}</div>", unsafe_allow_html=True)
    widgets.text_box(row["prompt_text"], "Prompt", "cs-prompt")
    proposal = row["proposal"] if isinstance(row["proposal"], str) else None
    if proposal is not None:
        verdict = "confident" if row["judge_conf"] >= thr.eta else "not confident"
        widgets.diff_boxes(row["response"], proposal, "Original response",
                           f"Proposed fix · {row['proposal_source']} · judge {row['judge_conf']:.2f} ({verdict})")
    else:
        widgets.text_box(row["response"], "Response")
    if isinstance(row["decision_text"], str) and row["decision_text"] not in (proposal, row["response"]):
        widgets.text_box(row["decision_text"], f"Current text ({row['decision']})")
    signals = {name: row[name] for name in ["confidence", *(n for n in signal_names if n in row.index)]}
    widgets.stat_strip(signals, {n: REGISTRY[n].description for n in signals if n in REGISTRY})


def actions(ds_id: int, row, thr: dict, at_start: bool, at_end: bool, undecided_only: bool) -> None:
    row_idx, has_fix = int(row["row_idx"]), isinstance(row["proposal"], str)
    editing = s.get("editing") == row_idx
    advance = not undecided_only  # with "undecided only" the decided row leaves the queue by itself
    if editing:
        start = row["decision_text"] if isinstance(row["decision_text"], str) else (
            row["proposal"] if has_fix else row["response"])
        st.text_area("Edited response", value=start, key=f"edit_{row_idx}", height=160)
        c1, c2, _ = st.columns([2, 1.4, 4])
        c1.button("Save edit", type="primary", icon=":material/save:", key="save_edit", shortcut="Ctrl+Enter",
                  on_click=lambda: decide(ds_id, row_idx, "edit", thr, advance, s[f"edit_{row_idx}"]))
        c2.button("Cancel", key="cancel_edit", shortcut="Esc", on_click=lambda: s.update(editing=None))
        return
    buttons = [("Keep", "K", "keep", ":material/check:", "primary", False),
               ("Drop", "D", "drop", ":material/delete:", "secondary", False),
               ("Accept", "A", "accept", ":material/auto_fix_high:", "secondary", not has_fix)]
    cols = st.columns(7)
    for col, (label, key, action, icon, kind, disabled) in zip(cols, buttons):
        col.button(label, key=f"act_{action}", shortcut=key, icon=icon, type=kind, disabled=disabled,
                   width="stretch", on_click=decide, args=(ds_id, row_idx, action, thr, advance))
    cols[3].button("Edit", key="act_edit", shortcut="E", icon=":material/edit:", width="stretch",
                   on_click=lambda: s.update(editing=row_idx))
    cols[4].button("Undo", key="act_undo", shortcut="U", icon=":material/undo:", width="stretch",
                   on_click=undo, args=(ds_id,))
    cols[5].button("Prev", key="act_prev", shortcut="P", icon=":material/arrow_back:", width="stretch",
                   on_click=queue.step, args=(-1,), disabled=at_start)
    cols[6].button("Next", key="act_next", shortcut="J", icon=":material/arrow_forward:", width="stretch",
                   on_click=queue.step, args=(1,), disabled=at_end)


st.title("Review")
ds, run = state.dataset(), state.run()
if ds is None or run is None:
    state.stop_with_hint("Nothing to review yet: load and score a dataset on **Data & Scoring**.")
thr = state.thresholds(run.id)
if thr is None:  # no confidence yet: the row signals committed so far, marked provisional
    from ui import provisional

    provisional.show(s["workspace_path"], run, "review")
    st.stop()
ws = state.ws()
thr_dict = {"t_drop": thr.t_drop, "t_keep": thr.t_keep, "eta": thr.eta, "run_id": run.id}

kind, message = s.pop("_flash", (None, None))
if kind == "saved":
    st.toast(message, icon=":material/check_circle:")
elif kind == "info":
    st.toast(message, icon=":material/info:")
if not (s.get("reviewer") or "").strip():
    st.caption(":material/person: Decisions are signed “anonymous”: put your name in the sidebar.")
bar = st.empty()

signal_names = [n for n in ws.signals(run.id) if n != "confidence"]
filters = read_filters(signal_names, thr)
now = queue.view(ws, ds.id, run.id, filters)
progress, count, row = now["progress"], now["count"], now["row"]
done, flagged = progress["flagged_reviewed"], progress["flagged"]
bar.progress(min(done / flagged, 1.0) if flagged else 1.0,
             text=f"Reviewed {done:,} of {flagged:,} flagged rows · {progress['reviewed']:,} "
                  f"row{'s' if progress['reviewed'] != 1 else ''} decided in all")
if row is None:
    if count:
        st.info(f"End of the queue: {count:,} rows of this filter were skipped without a decision.")
        st.button("Back to the start", on_click=queue.reset, key="restart", icon=":material/first_page:")
    else:
        st.success("Nothing left in this filter.", icon=":material/task_alt:")
    st.stop()
show_row(row, thr, f"{now['position'] + 1:,} / {count:,} in this filter", signal_names)
if isinstance(row["proposal"], str):
    proposal.explain(ws, ds.id, int(row["row_idx"]), thr.eta)  # the judges and the acceptance rule in force
actions(ds.id, row, thr_dict, now["position"] <= 0, now["position"] >= count - 1, filters["undecided_only"])
st.caption("Keys: **K** keep · **D** drop · **A** accept fix · **E** edit (Ctrl+Enter saves, Esc cancels) · "
           "**U** undo · **J** next · **P** previous")

with st.expander(f"Apply one action to all {count:,} rows in this filter", icon=":material/select_all:"):
    action = st.radio("Action", ["keep", "drop", "accept"], horizontal=True, key="bulk_action",
                      format_func={"keep": "Keep", "drop": "Drop", "accept": "Accept their fixes"}.get)
    confirm = st.checkbox(f"Yes, apply “{action}” to every row of this filter", key="bulk_confirm")
    st.button("Apply to all", disabled=not confirm, key="bulk_apply", type="primary",
              on_click=bulk, args=(ds.id, run.id, filters, thr_dict))
proposal.accept_confident(ws, ds.id, thr.eta, thr_dict)  # counts the rows, then a confirm step
