"""A reload (F5) in a real browser loses nothing: reviewer, dataset (not the last imported), thresholds and filters
come back from the page address and the workspace. Also the Workspace field's question and the first-visit guide
on a preloaded sample. Screenshots at 1366x768 under test-artifacts/screenshots/ (session-*.png)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ui_latency import make_dataset, write_fake_run  # noqa: E402
from clear_core.store import Workspace  # noqa: E402
from test_browser import SHOTS, go, metric_value, page, pytestmark, server, settle, until  # noqa: E402,F401


@pytest.fixture
def first(tmp_path):
    """Before the server's own data ('demo', imported last): 'first', scored, that the test picks."""
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        make_dataset(ws, "first", 50)
        write_fake_run(ws, "first", seed=1, proposal_share=0.5)


@pytest.fixture
def unscored(tmp_path):
    """What `clear-studio app --with-sample` leaves: a dataset, nothing scored."""
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        make_dataset(ws, "demo", 30)


def view(pg, name: str) -> None:
    """A screenshot of what a 1366x768 screen shows (not the full page: what is below the fold is not seen)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"session-{name}.png"))


def kept_rows(pg) -> int:
    """The Explore page's Kept count, once the page has drawn it (a loaded machine draws its charts slowly)."""
    pg.get_by_test_id("stMetric").filter(has_text="Kept").first.wait_for(timeout=120_000)
    return metric_value(pg, "Kept")


def chosen(where, label: str) -> str:
    """The option a select box shows."""
    return where.get_by_role("combobox", name=label).input_value()


def sidebar_box(pg, name: str):
    return pg.get_by_test_id("stSidebar").get_by_role("textbox", name=name)


def test_a_reload_keeps_the_reviewer_dataset_thresholds_and_filters(first, page, server):
    pg = page
    pg.set_viewport_size({"width": 1366, "height": 768})
    pg.get_by_role("heading", name="Data & Scoring").wait_for(timeout=60_000)
    settle(pg)
    sidebar = pg.get_by_test_id("stSidebar")
    assert chosen(sidebar, "Dataset") == "demo"  # the last imported
    sidebar.get_by_test_id("stSelectbox").filter(has_text="Dataset").click()
    pg.get_by_role("option", name="first").click()
    settle(pg)
    sidebar_box(pg, "Reviewer").fill("bea")
    pg.keyboard.press("Enter")
    settle(pg)

    go(pg, "Explore")
    kept = kept_rows(pg)
    track = pg.get_by_test_id("stSlider").filter(has_text="Keep from").locator("[data-orientation=horizontal]").nth(1)
    box = track.bounding_box()
    pg.mouse.click(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2)  # keep from about 0.8
    settle(pg)
    assert until(pg, lambda: metric_value(pg, "Kept") < kept)
    moved = metric_value(pg, "Kept")
    assert until(pg, lambda: "t_keep=" in pg.url)
    go(pg, "Review")
    pg.get_by_test_id("stSelectbox").filter(has_text="Rows").click()
    pg.get_by_role("option", name="Keep band").click()
    settle(pg)
    assert until(pg, lambda: "band=keep" in pg.url)
    view(pg, "1-review-before-reload")

    pg.reload()
    pg.get_by_role("heading", name="Review").wait_for(timeout=60_000)
    settle(pg)
    view(pg, "2-review-after-reload")
    assert pg.get_by_text("Nothing to review yet").count() == 0
    assert sidebar_box(pg, "Reviewer").input_value() == "bea"
    assert chosen(sidebar, "Dataset") == "first"
    assert chosen(pg, "Rows") == "Keep band"
    assert pg.get_by_text(re.compile(r"in this filter")).count() >= 1  # a row of the queue is shown
    pg.evaluate("document.activeElement && document.activeElement.blur()")
    pg.keyboard.press("k")  # signed with the name from before the reload
    settle(pg)
    assert until(pg, lambda: "1 row decided in all" in pg.get_by_test_id("stProgress").inner_text())
    go(pg, "Explore")
    assert kept_rows(pg) == moved  # the threshold came back
    view(pg, "3-explore-after-reload")
    go(pg, "Export")
    assert pg.get_by_text(re.compile(r"kept with run #\d+, which the CLI")).count() == 1
    view(pg, "6-export")

    server.stop()
    with Workspace.open(server.path, read_only=True) as ws:
        info = ws.get_dataset("first")
        decided = ws.current_decisions(info.id)
        stored = ws.latest_run(info.id, "score", status="done").thresholds
    assert len(decided) == 1 and set(decided["reviewer"]) == {"bea"}
    assert stored is not None and stored["t_keep"] > 0.7


@pytest.mark.parametrize("server", ["empty"], indirect=True)
def test_the_workspace_field_asks_and_the_guide_shows_on_a_preloaded_sample(unscored, page, server, tmp_path):
    pg = page
    pg.set_viewport_size({"width": 1366, "height": 768})
    pg.get_by_text("Welcome to CLEAR Studio").wait_for(timeout=60_000)
    settle(pg)
    view(pg, "4-guide-preloaded")
    typo = tmp_path / "typo.duckdb"
    field = sidebar_box(pg, "Workspace")
    field.fill(str(typo))
    pg.keyboard.press("Enter")
    pg.get_by_text("Create a new empty workspace at").wait_for(timeout=30_000)
    settle(pg)
    view(pg, "5-workspace-ask")
    assert not typo.exists()
    pg.get_by_test_id("stSidebar").get_by_role("button", name="Cancel").click()
    settle(pg)
    assert field.input_value() == server.path and not typo.exists()

    pg.get_by_role("button", name="Got it").click()
    settle(pg)
    assert until(pg, lambda: pg.get_by_text("Welcome to CLEAR Studio").count() == 0)
    assert until(pg, lambda: "guide=off" in pg.url)
    pg.reload()
    pg.get_by_role("heading", name="Data & Scoring").wait_for(timeout=60_000)
    pg.get_by_role("heading", name=re.compile("Score")).wait_for(timeout=60_000)  # the page has drawn
    settle(pg)
    assert pg.get_by_text("Welcome to CLEAR Studio").count() == 0  # dismissed stays dismissed after F5
