"""Review: the flagged rows one at a time; keep, drop, accept the proposed fix, or edit, from the keyboard.

Every decision is written to the workspace (committed) before the page says it is saved; nothing about decisions
is cached, so another browser session sees them on its next rerun. A decision is made on the version of the row
this screen showed: when another reviewer decided the row since, the store refuses it and the page shows both
decisions to choose from. Undo takes back this reviewer's own last action. The buttons' callbacks go through
state.safe: a failed decision is a message on the page, not a traceback.
"""

from __future__ import annotations

import streamlit as st

from clear_core.filtering import bands
from clear_core.signals import REGISTRY
from clear_core.store.decisions import DecisionConflict
from ui import keys, proposal, queue, state, widgets

BANDS = {"flagged": "Flagged", "review": "Review band", "drop": "Drop band", "keep": "Keep band", "all": "All rows"}
PROPOSAL = {"any": "Any", "yes": "With a proposed fix", "no": "Without a fix"}
DONE = {"keep": "Kept", "drop": "Dropped", "accept": "Fix accepted", "edit": "Edited", None: "Undone"}
DONE_COLOR = {"keep": "keep", "drop": "drop", "accept": "fix", "edit": "fix", None: "review"}
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
def decide(ds_id: int, row_idx: int, action: str, thr: dict, advance: bool, version: int | None,
           new_text: str | None = None) -> None:
    """Record a decision on the version of the row this screen showed; a conflict is shown, not overwritten."""
    who = state.reviewer()
    s["editing"] = None
    try:
        state.ws().record_decisions(ds_id, [row_idx], action, who, new_text=new_text, thresholds=thr,
                                    expected={row_idx: version})
    except DecisionConflict as exc:
        s["_conflict"] = {"ds_id": ds_id, "row": row_idx, "action": action, "text": new_text, "thr": thr,
                          "advance": advance, "theirs": exc.conflicts[0]["theirs"]}
        return
    s["_undo_before"] = None  # a new action: undo starts again from it
    flash("saved", f"Saved: {action} · row {row_idx}")
    if advance:
        queue.step(1)


def resolve(apply_mine: bool) -> None:
    """The reviewer's choice on a conflict: apply their decision over the other's (made on the version they have
    now seen, so a further change is a new conflict), or keep the other's and go on."""
    c = s.pop("_conflict")
    if apply_mine:
        decide(c["ds_id"], c["row"], c["action"], c["thr"], c["advance"], c["theirs"]["id"], c["text"])
        return
    flash("info", f"Kept {c['theirs']['reviewer']}'s decision on row {c['row']}")
    if c["advance"]:
        queue.step(1)


def conflict_panel(c: dict) -> None:
    """Both decisions on the conflicted row, theirs (who, what, when, text) and yours, and the choice."""
    theirs, row = c["theirs"], c["row"]
    # shown through literal: Markdown reads "12:30:05" as an emoji shortcode and never draws the line
    when = theirs["ts"].strftime("%H:%M:%S") if hasattr(theirs["ts"], "strftime") else str(theirs["ts"])
    with st.container(border=True, key="conflict"):
        st.markdown(f":material/warning: **Row {row} changed while you were looking at it.** Nothing of yours "
                    "is saved yet: choose which decision stands.")
        left, right = st.columns(2)
        with left:
            st.markdown(f"**Theirs** · {DONE[theirs['action']]} by **{widgets.literal(theirs['reviewer'])}** at "
                        f"{widgets.literal(when)} UTC")
            if isinstance(theirs["text"], str):
                widgets.text_box(theirs["text"], "Their text")
        with right:
            st.markdown(f"**Yours** · {DONE[c['action']]} by **{widgets.literal(state.reviewer())}**")
            if isinstance(c["text"], str):
                widgets.text_box(c["text"], "Your text")
            elif c["action"] == "accept":
                st.caption("the row's proposed fix")
        b1, b2, _ = st.columns([1.3, 1.3, 4])
        b1.button("Keep theirs", key="conflict_theirs", shortcut="T", icon=":material/group:", width="stretch",
                  on_click=state.safe(resolve), args=(False,))
        b2.button("Apply mine", key="conflict_mine", shortcut="M", icon=":material/person:", type="primary",
                  width="stretch", on_click=state.safe(resolve), args=(True,))


