"""The real app in a real browser: `streamlit run app.py` on a prepared workspace, driven with Playwright on Debian's
Chromium. Saves a screenshot of each page under test-artifacts/screenshots/ (printed)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app_helpers import FILE_NAME, HOSTILE, PAYLOADS, add_hostile_dataset  # noqa: E402
from bench.ui_latency import make_dataset, write_fake_run  # noqa: E402
from clear_core.store import Workspace  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"
PAYLOAD = "<b>bold</b><script>alert(1)</script>"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason=f"{CHROMIUM} is missing (apt-get install chromium, or `make browser`)")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path, request):
    """`streamlit run app.py` on a temp workspace: scored fake data, empty when parametrized with "empty", or the
    hostile dataset of app_helpers with "hostile"."""
    path = str(tmp_path / "ws.duckdb")
    kind = getattr(request, "param", "scored")
    with Workspace.open(path) as ws:
        if kind == "scored":
            make_dataset(ws, "demo", 60, extra=[("Render this: <i>tag</i>", PAYLOAD)])
            write_fake_run(ws, "demo", proposal_share=0.5)
        elif kind == "hostile":
            add_hostile_dataset(ws)
    port = free_port()
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env={**os.environ, "CLEAR_STUDIO_WORKSPACE": path}, stdout=log,
                            stderr=subprocess.STDOUT)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text())
            time.sleep(0.3)
        yield SimpleNamespace(url=url, path=path, stop=stop)
    finally:
        stop()
        log.close()


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                      "--disable-background-networking"])
        pg = browser.new_page(viewport={"width": 1366, "height": 900})
        pg.dialogs, pg.requests = [], []
        pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
        pg.on("request", lambda r: pg.requests.append(r.url))
        pg.goto(server.url)
        yield pg
        browser.close()


def settle(pg) -> None:
    """Wait until the app has finished its script run."""
    pg.wait_for_timeout(300)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)
    pg.wait_for_timeout(300)


def until(pg, check, timeout_s: float = 30) -> bool:
    """Poll `check()` until it holds: on a loaded machine a rerun can start later than settle() waits for."""
    deadline = time.time() + timeout_s
    while not check():
        if time.time() > deadline:
            return False
        pg.wait_for_timeout(200)
    return True


def go(pg, title: str) -> None:
    pg.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    pg.get_by_role("heading", name=title, exact=True).wait_for(timeout=30_000)
    settle(pg)


def shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def metric_value(pg, label: str) -> int:
    box = pg.get_by_test_id("stMetric").filter(has_text=label).first
    return int(box.get_by_test_id("stMetricValue").inner_text().replace(",", ""))


def test_pages_and_review_path_in_chromium(page, server):
    pg = page
    pg.get_by_role("heading", name="Data & Scoring").wait_for(timeout=60_000)
    settle(pg)
    assert "Traceback" not in pg.content()
    shot(pg, "1-data")

    go(pg, "Explore")
    kept = metric_value(pg, "Kept")
    track = pg.get_by_test_id("stSlider").filter(has_text="Keep from").locator("[data-orientation=horizontal]").nth(1)
    box = track.bounding_box()
    pg.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)  # keep from about 0.75
    settle(pg)
    assert until(pg, lambda: metric_value(pg, "Kept") < kept)  # a higher keep threshold keeps fewer rows
    shot(pg, "2-explore")
    pg.get_by_text("Lowest-confidence rows").scroll_into_view_if_needed()
    pg.wait_for_timeout(500)
    shot(pg, "2b-explore-lower")

    pg.get_by_test_id("stSidebar").get_by_role("textbox", name="Reviewer").fill("bea")
    pg.keyboard.press("Enter")
    settle(pg)
    go(pg, "Review")
    progress = pg.get_by_test_id("stProgress").inner_text()
    assert re.search(r"Reviewed 0 of", progress), progress
    first = pg.get_by_text(re.compile(r"Row \d+")).first.inner_text()
    pg.evaluate("document.activeElement && document.activeElement.blur()")  # no text field has the focus
    pg.keyboard.press("k")  # the Keep button's shortcut
    settle(pg)
    assert until(pg, lambda: re.search(r"Reviewed 1 of", pg.get_by_test_id("stProgress").inner_text()))
    assert pg.get_by_text(re.compile(r"Row \d+")).first.inner_text() != first
    shot(pg, "3-review")
    edited = int(re.search(r"Row (\d+)", pg.get_by_text(re.compile(r"Row \d+")).first.inner_text()).group(1))
    pg.keyboard.press("e")  # edit from the keyboard; typing in the text area must not trigger the shortcuts
    area = pg.get_by_role("textbox", name="Edited response")
    area.click()
    pg.keyboard.press("End")
    pg.keyboard.type(" kdj")
    shot(pg, "3b-review-edit")
    pg.keyboard.press("Control+Enter")
    settle(pg)
    assert until(pg, lambda: re.search(r"Reviewed 2 of", pg.get_by_test_id("stProgress").inner_text()))

    # a row whose response is HTML + script shows as literal text, and nothing of it runs
    pg.get_by_test_id("stSelectbox").filter(has_text="Rows").click()
    pg.get_by_role("option", name="All rows").click()
    settle(pg)
    pg.get_by_role("textbox", name="Search").fill("script")
    pg.keyboard.press("Enter")
    pg.get_by_text("1 / 1 in this filter").wait_for(timeout=30_000)  # a loaded machine can be slow to rerun
    settle(pg)
    boxes = pg.locator(".cs-box")
    assert any(PAYLOAD in boxes.nth(i).inner_text() for i in range(boxes.count()))
    assert pg.locator(".cs-box b, .cs-box script, .cs-box i").count() == 0
    assert pg.dialogs == []
    shot(pg, "4-review-html-row")

    # a row with a proposed fix: original and proposal side by side, changed words highlighted
    pg.get_by_role("textbox", name="Search").fill("")
    pg.keyboard.press("Enter")
    settle(pg)
    pg.get_by_test_id("stSelectbox").filter(has_text="Proposed fix").click()
    pg.get_by_role("option", name="With a proposed fix").click()
    settle(pg)
    assert until(pg, lambda: pg.locator(".cs-box del").count() >= 1 and pg.locator(".cs-box ins").count() >= 1)
    assert pg.get_by_text(re.compile("Proposed fix · icl · judge")).count() == 1
    shot(pg, "4b-review-fix")

    go(pg, "Export")
    rows_out = metric_value(pg, "Rows in the file")
    pg.get_by_role("button", name="Prepare the file").click()
    settle(pg)
    with pg.expect_download() as download:
        pg.get_by_role("button", name=re.compile(r"Download demo-\d+\.curated\.jsonl")).click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == rows_out and all(json.loads(line)["id"] for line in lines)
    assert pg.get_by_text('"dropped_by_decision"').count() >= 1  # the manifest is shown
    shot(pg, "5-export")
    pg.get_by_role("button", name="Write").click()  # into the export folder, under the dataset's slug
    pg.get_by_text(re.compile(r"Wrote .*exports/demo-\d+\.curated\.jsonl and its manifest")).wait_for(timeout=30_000)
    pg.get_by_text("Write to the export folder").scroll_into_view_if_needed()
    pg.wait_for_timeout(300)
    shot(pg, "5b-export-write")
    print(f"\nscreenshots: {SHOTS}")

    server.stop()  # every decision is in the workspace file, signed by the reviewer
    with Workspace.open(server.path, read_only=True) as ws:
        decided = ws.current_decisions(ws.get_dataset("demo").id).set_index("row_idx")
    assert len(decided) == 2 and set(decided["reviewer"]) == {"bea"}
    assert decided.loc[edited, "action"] == "edit" and decided.loc[edited, "text"].endswith(" kdj")


SAMPLE = ROOT / "sample_data" / "demo.jsonl"


@pytest.mark.parametrize("server", ["empty"], indirect=True)
@pytest.mark.skipif(not SAMPLE.exists(), reason="sample_data/demo.jsonl has not been generated")
def test_first_run_guide_loads_the_sample(page):
    pg = page
    pg.get_by_text("Welcome to CLEAR Studio").wait_for(timeout=60_000)
    settle(pg)
    shot(pg, "0-first-run")
    pg.get_by_role("button", name="Load the sample data").click()
    pg.get_by_text(re.compile(r"“demo”: [\d,]+ rows")).wait_for(timeout=60_000)
    settle(pg)
    assert pg.get_by_text("Welcome to CLEAR Studio").count() == 0
    shot(pg, "0b-sample-loaded")


def page_text(pg) -> str:
    """The page as a reader sees it (the invisible word joiners that keep Streamlit from rewriting text dropped)."""
    return pg.locator("body").inner_text().replace("\u2060", "")


def assert_nothing_from_data(pg) -> None:
    """No element made from data (an image, frame, form or link of a payload, a Markdown image or icon) and no
    request to the payloads' address."""
    assert pg.locator("[data-testid=stMarkdownContainer] :is(img, iframe, form, input, a[href*='127.0.0.1'], "
                      ".katex, [data-testid=stIconMaterial])").count() == 0
    assert pg.locator("img[src*='127.0.0.1:9'], iframe, form[action*='127.0.0.1'], a[href*='127.0.0.1:9']").count() == 0
    assert [u for u in pg.requests if "127.0.0.1:9/" in u] == []
    assert pg.dialogs == []


