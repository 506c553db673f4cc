"""Shared widgets: escaped text boxes, the word diff, band metrics, run progress, input errors, the first-run guide.

Text from a user or a dataset is never trusted. Where it goes into Markdown (st.markdown, captions, alerts, labels,
toasts, headers) it goes through `literal`; in raw HTML (the boxes below) through `html_text`, written on one line
(newlines as <br>) so that the Markdown renderer treats the whole box as one raw HTML block. Selectbox options,
dataframes, st.text and st.code show text as it is and need neither.
"""

from __future__ import annotations

import difflib
import html
import re

import pandas as pd
import streamlit as st

BAND_COLORS = {"keep": "#16a34a", "review": "#d97706", "drop": "#dc2626", "fix": "#7c3aed"}
BAND_LABELS = {"keep": "Keep", "review": "Review", "drop": "Drop"}

_CSS = """
<style>
.cs-box {border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 12px; background: #fbfbfd;
         white-space: pre-wrap; word-break: break-word; font-size: 0.92rem; line-height: 1.45;
         max-height: 320px; overflow-y: auto; text-align: start;}  /* start: right for dir=auto RTL text */
.cs-box.cs-prompt {background: #f3f5f9;}
.cs-box del {background: #fee2e2; color: #991b1b; text-decoration: line-through;}
.cs-box ins {background: #dcfce7; color: #166534; text-decoration: none;}
.cs-label {font-size: 0.78rem; font-weight: 600; color: #6b7280; text-transform: uppercase;
           letter-spacing: .04em; margin: 4px 0 2px;}
.cs-chip {display: inline-block; padding: 1px 9px; border-radius: 999px; color: white; font-size: 0.8rem;
          font-weight: 600;}
.cs-stats {display: flex; gap: 8px; flex-wrap: wrap; margin: 2px 0 6px;}
.cs-stat {border: 1px solid #e5e7eb; border-radius: 8px; padding: 3px 10px; font-size: 0.85rem; background: white;}
.cs-stat span {color: #6b7280; margin-right: 6px;}
.cs-rowhead {margin: 2px 0 10px; line-height: 1.6; overflow-wrap: anywhere;}
.cs-rowhead .cs-pos {float: right; color: #6b7280; margin-left: 12px;}
.stTextArea textarea {unicode-bidi: plaintext; text-align: start;}
section.main .block-container, .stMainBlockContainer {padding-top: 2.2rem;}
</style>
"""


def style() -> None:
    st.html(_CSS)


# Characters that start Markdown or Streamlit syntax inline: escapes, code, emphasis, links, directives such as
# :red[x] and :material/x:, math, strikethrough, tables, HTML and entities. They are written as character
# references, which the parser reads back as plain characters: the text shows as typed, in Markdown and in HTML.
_REFS = {c: f"&#{ord(c)};" for c in "\\`*_[]:$~|"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;",
                                                      "'": "&#x27;"}
# A heading or list marker where the text starts ("# x", "- x", "+ x", "1. x", "1) x"; a quote's ">" is in _REFS).
_LINE_START = re.compile(r"^(\d{0,9})([#+.)-])")
# What Streamlit rewrites after parsing, in plain text: " -> " and its kin to arrows, :streamlit: to its logo, URLs
# and e-mail addresses to links. An invisible word joiner (U+2060) after the first character keeps them as typed.
_REWRITTEN = re.compile(r"(?<!\S)(?:<->|->|<-|--|>=|<=|~=)(?!\S)|:streamlit:|:(?=//)|\bwww(?=\.)|@(?=[-\w]+\.\w)")
_LINE_END = re.compile(r"\r\n|\r|\n")


def literal(text) -> str:
    """`text` for any Markdown context (st.markdown, st.caption, alerts, labels, toasts): it shows as typed, with
    no formatting, link, icon, math or HTML of its own. Line breaks become spaces."""
    text = " ".join(_LINE_END.split(str(text if text is not None else ""))).strip()
    text = _REWRITTEN.sub(lambda m: m.group(0)[0] + "\u2060" + m.group(0)[1:], text)
    text = "".join(_REFS.get(c, c) for c in text)
    return _LINE_START.sub(lambda m: f"{m.group(1)}&#{ord(m.group(2))};", text)


def html_text(text: str) -> str:
    """Text for raw HTML (one HTML block): the characters of `literal` as references too, so that it shows as typed
    even where the block is read as Markdown; `:` matters even in HTML (Streamlit rewrites ":material/" anywhere in
    the source). Every line break becomes <br>, since a blank line would end the HTML block."""
    return "<br>".join("".join(_REFS.get(c, c) for c in line) for line in _LINE_END.split(text or ""))


