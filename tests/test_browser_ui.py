"""The real app in Chromium: it loads nothing from outside the machine, right-to-left rows read right to left, and
screenshots of Data and Explore at 1366x768 under test-artifacts/screenshots/ (the server and page fixtures and the
helpers are test_browser's)."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ui_latency import make_dataset, write_fake_run  # noqa: E402
from clear_core.store import Workspace  # noqa: E402
from test_browser import CHROMIUM, go, page, server, settle, shot  # noqa: E402, F401 - fixtures used by name

ARABIC = ("ما هي عاصمة فرنسا؟", "عاصمة فرنسا هي باريس.")
HEBREW = ("מהי בירת צרפת?", "בירת צרפת היא פריז.")
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
WEIGHTS = {"likelihood": 0.55, "neighbors": 0.45, "reflection": 0.0}  # one signal that does not count

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing"),
              pytest.mark.parametrize("server", ["prepared"], indirect=True)]  # the workspace is made below


@pytest.fixture(autouse=True)
def workspace(tmp_path):
    """The scored workspace the server opens (test_browser's server uses tmp_path/ws.duckdb and, for a kind it does
    not know, adds nothing): synthetic rows plus an Arabic and a Hebrew one. Autouse: made before the server starts."""
    with Workspace.open(str(tmp_path / "ws.duckdb")) as ws:
        make_dataset(ws, "demo", 80, extra=[ARABIC, HEBREW])
        run_id = write_fake_run(ws, "demo", proposal_share=0.5)
        ws.update_run(run_id, weights=WEIGHTS)


def drawn(pg) -> None:
    """Wait until every plot of the page is drawn and the page answers again (on a loaded machine, software GL
    keeps the page busy for a minute after the plots appear)."""
    charts = pg.get_by_test_id("stPlotlyChart")
    charts.first.wait_for(state="attached", timeout=180_000)
    for i in range(charts.count()):
        charts.nth(i).locator(".gtitle, .legend").first.wait_for(state="attached", timeout=120_000)
    pg.wait_for_timeout(1000)
    pg.evaluate("0")


def external(urls: list[str]) -> list[str]:
    """The URLs that leave the machine (data: and blob: URLs stay in the page)."""
    return [u for u in urls if urlparse(u).scheme not in ("data", "blob") and urlparse(u).hostname not in LOCAL_HOSTS]


def test_the_app_loads_nothing_from_another_host(page):
    pg = page
    pg.get_by_role("heading", name="Data & Scoring").wait_for(timeout=60_000)
    settle(pg)
    for title in ("Explore", "Review", "Export", "Data & Scoring"):
        go(pg, title)
        if title == "Explore":
            drawn(pg)
    icons = pg.eval_on_selector_all("link[rel~=icon]", "els => els.map(e => e.href)")
    assert icons and external(icons) == [], icons  # Chromium does not report favicon fetches as requests
    assert len(pg.requests) > 10 and external(pg.requests) == [], external(pg.requests)


def search(pg, text: str) -> None:
    pg.get_by_test_id("stSelectbox").filter(has_text="Rows").click()
    pg.get_by_role("option", name="All rows").click()
    settle(pg)
    pg.get_by_role("textbox", name="Search").fill(text)
    pg.keyboard.press("Enter")
    pg.get_by_text("1 / 1 in this filter").wait_for(timeout=30_000)
    settle(pg)


def test_arabic_and_hebrew_rows_read_right_to_left(page):
    pg = page
    pg.get_by_role("heading", name="Data & Scoring").wait_for(timeout=60_000)
    settle(pg)
    go(pg, "Review")
    for prompt, response in (ARABIC, HEBREW):
        search(pg, response.split()[-1].rstrip("."))
        shot(pg, "ui-review-rtl")
        for text in (prompt, response):
            box = pg.locator(".cs-box", has_text=text).first
            assert box.evaluate("e => getComputedStyle(e).direction") == "rtl", text
            assert box.evaluate("e => getComputedStyle(e).textAlign") in ("start", "right")
    pg.get_by_role("textbox", name="Search").fill("")
    pg.keyboard.press("Enter")
    settle(pg)
    english = pg.locator(".cs-box", has_text="Sentiment of").first  # a left-to-right row stays left to right
    assert english.evaluate("e => getComputedStyle(e).direction") == "ltr"


def test_screenshots_and_a_click_on_a_bar_opens_its_rows_in_review(page):
    pg = page
    pg.set_viewport_size({"width": 1366, "height": 768})
    pg.get_by_role("heading", name="Data & Scoring").wait_for(timeout=60_000)
    settle(pg)
    shot(pg, "ui-1-data")
    pg.get_by_text("1 · Load a dataset").click()  # a file under a name in use: replace or rename, in the page
    pg.locator("input[type=file]").set_input_files({"name": "demo.jsonl", "mimeType": "application/json",
                                                    "buffer": b'{"instruction": "Say hi", "output": "hi"}\n'})
    pg.get_by_role("button", name="Import", exact=True).click()
    pg.get_by_role("button", name="Replace the existing dataset").wait_for(timeout=30_000)
    assert pg.get_by_role("textbox", name="Import under another name").input_value() == "demo-2"
    assert "--replace" not in pg.locator("body").inner_text()
    pg.get_by_role("button", name="Replace the existing dataset").scroll_into_view_if_needed()
    shot(pg, "ui-1b-data-name-taken")
    go(pg, "Explore")
    charts = pg.get_by_test_id("stPlotlyChart")
    drawn(pg)
    titles = pg.locator(".gtitle").evaluate_all("els => els.map(e => e.textContent)")
    assert titles[0] == "confidence", titles  # then the signals that count, heaviest first, by their plain names
    assert titles[1].startswith("Model finds the answer likely · weight 0.55") and "likelihood" in titles[1]
    assert titles[2].startswith("Neighbours agree · weight 0.45"), titles
    pg.wait_for_timeout(500)
    shot(pg, "ui-2-explore")
    pg.get_by_text("signal(s) that do not count in this run").click()  # the weight-0 signal, folded away
    pg.wait_for_timeout(500)
    shot(pg, "ui-2b-explore-signals")
    bars = charts.nth(1).locator(".bars .point path")  # the heaviest signal's bars
    tallest = max(range(bars.count()), key=lambda i: bars.nth(i).bounding_box()["height"])
    box = bars.nth(tallest).bounding_box()  # plotly's drag layer lies above the bars: click where one is
    pg.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    pg.get_by_role("heading", name="Review", exact=True).wait_for(timeout=30_000)
    settle(pg)
    note = pg.get_by_text("rows picked on Explore").inner_text()
    picked = int(note.split(" rows picked")[0].replace(",", ""))
    assert picked > 0 and "Model finds the answer likely" in note, note
    assert pg.get_by_text(f"1 / {picked} in this filter").count() == 1
    shot(pg, "ui-3-review-picked")
