"""The first-visit guide of the Data page, and the pointer to Explore once a scoring run has finished.

The guide is for someone who has not scored anything yet: it shows while the workspace holds no score run and the
user has not dismissed it. `clear-studio app --with-sample` (`make demo`) preloads the sample data, so "the
workspace is empty" cannot be the test: a first visit to a demo must still see it. Dismissing it is kept in the
session and in the page address (`guide=off`, written by ui/url.py), so a reload does not bring it back.
"""

from __future__ import annotations

import streamlit as st

from . import state, widgets

EXPLORE = "app_pages/explore.py"


def wanted() -> bool:
    """Show the guide: nothing scored in this workspace yet, and not dismissed in this session or its address."""
    if st.session_state.get("guide_off"):
        return False
    return not any(r.kind == "score" for r in state.ws().list_runs())


def dismiss() -> None:
    st.session_state["guide_off"] = True


def show(has_data: bool) -> bool:
    """The guide; True when its "Load the sample data" button was pressed (only offered on an empty workspace).

    With data already there (the preloaded sample), the welcome says what to do next and can be dismissed."""
    if not has_data:
        pressed = widgets.first_run_guide()
        if pressed:  # the guide did its part: the page now shows the sample and its Score step
            dismiss()
        return pressed
    name = state.dataset().name if state.dataset() is not None else "the dataset"
    with st.container(border=True, key="guide"):
        st.markdown("### Welcome to CLEAR Studio")
        st.markdown(f"Find the bad rows of a fine-tuning dataset with a local LLM, review the proposed fixes, export "
                    f"a curated file. “{widgets.literal(name)}” is loaded: **2 · Score** it below (the fast preset "
                    "takes a minute on a laptop), then look at its scores on **Explore** and decide on the flagged "
                    "rows on **Review**.")
        st.button("Got it", icon=":material/check:", key="guide_dismiss", on_click=dismiss)
    return False


def after_scoring(run_id: int | None) -> None:
    """Below a finished scoring run's message: where to look next."""
    st.page_link(EXPLORE, label=f"See the scores of run #{run_id} on Explore" if run_id else "See the scores on "
                 "Explore", icon=":material/insights:")
