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
        found = re.search(r"\*\*Row (\d+)\*\*", m.value)
        if found:
            return int(found.group(1))
    raise AssertionError("the Review page shows no row")