@state.safe
def undo(ds_id: int) -> None:
    """Take back this reviewer's own last action (a whole bulk action at once); rows another reviewer decided
    since keep that decision, and the next undo goes on to the action before."""
    ws, who = state.ws(), state.reviewer()
    s["editing"] = None
    last = ws.last_action(ds_id, who, before=s.get("_undo_before"))
    if last is None:
        flash("info", "Nothing of yours to undo")
        return
    rows = ws.undo(ds_id, who, batch_id=last["batch_id"]) if last["standing"] else []
    taken = [f"row {t['row_idx']} ({DONE[t['action']].lower()} by {t['reviewer']})" for t in last["taken"]]
    s["_undo_before"] = last["batch_id"] if taken else s.get("_undo_before")
    said = (f"Undone: your {last['action']} of row{'s' if len(rows) > 1 else ''} "
            f"{', '.join(map(str, rows[:5]))}" + (f" and {len(rows) - 5:,} more" if len(rows) > 5 else "")
            if rows else f"Nothing undone: your last {last['action']} was changed since")
    if taken:
        said += f"; left as decided since: {', '.join(taken[:3])}" + (" …" if len(taken) > 3 else "")
    flash("saved" if rows else "info", said)
    if rows:
        queue.reset(focus=rows)  # the undone rows come back: counts and window are read again


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
    s["_undo_before"] = None
    flash("saved", f"Saved: {action} on {len(rows):,} rows (one batch; Undo takes it back)")


