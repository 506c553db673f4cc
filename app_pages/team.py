"""Team: what each reviewer has decided, and the rows where reviewers disagree (the adjudication queue).

A row is in the queue when reviewers' own latest decisions on it differ (another action, or another text); taking
one of them settles it: the decision is recorded again by the settling reviewer, marked as settling, on the
version of the row this page showed (a change meanwhile is a conflict, said on the page, and nothing is written).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from clear_core.store.decisions import DecisionConflict
from ui import state, widgets

SHOWN = 20  # disagreements drawn at once; settling them brings the next ones
DONE = {"keep": "Kept", "drop": "Dropped", "accept": "Fix accepted", "edit": "Edited"}
s = st.session_state


@state.safe
def settle(ds_id: int, row: int, action: str, text, version: int, whose: str) -> None:
    try:
        state.ws().record_decisions(ds_id, [row], action, state.reviewer(), new_text=text if action == "edit" else None,
                                    expected={row: version}, settles=True)
    except DecisionConflict as exc:
        theirs = exc.conflicts[0]["theirs"]
        s["_team_flash"] = ("info", f"Row {row} changed meanwhile ({theirs['action']} by {theirs['reviewer']}); "
                                    "look at it again below")
        return
    s["_team_flash"] = ("saved", f"Row {row} settled: {DONE[action].lower()}, as {whose} decided")


def progress_table(progress: pd.DataFrame) -> None:
    table = progress.rename(columns={"reviewer": "Reviewer", "rows": "Rows decided", "keep": "Kept",
                                     "drop": "Dropped", "accept": "Fixes accepted", "edit": "Edited",
                                     "standing": "Standing now", "last": "Last decision (UTC)"})
    st.dataframe(table, hide_index=True, width="stretch", key="team_progress",
                 column_config={"Standing now": st.column_config.NumberColumn(
                     help="Rows where this reviewer's decision is the row's decision now (no one decided after)")})


def disagreement(ds_id: int, row: int, lines: pd.DataFrame, example) -> None:
    version = int(lines["version"].iloc[0])
    with st.container(border=True, key=f"adj_{row}"):
        st.markdown(f"**Row {row}** · line {int(example.line)}")
        widgets.text_box(example.prompt_text, "Prompt", "cs-prompt")
        widgets.text_box(example.response, "Response")
        cols = st.columns(len(lines))
        for i, (col, line) in enumerate(zip(cols, lines.itertuples(index=False))):
            with col:
                when = line.ts.strftime("%Y-%m-%d %H:%M") if hasattr(line.ts, "strftime") else str(line.ts)
                # literal: "12:30:05"-like text would be read as an emoji shortcode
                st.markdown(f"**{widgets.literal(line.reviewer)}** · {DONE[line.action]} · "
                            f"{widgets.literal(when)}")
                if isinstance(line.text, str):
                    widgets.text_box(line.text, "Their text")
                st.button(f"Take {line.reviewer}'s", key=f"settle_{row}_{i}", icon=":material/gavel:",
                          on_click=settle, args=(ds_id, row, line.action, line.text, version, line.reviewer))


st.title("Team")
ds = state.dataset()
if ds is None:
    state.stop_with_hint("No dataset yet: load one on **Data & Scoring**.")
ws = state.ws()
kind, message = s.pop("_team_flash", (None, None))
if kind:
    st.toast(widgets.literal(message), icon=":material/check_circle:" if kind == "saved" else ":material/info:")

st.subheader("Progress per reviewer")
progress = ws.reviewer_progress(ds.id)
if progress.empty:
    st.info("No one has decided a row of this dataset yet.")
else:
    progress_table(progress)

st.subheader("Adjudication queue")
queue = ws.disagreements(ds.id, limit=SHOWN)
if queue.empty:
    st.success("No disagreements: where reviewers decided the same row, they decided alike.",
               icon=":material/handshake:")
    st.stop()
rows = sorted(set(queue["row_idx"].astype(int)))
st.caption(f"Rows where reviewers decided differently ({len(rows):,} shown"
           f"{', the first ' + str(SHOWN) if len(rows) >= SHOWN else ''}). Taking one decision settles the row, "
           f"signed by you ({widgets.literal(state.reviewer())}).")
examples = {int(e.row_idx): e for e in ws.rows(ds.id, row_idx=rows)}
for row in rows:
    disagreement(ds.id, row, queue[queue["row_idx"] == row], examples[row])