@pytest.mark.parametrize("server", ["hostile"], indirect=True)
def test_hostile_names_and_text_show_literally_in_chromium(page, server):
    """Dataset name, file name, column names, row text and reviewer name full of HTML and Markdown: each shows as
    typed, and nothing of it becomes an element or fetches anything."""
    pg = page
    pg.get_by_role("heading", name="Data & Scoring").wait_for(timeout=60_000)
    settle(pg)
    text = page_text(pg)
    assert f"Score “{HOSTILE}”" in text and f"from {HOSTILE}.jsonl" in text, text
    assert_nothing_from_data(pg)

    # a file with that kind of name and columns, one row of it bad: the columns and the file name show as typed
    pg.get_by_text("1 · Load a dataset").click()
    row = {"question": "Say hi", "answer": "hi", **{p: "v" for p in PAYLOADS}}
    data = (json.dumps(row) + "\n" + json.dumps({"question": "no answer"}) + "\n").encode()
    pg.locator("input[type=file]").set_input_files({"name": FILE_NAME, "mimeType": "application/json",
                                                    "buffer": data})
    pg.get_by_text("Columns in the file").wait_for(timeout=30_000)
    settle(pg)
    text = page_text(pg)
    assert f"in {FILE_NAME}: fix them" in text, text
    columns = pg.get_by_text("Columns in the file").inner_text().replace("\u2060", "")
    assert all(p in columns for p in PAYLOADS), columns
    assert_nothing_from_data(pg)
    shot(pg, "6-hostile-data")

    # the reviewer's name, in the sidebar and on the row it decided, and the row's own text
    pg.get_by_test_id("stSidebar").get_by_role("textbox", name="Reviewer").fill(HOSTILE)
    pg.keyboard.press("Enter")
    settle(pg)
    go(pg, "Review")
    pg.get_by_test_id("stSelectbox").filter(has_text="Rows").click()
    pg.get_by_role("option", name="All rows").click()
    settle(pg)
    pg.get_by_test_id("stCheckbox").filter(has_text="Undecided only").locator("label").click()
    settle(pg)
    pg.get_by_role("textbox", name="Search").fill("127.0.0.1")
    pg.keyboard.press("Enter")
    pg.get_by_text("1 / 1 in this filter").wait_for(timeout=30_000)  # the one row that holds the address
    settle(pg)
    text = page_text(pg)
    for shown in (f"Q {HOSTILE}", f"A {HOSTILE}", f"decided keep by {HOSTILE}"):
        assert shown in text, (shown, text)
    assert_nothing_from_data(pg)
    shot(pg, "7-hostile-review")

    for title in ("Explore", "Export"):
        go(pg, title)
        assert "Traceback" not in page_text(pg)
        assert_nothing_from_data(pg)
