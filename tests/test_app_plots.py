"""The Explore plots an analyst reads: band colours and thresholds, each signal's plain name and weight, heaviest
first, weight-0 signals folded away, readable small numbers, and a picked bar or dot opening its rows in Review."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_helpers import close_app_workspace, shown_row  # noqa: E402
from bench.ui_latency import make_dataset, write_fake_run  # noqa: E402
from clear_core.filtering import BANDS, band_codes  # noqa: E402
from clear_core.store import Workspace  # noqa: E402
from ui import charts  # noqa: E402
from ui.widgets import BAND_COLORS  # noqa: E402

WEIGHTS = {"likelihood": 0.25, "neighbors": 0.75, "reflection": 0.0}  # the fake run's signals; one does not count


@pytest.fixture
def scored(tmp_path, monkeypatch):
    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, "small", 60)
        run_id = write_fake_run(ws, "small", proposal_share=0.0)
        ws.update_run(run_id, weights=WEIGHTS)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    yield {"path": path, "run_id": run_id}
    close_app_workspace(path)


def explore() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("app_pages/explore.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figures(node) -> list[dict]:
    return [json.loads(c.proto.spec) for c in node.get("plotly_chart")]


def title(fig: dict) -> str:
    """A figure's title as read (its markup left out)."""
    return plain(fig["layout"]["title"]["text"])


def plain(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text)


def test_small_values_are_readable():
    assert [charts.readable(v) for v in (None, float("nan"), 0.0, 0.5, 0.62891, 1.0, 0.00123, 1.2e-4, 7.34e-05)] == \
        ["—", "—", "0", "0.5", "0.629", "1", "0.00123", "1.2e-4", "7.34e-5"]


def test_signals_have_plain_names_and_the_registry_stays_compatible():
    from clear_core.signals import REGISTRY, Signal, get_signal

    assert get_signal("neighbors").label == "Neighbours agree"
    assert all(s.label and s.title == s.label for s in REGISTRY.values())
    old_style = Signal("toy", "row", "likelihood:row_mean", "a toy signal")  # four fields, as before
    assert old_style.label == "" and old_style.title == "toy" and charts.title_of("not_registered") == "not_registered"


def test_signal_bars_are_split_by_band_and_sum_to_the_store_histogram(scored):
    from ui import state

    ws = state.workspace(scored["path"])
    frame = ws.scores_wide(scored["run_id"], ["confidence", "likelihood"])
    t_drop, t_keep = np.quantile(frame["confidence"], [0.25, 0.5])
    codes = band_codes(frame["confidence"].to_numpy(), t_drop, t_keep)
    counts = charts.band_split(charts.bin_index(frame["likelihood"]), codes)
    assert counts.sum(axis=0).tolist() == ws.histogram(scored["run_id"], "likelihood")["count"].tolist()
    assert counts.sum(axis=1).tolist() == np.bincount(codes, minlength=3).tolist()
    fig = charts.signal_histogram(counts, "likelihood", 0.25)
    assert {t.name.lower(): t.marker.color for t in fig.data} == {b: BAND_COLORS[b] for b in BANDS}
    assert {t.name.lower(): list(t.y) for t in fig.data} == {b: counts[i].tolist() for i, b in enumerate(BANDS)}
    assert fig.layout.barmode == "stack" and "Model finds the answer likely · weight 0.25" in plain(fig.layout.title.text)


