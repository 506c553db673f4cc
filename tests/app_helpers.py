"""Helpers shared by the AppTest modules (imported as `app_helpers`, like `conftest`)."""

from __future__ import annotations

import re


def close_app_workspace(path: str, wait_s: float = 60) -> None:
    """Stop the app's background job on `path`, if one runs, then close the Workspace the app cached for it (the
    app keeps one per process)."""
    from ui import jobs, state

    job = jobs.current(path)
    if job is not None:
        job.cancel.set()
        jobs.wait(job, wait_s)
    try:
        state.workspace(path).close()
    finally:
        state.workspace.clear()


def shown_row(at) -> int:
    """The row shown on the Review page (from its header line)."""
    for m in at.markdown:
        found = re.search(r"<b>Row (\d+)</b>", m.value)
        if found:
            return int(found.group(1))
    raise AssertionError("the Review page shows no row")


# Text that Streamlit's Markdown, or a browser, would turn into something other than itself: HTML elements that
# fetch a URL, a colour directive, a link, math, bold and a Material icon.
PAYLOADS = ["<img src=http://127.0.0.1:9/x>", "<iframe src=http://127.0.0.1:9/f></iframe>",
            "<form action=http://127.0.0.1:9/s><input name=q></form>", ":red[x]", "[link](http://127.0.0.1:9/)",
            "$x^2$", "**b**", ":material/warning:"]
HOSTILE = " ".join(PAYLOADS)
# A file name cannot hold '/'.
FILE_NAME = "<img src=x> :red[x] $x^2$ **b** [l](x).jsonl"


def add_hostile_dataset(ws, n: int = 30) -> tuple[int, int]:
    """A scored dataset whose name, file name, one row's prompt and response, and the reviewer of that row's
    decision are all HOSTILE; returns (dataset id, that row)."""
    from bench.ui_latency import make_dataset, write_fake_run

    info = make_dataset(ws, HOSTILE, n, extra=[(f"Q {HOSTILE}", f"A {HOSTILE}")])
    write_fake_run(ws, HOSTILE, proposal_share=0.0)
    ws.record_decisions(info.id, [n], "keep", HOSTILE)
    return info.id, n


def markdown_strings(at) -> list[str]:
    """Every string the page hands to Streamlit's Markdown renderer: element bodies and widget labels (selectbox
    options, text fields, code, text and tables show as plain text and are left out)."""
    plain = {"selectbox", "multiselect", "text_input", "text_area", "number_input", "code", "text", "json",
             "arrow_data_frame", "exception"}
    out = []
    for node in at._tree:
        kind = getattr(node, "type", "")
        for attr in ("label",) if kind in plain else ("label", "value"):
            try:
                value = getattr(node, attr)
            except Exception:  # noqa: BLE001 - an element without this field
                continue
            if isinstance(value, str):
                out.append(value)
        if kind == "radio":
            out.extend(str(o) for o in node.options)
    return out
