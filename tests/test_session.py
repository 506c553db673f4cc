"""A session that survives a reload, thresholds stored with the run (so the app, the CLI and export agree), one
meaning of "curated", the Workspace field that asks before creating a file, and the first-visit guide."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_helpers import close_app_workspace, shown_row  # noqa: E402
from bench.ui_latency import make_dataset, write_fake_run  # noqa: E402
from clear_core import filtering  # noqa: E402
from clear_core.cli import build_parser, main  # noqa: E402
from clear_core.config import Thresholds  # noqa: E402
from clear_core.errors import ClearError  # noqa: E402
from clear_core.export import export_counts, export_dataset  # noqa: E402
from clear_core.store import Workspace  # noqa: E402
from clear_core.store.schema import migrate  # noqa: E402


@pytest.fixture
def two(tmp_path, monkeypatch):
    """'first' (40 rows, a finished fake scoring run with proposals), then 'second' (imported last, not scored)."""
    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, "first", 40)
        run_id = write_fake_run(ws, "first", proposal_share=0.5)
        conf = ws.scores_wide(run_id, ["confidence"]).set_index("row_idx")["confidence"]
        make_dataset(ws, "second", 12)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    yield {"path": path, "run_id": run_id, "confidence": conf}
    close_app_workspace(path)


def app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def page(at: AppTest, path: str) -> AppTest:
    return ok(at.switch_page(path).run())


def infos(at: AppTest) -> list[str]:
    return [i.value for i in at.info]


# ------------------------------------------------------------------------------------------------ reload (F5)
def test_a_reload_keeps_reviewer_dataset_run_thresholds_and_filters(two):
    at = ok(app().run())
    assert at.sidebar.selectbox(key="dataset").value == "second"  # the last imported, as before
    ok(at.sidebar.selectbox(key="dataset").set_value("first").run())
    ok(at.sidebar.text_input(key="reviewer").set_value("ana").run())
    page(at, "app_pages/explore.py")
    ok(at.slider(key="w_t_keep").set_value(0.7).run())
    ok(at.slider(key="w_t_drop").set_value(0.3).run())
    page(at, "app_pages/review.py")
    ok(at.selectbox(key="f_band").set_value("all").run())
    ok(at.toggle(key="f_undecided").set_value(False).run())
    address = dict(at.query_params)
    assert (address["reviewer"], address["dataset"], address["run"]) == ("ana", "first", str(two["run_id"]))
    assert (float(address["t_keep"]), float(address["t_drop"]), address["band"], address["undecided"]) == \
        (0.7, 0.3, "all", "0")

    # Without the address a new session starts over: the last imported dataset, which has nothing to review.
    fresh = page(app(), "app_pages/review.py")
    assert any("Nothing to review yet" in m for m in infos(fresh))

    # F5: a new session on the same address comes back to the same place.
    again = page(app(address), "app_pages/review.py")
    s = again.session_state
    assert (s["dataset"], s["run_id"], s["reviewer"]) == ("first", two["run_id"], "ana")
    assert (s["t_keep"], s["t_drop"]) == (pytest.approx(0.7), pytest.approx(0.3))
    assert again.selectbox(key="f_band").value == "all" and again.toggle(key="f_undecided").value is False
    assert not any("Nothing to review yet" in m for m in infos(again))
    row = shown_row(again)
    ok(again.button(key="act_keep").click().run())
    from ui import state

    ws = state.workspace(two["path"])
    decided = ws.current_decisions(ws.get_dataset("first").id).set_index("row_idx")
    assert decided.loc[row, "reviewer"] == "ana"  # not "anonymous"


def test_an_address_with_a_gone_dataset_or_bad_values_falls_back(two):
    at = page(app({"dataset": "gone", "run": "x", "t_keep": "2", "t_drop": "0.1", "eta": "0.8", "band": "nope"}),
              "app_pages/review.py")
    assert at.session_state["dataset"] == "second"  # the sidebar's own fallback
    at = page(app({"dataset": "first", "t_keep": "2", "t_drop": "0.1", "eta": "0.8", "band": "nope"}),
              "app_pages/review.py")
    assert at.session_state["t_keep"] == pytest.approx(float(np.median(two["confidence"])))  # 2 is no threshold
    assert at.selectbox(key="f_band").value == "flagged"


# ------------------------------------------------------------------------------------- thresholds with the run
def test_an_old_workspace_opens_and_its_runs_take_thresholds(tmp_path):
    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    assert migrate(con.cursor(), path, upto=3) == 3  # a workspace as version 3 left it: runs had no thresholds
    con.close()
    with Workspace.open(path) as ws:
        make_dataset(ws, "d", 20)
        run_id = write_fake_run(ws, "d")
        assert ws.get_run(run_id).thresholds is None
        conf = filtering.run_confidence(ws, run_id)[1]
        assert filtering.run_thresholds(ws, run_id) == filtering.default_thresholds(conf)
        assert filtering.run_thresholds(ws, run_id).t_keep == pytest.approx(float(np.median(conf)))
        filtering.store_thresholds(ws, run_id, Thresholds(t_drop=0.25, t_keep=0.6, eta=0.9))
        assert ws.get_run(run_id).thresholds == {"t_drop": 0.25, "t_keep": 0.6, "eta": 0.9}
        assert filtering.run_thresholds(ws, run_id) == Thresholds(t_drop=0.25, t_keep=0.6, eta=0.9)
        assert filtering.run_thresholds(ws, run_id, keep_value=0.5).t_keep == 0.5  # a flag beats the stored ones
        with pytest.raises(ClearError, match="t_drop <= t_keep"):
            ws.set_thresholds(run_id, {"t_drop": 0.7, "t_keep": 0.6, "eta": 0.8})
        ws.set_thresholds(run_id, None)
        assert filtering.run_thresholds(ws, run_id) == filtering.default_thresholds(conf)


def test_the_cli_reads_the_stored_thresholds_when_no_flag_is_given(two):
    from clear_core.commands.curation import _thresholds

    parser = build_parser()
    with Workspace.open(two["path"]) as ws:
        run = ws.get_run(two["run_id"])
        median = float(np.median(two["confidence"]))
        for argv in (["curate", "first", "--auto"], ["correct", "first"], ["finetune", "first", "--out", "x"]):
            assert _thresholds(ws, run, parser.parse_args(argv)) == Thresholds(t_drop=median, t_keep=median)
        ws.set_thresholds(run.id, {"t_drop": 0.2, "t_keep": 0.65, "eta": 0.9})
        run = ws.get_run(run.id)
        for argv in (["curate", "first", "--auto"], ["correct", "first"]):
            assert _thresholds(ws, run, parser.parse_args(argv)) == Thresholds(t_drop=0.2, t_keep=0.65, eta=0.9)
        flagged = _thresholds(ws, run, parser.parse_args(["correct", "first", "--keep-value", "0.5", "--eta", "0.7"]))
        assert flagged == Thresholds(t_drop=0.5, t_keep=0.5, eta=0.7)


def app_export_counts(at: AppTest) -> dict:
    """The Export page's counts, as the page shows them and as its prepared file's manifest records them."""
    page(at, "app_pages/export.py")
    shown = {m.label: int(m.value.replace(",", "")) for m in at.metric}
    ok(at.button(key="x_prepare").click().run())
    manifest = at.session_state["x_file"][3]
    assert shown["Rows in the file"] == manifest["counts"]["written"]
    assert shown[":red[Dropped below the threshold]"] == manifest["counts"]["dropped_below_threshold"]
    return manifest


def test_thresholds_set_in_the_app_are_the_ones_the_cli_export_uses(two, tmp_path, capsys):
    at = ok(app().run())
    ok(at.sidebar.selectbox(key="dataset").set_value("first").run())
    page(at, "app_pages/explore.py")
    conf = two["confidence"]
    t_drop, t_keep = (round(float(conf.quantile(q)) / 0.005) * 0.005 for q in (0.3, 0.8))  # on the sliders' steps
    ok(at.slider(key="w_t_keep").set_value(t_keep).run())
    ok(at.slider(key="w_t_drop").set_value(t_drop).run())
    from ui import state

    ws = state.workspace(two["path"])
    assert ws.get_run(two["run_id"]).thresholds == {"t_drop": t_drop, "t_keep": t_keep, "eta": 0.8}
    info = ws.get_dataset("first")
    low = [int(r) for r in conf.index[conf < t_drop]]
    ws.record_decisions(info.id, low[:2], "keep", "ana")  # a decision beats the threshold
    ws.record_decisions(info.id, [int(conf.idxmax())], "drop", "ana")
    manifest = app_export_counts(at)
    expected_below = len(low) - 2
    assert manifest["counts"]["dropped_below_threshold"] == expected_below > 0
    assert manifest["thresholds"]["source"] == "stored" and manifest["thresholds"]["t_drop"] == t_drop
    assert any(f"kept with run #{two['run_id']}" in c.value for c in at.caption)

    close_app_workspace(two["path"])  # the CLI opens the file itself
    out = tmp_path / "cli.jsonl"
    assert main(["export", "first", "--to", str(out), "--workspace", two["path"]]) == 0
    capsys.readouterr()
    cli = json.loads(Path(str(out) + ".manifest.json").read_text(encoding="utf-8"))
    assert cli["counts"] == manifest["counts"]
    assert len(out.read_text(encoding="utf-8").splitlines()) == manifest["counts"]["written"]
    undecided = cli["counts"]["undecided_rows"]
    assert undecided["dropped_below_t_drop"] == expected_below
    assert undecided["kept"] == len(conf) - 3 - expected_below and "below t_drop" in undecided["rule"]


def test_curated_means_one_thing_without_stored_thresholds(two, tmp_path, capsys):
    """No thresholds set: the app's curated export and `clear-studio export --variant curated` both cut at the
    default (the median), and say so."""
    at = ok(app().run())
    ok(at.sidebar.selectbox(key="dataset").set_value("first").run())
    manifest = app_export_counts(at)
    conf = two["confidence"]
    median = float(np.median(conf))
    assert manifest["counts"]["dropped_below_threshold"] == int((conf < median).sum()) > 0
    assert manifest["thresholds"]["source"] == "default"
    assert any("the default: none set yet" in c.value for c in at.caption)  # the page says where t_drop came from
    close_app_workspace(two["path"])
    out = tmp_path / "cli.jsonl"
    assert main(["export", "first", "--variant", "curated", "--to", str(out), "--workspace", two["path"]]) == 0
    assert json.loads(Path(str(out) + ".manifest.json").read_text(encoding="utf-8"))["counts"] == manifest["counts"]
    assert f"wrote {manifest['counts']['written']} of 40 rows" in capsys.readouterr().out


def test_the_undecided_rows_rule_in_every_case(two, tmp_path):
    with Workspace.open(two["path"]) as ws:
        only = export_dataset(ws, "first", tmp_path / "a.jsonl", decisions_only=True)
        assert only["counts"]["undecided_rows"] == {"kept": 40, "dropped_below_t_drop": 0,
                                                    "rule": "no finished scoring run (or --decisions-only): every "
                                                            "undecided row is kept"}
        every = export_counts(ws, "first", "all")["undecided_rows"]
        assert every["kept"] == 40 and every["dropped_below_t_drop"] == 0
        given = export_counts(ws, "first", t_drop=0.5)["undecided_rows"]
        assert given["dropped_below_t_drop"] == int((two["confidence"] < 0.5).sum())
        assert export_counts(ws, "second")["undecided_rows"]["kept"] == 12  # never scored: decisions only
        with pytest.raises(ClearError, match="do not go together"):
            export_counts(ws, "first", t_drop=0.5, decisions_only=True)


# ------------------------------------------------------------------------------------------- workspace field
def test_the_workspace_field_asks_before_creating_a_file(two, tmp_path):
    other = str(tmp_path / "other.duckdb")
    with Workspace.open(other) as ws:
        make_dataset(ws, "elsewhere", 5)
    new = tmp_path / "typo.duckdb"
    at = ok(app().run())
    try:
        ok(at.sidebar.text_input(key="ws_field").set_value(str(new)).run())
        from ui.widgets import literal

        assert [w.value for w in at.sidebar.warning] == [f"Create a new empty workspace at {literal(new)}?"]
        assert not new.exists() and at.session_state["workspace_path"] == two["path"]
        assert at.sidebar.selectbox(key="dataset").value == "second"  # still the old workspace
        ok(at.sidebar.button(key="ws_cancel").click().run())
        assert at.sidebar.text_input(key="ws_field").value == two["path"] and not at.sidebar.warning

        ok(at.sidebar.text_input(key="ws_field").set_value(str(new)).run())
        ok(at.sidebar.button(key="ws_create").click().run())
        assert new.exists() and at.session_state["workspace_path"] == str(new)
        assert not at.sidebar.warning and "dataset" not in at.session_state  # the new, empty workspace

        ok(at.sidebar.text_input(key="ws_field").set_value(other).run())  # an existing file opens at once
        assert not at.sidebar.warning and at.sidebar.selectbox(key="dataset").value == "elsewhere"
        assert at.query_params["ws"] == other
    finally:
        for path in (str(new), other):
            close_app_workspace(path)


# ----------------------------------------------------------------------------------------- first-visit guide
def test_the_first_run_guide_shows_with_a_preloaded_sample_until_dismissed(tmp_path, monkeypatch):
    path = str(tmp_path / "demo.duckdb")
    with Workspace.open(path) as ws:  # what `clear-studio app --with-sample` leaves: data, nothing scored
        make_dataset(ws, "demo", 10)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    try:
        at = ok(app().run())
        assert "### Welcome to CLEAR Studio" in [m.value for m in at.markdown]
        ok(at.button(key="guide_dismiss").click().run())
        assert "### Welcome to CLEAR Studio" not in [m.value for m in at.markdown]
        assert at.query_params["guide"] == "off"
        reloaded = ok(app(dict(at.query_params)).run())
        assert "### Welcome to CLEAR Studio" not in [m.value for m in reloaded.markdown]
        assert "### Welcome to CLEAR Studio" in [m.value for m in ok(app().run()).markdown]  # another first visit
        close_app_workspace(path)
        with Workspace.open(path) as ws:
            write_fake_run(ws, "demo")
        assert "### Welcome to CLEAR Studio" not in [m.value for m in ok(app().run()).markdown]  # scored: no guide
    finally:
        close_app_workspace(path)


def test_a_finished_scoring_run_points_to_explore(tmp_path, monkeypatch):
    """A scoring job that ends (here one writing fake scores, through the app's own job runner) leaves its
    "finished" message and a link to Explore."""
    from ui import jobs, state

    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, "d", 16)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    at = ok(app().run())
    try:
        assert not [n for n in at._tree if getattr(n, "type", "") == "page_link"]
        job = jobs.start(path, "score", "d", lambda job: write_fake_run(state.workspace(path), "d"))
        assert jobs.wait(job, 60) and job.phase == "done", (job.phase, job.message, job.details)
        ok(at.run())
        ok(at.run())
        links = [n for n in at._tree if getattr(n, "type", "") == "page_link"]
        assert [(link.proto.page, link.proto.label) for link in links] == \
            [("explore", f"See the scores of run #{job.run_id} on Explore")]
    finally:
        close_app_workspace(path)