def show_row(row, thr, position: str, signal_names: list[str]) -> None:
    conf = row["confidence"]
    band = bands([conf], thr)[0]
    chip, decided = widgets.chip(band), ""
    if isinstance(row["decision"], str):  # once decided, the chip says what and who; the band moves to the line
        who, name = widgets.html_text(row["decided_by"]), str(row["decided_by"])
        short = widgets.html_text(name if len(name) <= 24 else name[:23] + "…")  # the line after has it whole
        chip = (f"<span class='cs-chip' style='background:{widgets.BAND_COLORS[DONE_COLOR[row['decision']]]}'>"
                f"{DONE[row['decision']]} by {short}</span>")
        decided = (f" · {widgets.BAND_LABELS[band].lower()} band · decided <b>{widgets.html_text(row['decision'])}"
                   f"</b> by {who}")
    # One raw HTML block: the reviewer's name is stored text and must show as typed, never as HTML or Markdown.
    st.markdown(f"<div class='cs-rowhead'><span class='cs-pos'>{position}</span>{chip} &nbsp; "
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
    version = None if row["version"] is None or row["version"] != row["version"] else int(row["version"])
    if editing:
        start = row["decision_text"] if isinstance(row["decision_text"], str) else (
            row["proposal"] if has_fix else row["response"])
        # Save / Cancel above the text: on a laptop screen they stay in view however long the text is.
        c1, c2, _ = st.columns([2, 1.4, 4])
        c1.button("Save edit", type="primary", icon=":material/save:", key="save_edit", shortcut="Ctrl+Enter",
                  on_click=lambda: decide(ds_id, row_idx, "edit", thr, advance, version, s[f"edit_{row_idx}"]))
        c2.button("Cancel", key="cancel_edit", shortcut="Esc", on_click=lambda: s.update(editing=None))
        st.text_area("Edited response", value=start, key=f"edit_{row_idx}", height=140)
        keys.focus_text_area("Edited response", f"{row_idx}-{s.get('_edit_opened', 0)}")
        return
    buttons = [("Keep", "K", "keep", ":material/check:", "primary", False),
               ("Drop", "D", "drop", ":material/delete:", "secondary", False),
               ("Accept", "A", "accept", ":material/auto_fix_high:", "secondary", not has_fix)]
    cols = st.columns(7)
    for col, (label, key, action, icon, kind, disabled) in zip(cols, buttons):
        col.button(label, key=f"act_{action}", shortcut=key, icon=icon, type=kind, disabled=disabled,
                   width="stretch", on_click=decide, args=(ds_id, row_idx, action, thr, advance, version))
    cols[3].button("Edit", key="act_edit", shortcut="E", icon=":material/edit:", width="stretch",
                   on_click=lambda: s.update(editing=row_idx, _edit_opened=s.get("_edit_opened", 0) + 1))
    undo_button(ds_id, cols[4])
    cols[5].button("Prev", key="act_prev", shortcut="P", icon=":material/arrow_back:", width="stretch",
                   on_click=queue.step, args=(-1,), disabled=at_start)
    cols[6].button("Next", key="act_next", shortcut="J", icon=":material/arrow_forward:", width="stretch",
                   on_click=queue.step, args=(1,), disabled=at_end)


def undo_button(ds_id: int, where) -> None:
    where.button("Undo", key="act_undo", shortcut="U", icon=":material/undo:", width="stretch", on_click=undo,
                 args=(ds_id,), help="Take back your own last action (a bulk action as a whole)")


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

keys.install()
kind, message = s.pop("_flash", (None, None))
if kind == "saved":
    st.toast(message, icon=":material/check_circle:")
elif kind == "info":
    st.toast(message, icon=":material/info:")
if not (s.get("reviewer") or "").strip():
    st.caption(":material/person: Decisions are signed “anonymous”: put your name in the sidebar.")
bar = st.empty()
if s.get("_conflict") is not None and s["_conflict"]["ds_id"] == ds.id:
    conflict_panel(s["_conflict"])  # until it is settled, no other key decides anything
    st.stop()

signal_names = [n for n in ws.signals(run.id) if n != "confidence"]
filters = read_filters(signal_names, thr)
picked = s.get("review_rows")  # rows picked on an Explore plot: their filter stands in for the one above
if picked is not None and picked["run_id"] == run.id:
    filters = {**filters, **picked["filters"]}
    st.info(f"{len(picked['rows']):,} rows picked on Explore: {widgets.literal(picked['what'])}",
            icon=":material/ads_click:")
    st.button("Back to the filter above", key="unpick", on_click=s.pop, args=("review_rows", None))
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
    undo_button(ds.id, st.columns(7)[0])  # after a bulk action that emptied the filter, it can still be undone
    st.stop()
show_row(row, thr, f"{now['position'] + 1:,} / {count:,} in this filter", signal_names)
if isinstance(row["proposal"], str):
    proposal.explain(ws, ds.id, int(row["row_idx"]), thr.eta)  # the judges and the acceptance rule in force
actions(ds.id, row, thr_dict, now["position"] <= 0, now["position"] >= count - 1, filters["undecided_only"])
st.caption("Keys: **K** keep · **D** drop · **A** accept fix · **E** edit (Ctrl+Enter saves, Esc cancels) · "
           "**U** undo your last action · **J** next · **P** previous · Esc or Enter leaves the Search box")

with st.expander(f"Apply one action to all {count:,} rows in this filter", icon=":material/select_all:"):
    action = st.radio("Action", ["keep", "drop", "accept"], horizontal=True, key="bulk_action",
                      format_func={"keep": "Keep", "drop": "Drop", "accept": "Accept their fixes"}.get)
    confirm = st.checkbox(f"Yes, apply “{action}” to every row of this filter", key="bulk_confirm")
    st.button("Apply to all", disabled=not confirm, key="bulk_apply", type="primary",
              on_click=bulk, args=(ds.id, run.id, filters, thr_dict))
proposal.accept_confident(ws, ds.id, thr.eta, thr_dict)  # counts the rows, then a confirm step