def test_explore_orders_signals_by_weight_and_folds_the_weight_zero_ones(scored):
    at = explore()
    figs = figures(at)
    assert title(figs[0]) == "confidence"
    lines = sorted(round(s["x0"], 6) for s in figs[0]["layout"]["shapes"] if s["type"] == "line")
    assert lines == sorted(round(at.session_state[k], 6) for k in ("t_drop", "t_keep"))  # the two thresholds
    shown = [title(f) for f in figs[1:3]]
    assert shown[0].startswith("Neighbours agree · weight 0.75") and "neighbors" in shown[0]  # heaviest first
    assert shown[1].startswith("Model finds the answer likely · weight 0.25"), shown
    folded = [e for e in at.expander if "do not count in this run" in e.label]
    assert len(folded) == 1
    inside = figures(folded[0])
    assert len(inside) == 1 and "Model judges it correct · weight 0" in title(inside[0])
    assert inside[0]["layout"]["height"] < figs[1]["layout"]["height"]  # drawn small
    assert not any("Model judges it correct" in title(f) for f in figs[1:3])


def pick_in_review(at: AppTest, picked: dict) -> AppTest:
    at.session_state["review_rows"] = picked
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def in_filter(at: AppTest) -> int:
    for m in at.markdown:
        found = re.search(r"1 / (\d+) in this filter", m.value)
        if found:
            return int(found.group(1))
    raise AssertionError("no queue position on the page")


def test_a_picked_bar_opens_exactly_its_rows_in_review(scored):
    from ui import state

    at = explore()
    ws, run_id = state.workspace(scored["path"]), scored["run_id"]
    t_drop, t_keep = at.session_state["t_drop"], at.session_state["t_keep"]
    frame = ws.scores_wide(run_id, ["confidence", "neighbors"])
    codes = band_codes(frame["confidence"].to_numpy(), t_drop, t_keep)
    bins = charts.bin_index(frame["neighbors"])
    counts = charts.band_split(bins, codes)
    band, b = np.unravel_index(np.argmax(counts), counts.shape)  # the tallest bar segment
    lo, hi = b / charts.BINS, (b + 1) / charts.BINS
    clicked = [{"customdata": {"0": lo, "1": hi, "2": int(band)}, "y": int(counts[band, b])}]  # as the browser sends
    rows, filters, what = charts.bar_rows(frame, "neighbors", charts.picked_bins(clicked), t_drop, t_keep)
    expected = frame["row_idx"][(bins == b) & (codes == band)].tolist()
    assert rows == expected and len(rows) == counts[band, b]
    at = pick_in_review(at, charts.review_pick(run_id, rows, filters, what))
    assert any(f"{len(rows)} rows picked on Explore" in i.value and "Neighbours agree" in i.value for i in at.info)
    assert in_filter(at) == len(rows) and shown_row(at) in rows
    at.button(key="unpick").click().run()
    assert "review_rows" not in at.session_state and not any("picked on Explore" in i.value for i in at.info)


def test_a_clicked_dot_opens_its_row_in_review(scored):
    from ui import state

    at = explore()
    wide = state.workspace(scored["path"]).scores_wide(scored["run_id"], ["likelihood", "neighbors"])
    row = wide.iloc[7]
    point = {"customdata": int(row["row_idx"]), "x": float(row["likelihood"]), "y": float(row["neighbors"])}
    rows, filters, what = charts.dot_rows([point], "likelihood", "neighbors")
    assert rows == [int(row["row_idx"])]
    at = pick_in_review(at, charts.review_pick(scored["run_id"], rows, filters, what))
    assert in_filter(at) == 1 and shown_row(at) == rows[0]


def test_a_picked_confidence_bar_keeps_its_edge_rows_out():
    """Bars are half open, as the store's bins: a row exactly on a bar's upper edge belongs to the next bar."""
    frame = pd.DataFrame({"row_idx": [0, 1, 2], "confidence": [0.5, 0.49, 0.525]})
    pick = charts.picked_bins([{"customdata": {"0": 0.475, "1": 0.5, "2": -1}, "y": 1}])
    rows, filters, _ = charts.bar_rows(frame, "confidence", pick, 0.3, 0.6)
    assert rows == [1] and filters["band"] == "all" and filters["signal_ranges"]["confidence"][1] < 0.5
    assert charts.picked_bins([{"customdata": {"0": 0.0, "1": 0.025, "2": 0}, "y": 0}]) is None  # an empty bar
