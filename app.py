"""CLEAR Studio, the Streamlit app: the frame around the four pages.

Run it with `clear-studio app` (or `streamlit run app.py`). CLEAR_STUDIO_WORKSPACE names the workspace file; this
script is the only part of the app that reads the environment.

The pages live in app_pages/: a folder named pages/ next to the entry script would put Streamlit in its legacy
multipage mode, where a page can run without this frame (a deep link on a fresh server, AppTest.switch_page).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `ui` sits next to this script
    sys.path.insert(0, str(ROOT))

from clear_core.names import DEFAULT_WORKSPACE  # noqa: E402
from ui import state, widgets  # noqa: E402

# A local file as the icon: a Material icon would make the browser fetch it from a font host (not offline).
st.set_page_config(page_title="CLEAR Studio", page_icon=str(ROOT / "ui" / "favicon.svg"), layout="wide",
                   initial_sidebar_state="expanded")
widgets.style()
state.init(os.environ.get("CLEAR_STUDIO_WORKSPACE") or DEFAULT_WORKSPACE)
state.keep_widget_values()

page = st.navigation([
    st.Page("app_pages/data.py", title="Data & Scoring", icon=":material/database:", default=True),
    st.Page("app_pages/explore.py", title="Explore", icon=":material/insights:"),
    st.Page("app_pages/review.py", title="Review", icon=":material/rate_review:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
    st.Page("app_pages/team.py", title="Team", icon=":material/groups:"),
])
st.logo(str(ROOT / "ui" / "logo.svg"), size="large")
state.sidebar()
with state.guard(page.title):
    page.run()