def text_box(text: str, label: str | None = None, kind: str = "") -> None:
    """Show dataset text literally (escaped): HTML or script in it appears as text; dir=auto right-aligns a text
    that starts in Arabic or Hebrew."""
    head = f"<div class='cs-label'>{html_text(label)}</div>" if label else ""
    st.markdown(f"{head}<div class='cs-box {kind}' dir='auto'>{html_text(text)}</div>", unsafe_allow_html=True)


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def diff_html(old: str, new: str) -> tuple[str, str]:
    """Word-level diff of two texts as two escaped HTML strings: removed words in <del>, added ones in <ins>."""
    a, b = _TOKEN.findall(old or ""), _TOKEN.findall(new or "")
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old_part, new_part = html_text("".join(a[i1:i2])), html_text("".join(b[j1:j2]))
        if op == "equal":
            left.append(old_part)
            right.append(new_part)
            continue
        if old_part:
            left.append(f"<del>{old_part}</del>")
        if new_part:
            right.append(f"<ins>{new_part}</ins>")
    return "".join(left), "".join(right)


def diff_boxes(old: str, new: str, old_label: str, new_label: str) -> None:
    """The original and the proposed text side by side, with the changed words highlighted."""
    left, right = diff_html(old, new)
    col_a, col_b = st.columns(2)
    for col, label, body in ((col_a, old_label, left), (col_b, new_label, right)):
        col.markdown(f"<div class='cs-label'>{html_text(label)}</div><div class='cs-box' dir='auto'>{body}</div>",
                     unsafe_allow_html=True)


def stat_strip(values: dict, hints: dict | None = None) -> None:
    """Small labelled numbers on one line (a row's signal values); NaN shows as a dash; hints[name] is shown
    when the pointer rests on a number."""
    hints = hints or {}
    cells = "".join(f"<div class='cs-stat' title='{html_text(hints.get(k, ''))}'>"
                    f"<span>{html_text(str(k))}</span><b>"
                    f"{_number(v)}</b></div>" for k, v in values.items())
    st.markdown(f"<div class='cs-stats'>{cells}</div>", unsafe_allow_html=True)


def _number(v) -> str:
    """A signal value for display: three decimals, or two significant digits below 0.001 (a geometric-mean
    probability of a short answer is often 1e-5, which three decimals would show as 0.000); NaN as a dash."""
    if v is None or v != v:
        return "—"
    v = float(v)
    return f"{v:.1e}" if 0 < abs(v) < 0.001 else f"{v:.3f}"


def chip(band: str) -> str:
    return f"<span class='cs-chip' style='background:{BAND_COLORS[band]}'>{BAND_LABELS[band]}</span>"


def band_metrics(counts: dict) -> None:
    """One row of metrics: kept / to review / dropped / with a confident correction, with shares of the total."""
    total = max(int(counts.get("total", 0)), 1)
    items = [("keep", ":green[Kept]"), ("review", ":orange[To review]"), ("drop", ":red[Dropped]"),
             ("confident_fix", ":violet[Confident fix]")]
    for col, (key, label) in zip(st.columns(len(items)), items):
        value = int(counts.get(key, 0))
        col.metric(label, f"{value:,}", f"{100 * value / total:.1f} % of {total:,}", delta_color="off",
                   delta_arrow="off", border=True)


def run_progress(progress, phase: str) -> None:
    """A progress bar with the current stage's own progress: what it does, done / total, the smoothed rate and the
    time left, counted down between two reports (clear_core.runs.Progress.text)."""
    if progress is None:
        st.progress(0.0, text=f"{phase.capitalize()}…")
        return
    done, total = int(progress.done), max(int(progress.total), 1)
    st.progress(min(done / total, 1.0), text=progress.text())


def input_errors(errors, limit: int = 200) -> None:
    """Bad rows of an input file as a readable table (file, line, field, message)."""
    rows = [e.as_dict() for e in errors[:limit]]
    st.dataframe(pd.DataFrame(rows, columns=["file", "line", "field", "message"]), hide_index=True,
                 width="stretch")
    if len(errors) > limit:
        st.caption(f"… and {len(errors) - limit:,} more")


def first_run_guide() -> bool:
    """The empty-workspace welcome: three steps and a button; True when the button was pressed."""
    with st.container(border=True):
        st.markdown("### Welcome to CLEAR Studio")
        st.markdown("Find the bad rows of a fine-tuning dataset with a local LLM, review the proposed fixes, "
                    "export a curated file. This workspace is empty: start with the sample data.")
        steps = [(":material/upload_file: **1. Load**", "a JSONL / JSON / CSV / Parquet file, or the sample."),
                 (":material/speed: **2. Score**", "every row gets a confidence in [0, 1] from the local model."),
                 (":material/rate_review: **3. Review**", "keep, drop or accept fixes for the flagged rows, "
                                                          "then export.")]
        for col, (title, body) in zip(st.columns(3), steps):
            col.markdown(f"{title}  \n{body}")
        return st.button("Load the sample data", type="primary", icon=":material/dataset:", key="load_sample")
