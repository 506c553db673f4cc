"""Two reviewers in two browser contexts on the same rows, from the keyboard, and the keyboard flow of one reviewer
at 1366x768, in Chromium against `streamlit run app.py` (test_browser's server and helpers). Screenshots of the
Review page and the Team page go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from clear_core.store import Workspace  # noqa: E402
from test_browser import CHROMIUM, go, server, settle, shot, until  # noqa: E402, F401 - server: a fixture

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing")]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEW = {"width": 1366, "height": 768}
CONFLICT = "changed while you were looking at it"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def reviewer_page(browser, url: str, name: str):
    """A browser context of its own (its own Streamlit session), signed in as `name`, on Review."""
    pg = browser.new_context(viewport=VIEW).new_page()
    pg.goto(url)
    pg.get_by_role("heading", name="Data & Scoring").wait_for(timeout=60_000)
    settle(pg)
    pg.get_by_test_id("stSidebar").get_by_role("textbox", name="Reviewer").fill(name)
    pg.keyboard.press("Enter")
    settle(pg)
    go(pg, "Review")
    return pg


def shown(pg) -> int:
    return int(re.search(r"Row (\d+)", pg.locator(".cs-rowhead").first.inner_text()).group(1))


def decided_in_all(pg) -> int:
    found = re.search(r"([\d,]+) rows? decided in all", pg.get_by_test_id("stProgress").inner_text())
    return int(found.group(1).replace(",", ""))


def press(pg, key: str) -> None:
    pg.keyboard.press(key)
    settle(pg)


def test_two_reviewers_on_the_same_rows_lose_no_decision(browser, server):
    ana, bob = reviewer_page(browser, server.url, "ana"), reviewer_page(browser, server.url, "bob")
    saved = {"ana": 0, "bob": 0}
    conflicts = 0
    for round_ in range(4):
        row = shown(ana)
        assert shown(bob) == row  # both screens show the same undecided row
        first, second = (ana, bob) if round_ % 2 == 0 else (bob, ana)
        press(first, "d")  # the first drops it ...
        saved["ana" if first is ana else "bob"] += 1
        press(second, "k")  # ... the second, on a screen that still shows it undecided, keeps it
        assert until(second, lambda: second.get_by_text(CONFLICT).count() == 1), "the conflict was not shown"
        conflicts += 1
        if round_ == 0:
            shot(second, "8-review-conflict")
        text = second.locator(".st-key-conflict").inner_text()
        who = "ana" if first is ana else "bob"
        assert f"Dropped by {who}" in text and "Kept by" in text, second.locator(".st-key-conflict").inner_html()[:6000]
        if round_ < 2:
            press(second, "m")  # apply mine: made on the version just seen
            saved["bob" if first is ana else "ana"] += 1
        else:
            press(second, "t")  # keep theirs: nothing of the second reviewer's is written
        assert second.get_by_text(CONFLICT).count() == 0
        first.reload()  # the first reviewer's screen loads again (a rerun would do too)
        first.get_by_role("heading", name="Review").wait_for(timeout=30_000)
        settle(first)
    shot(ana, "9-review-after-conflicts")
    go(ana, "Team")
    ana.get_by_text("Adjudication queue").wait_for(timeout=30_000)
    assert ana.get_by_text(re.compile(r"^Row \d+")).count() == 2  # the two rows where "apply mine" was chosen
    shot(ana, "10-team")

    server.stop()
    with Workspace.open(server.path, read_only=True) as ws:
        log = ws.decision_log(ws.get_dataset("demo").id)
    assert log["reviewer"].value_counts().to_dict() == saved  # every saved action is in the log
    assert conflicts == 4
    # no entry overwrote what its reviewer had not seen: each was made on the row's previous entry
    for row, entries in log.groupby("row_idx"):
        before = [None] + entries["id"].tolist()[:-1]
        made_on = [None if pd.isna(b) else int(b) for b in entries["base_id"]]
        assert made_on == before, (row, entries[["id", "reviewer", "action", "base_id"]])


def test_keyboard_flow_after_filters_search_and_edit(browser, server):
    pg = reviewer_page(browser, server.url, "cy")
    pg.get_by_test_id("stSelectbox").filter(has_text="Rows").click()
    pg.get_by_role("option", name="All rows").click()
    settle(pg)
    press(pg, "k")  # no click elsewhere first: the select box gave the focus back
    assert until(pg, lambda: decided_in_all(pg) == 1)
    search = pg.get_by_role("textbox", name="Search")
    search.fill("Sentiment")  # every synthetic row's prompt
    press(pg, "Escape")  # Esc leaves the Search box (and applies it)
    assert pg.evaluate("document.activeElement.tagName") != "INPUT"
    pg.wait_for_timeout(500)  # leaving the box applies it: a rerun that a loaded machine may start late
    settle(pg)
    press(pg, "d")
    assert until(pg, lambda: decided_in_all(pg) == 2), pg.locator("[data-testid=stMain]").inner_text()[:800]
    search.fill("")
    press(pg, "Enter")  # Enter applies the Search box and leaves it too
    before = shown(pg)
    press(pg, "j")
    assert until(pg, lambda: shown(pg) != before)
    row = shown(pg)
    press(pg, "e")  # the editor opens with the cursor in it: typing goes into the text
    area = pg.get_by_role("textbox", name="Edited response")
    assert until(pg, lambda: pg.evaluate("document.activeElement.getAttribute('aria-label')") == "Edited response")
    pg.keyboard.type(" typed")
    save = pg.get_by_role("button", name="Save edit").bounding_box()
    cancel = pg.get_by_role("button", name="Cancel").bounding_box()
    assert save["y"] + save["height"] <= VIEW["height"] and cancel["y"] + cancel["height"] <= VIEW["height"]
    pg.screenshot(path=str(ROOT / "test-artifacts" / "screenshots" / "11-review-edit-1366x768.png"))
    assert area.input_value().endswith(" typed")
    press(pg, "Control+Enter")
    assert until(pg, lambda: decided_in_all(pg) == 3)
    pg.get_by_test_id("stCheckbox").filter(has_text="Undecided only").locator("label").click()
    settle(pg)
    for _ in range(4):  # from the queue's start to the edited row: its chip says who decided it
        if shown(pg) == row:
            break
        press(pg, "j")
    assert shown(pg) == row
    assert pg.locator(".cs-rowhead .cs-chip").first.inner_text() == "Edited by cy"
    pg.screenshot(path=str(ROOT / "test-artifacts" / "screenshots" / "12-review-1366x768.png"))
