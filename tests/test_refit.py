"""Weights refit from the reviewers' keep / drop decisions: `clear-studio calibrate NAME --from-decisions` and the
Explore page's button. A finished run is made through the store API: `likelihood` separates the rows people kept
from those they dropped, `reflection` is noise, and both start at weight 0.5."""

from __future__ import annotations

import json

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_helpers import close_app_workspace  # noqa: E402
from bench.ui_latency import make_dataset  # noqa: E402
from clear_core.cli import main  # noqa: E402
from clear_core.config import ScoreConfig, preset_config  # noqa: E402
from clear_core.signals.combine import confidence  # noqa: E402
from clear_core.store import Workspace, long_scores  # noqa: E402

N, OLD = 60, {"likelihood": 0.5, "reflection": 0.5}


def _finished_run(ws) -> tuple[int, dict]:
    """A done scoring run of dataset 'small' with the signals above; returns (run id, {signal: values})."""
    rng = np.random.default_rng(1)
    info = ws.get_dataset("small")
    run_id = ws.create_run(info.id, "score", preset_config("fast", model="tiny").to_json(), N)
    values = {"likelihood": np.r_[rng.uniform(0.05, 0.4, N // 2), rng.uniform(0.6, 0.95, N // 2)],
              "reflection": rng.uniform(0.2, 0.9, N)}
    rows = np.arange(N)
    ws.commit_batch(run_id, "rows", rows, scores=long_scores(rows, values))
    mean = ScoreConfig.from_dict(ws.get_run(run_id).config).mean
    ws.commit_batch(run_id, "dataset", rows, scores=long_scores(rows, {"confidence": confidence(values, OLD, mean)}))
    ws.update_run(run_id, status="done", weights=OLD)
    return run_id, values


@pytest.fixture
def reviewed(tmp_path):
    """A workspace with the run, 12 rows kept (high likelihood) and 12 dropped or edited (low likelihood)."""
    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, "small", N)
        run_id, values = _finished_run(ws)
        ds = ws.get_dataset("small").id
        ws.record_decisions(ds, list(range(N - 12, N)), "keep", reviewer="alice")
        ws.record_decisions(ds, list(range(0, 8)), "drop", reviewer="alice")
        ws.record_decisions(ds, list(range(8, 12)), "edit", reviewer="bob", new_text="better")
    return path, run_id, values


def _check_refit(ws, run_id: int, values: dict) -> dict:
    """The stored weights moved towards likelihood, and the stored confidence is their recombination."""
    run = ws.get_run(run_id)
    new = run.weights
    assert set(new) == set(OLD) and sum(new.values()) == pytest.approx(1.0)
    assert new["likelihood"] > OLD["likelihood"] > new["reflection"]
    stored = ws.scores_wide(run_id, ["confidence"])["confidence"].to_numpy()
    np.testing.assert_allclose(stored, confidence(values, new, ScoreConfig.from_dict(run.config).mean), atol=1e-12)
    assert not np.allclose(stored, confidence(values, OLD, ScoreConfig.from_dict(run.config).mean))
    return new


def test_cli_refits_the_weights_from_decisions(reviewed, capsys):
    path, run_id, values = reviewed
    assert main(["calibrate", "small", "--from-decisions", "--workspace", path]) == 0
    out = capsys.readouterr().out
    assert f"run {run_id} of 'small': weights refit from 24 decisions (12 kept, 12 dropped / edited / accepted)" in out
    with Workspace.open(path, read_only=True) as ws:
        new = _check_refit(ws, run_id, values)
    assert f"likelihood: 0.500 -> {new['likelihood']:.3f}" in out


def test_cli_refuses_too_few_decisions_in_one_line(tmp_path, capsys):
    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, "small", N)
        run_id, _ = _finished_run(ws)
        ds = ws.get_dataset("small").id
        ws.record_decisions(ds, [50, 51, 52], "keep", reviewer="alice")
        ws.record_decisions(ds, [1, 2], "drop", reviewer="alice")
        # The automatic curation's decisions come from the run's own confidence: they are not labels.
        ws.record_decisions(ds, list(range(3, 20)), "drop", reviewer="auto")
    assert main(["calibrate", "small", "--from-decisions", "--workspace", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs at least 5 kept and 5 dropped/edited rows; got 3 kept and 2" in err[0]
    with Workspace.open(path, read_only=True) as ws:
        assert ws.get_run(run_id).weights == OLD  # nothing changed


def test_refit_takes_the_latest_finished_score_run_and_refuses_any_other(reviewed, capsys):
    from clear_core.errors import ClearError
    from clear_core.reweight import refit_from_decisions

    path, run_id, values = reviewed
    with Workspace.open(path) as ws:
        ds = ws.get_dataset("small").id
        unfinished = ws.create_run(ds, "score", preset_config("fast", model="tiny").to_json(), N)
        fix = ws.create_run(ds, "correct", "{}", 1)
        with pytest.raises(ClearError, match=f"score run {unfinished} is running, not finished; "
                                             f"`clear-studio resume {unfinished}`"):
            refit_from_decisions(ws, unfinished)
        with pytest.raises(ClearError, match=f"run {fix} is a correct run of dataset {ds}, not a score run"):
            refit_from_decisions(ws, fix)
    assert main(["calibrate", "small", "--from-decisions", "--run", str(unfinished), "--workspace", path]) == 2
    assert f"score run {unfinished} is running, not finished" in capsys.readouterr().err
    # Without --run: the latest finished run, not the newer unfinished one.
    assert main(["calibrate", "small", "--from-decisions", "--workspace", path]) == 0
    assert f"run {run_id} of 'small': weights refit" in capsys.readouterr().out
    with Workspace.open(path, read_only=True) as ws:
        _check_refit(ws, run_id, values)


def test_explore_button_refits_and_shows_the_new_weights(reviewed, monkeypatch):
    path, run_id, values = reviewed
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        at.switch_page("app_pages/explore.py").run()
        assert not at.exception, [e.value for e in at.exception]
        at.button(key="refit_weights").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        from ui import state

        new = _check_refit(state.workspace(path), run_id, values)
        note = " ".join(m.value for m in at.success)
        assert "Weights refit from 24 decisions (12 kept, 12 dropped, edited or fixed)" in note
        assert f"likelihood 0.50 → {new['likelihood']:.2f}" in note
        # The thresholds follow the new scores: back at the new median.
        stored = state.workspace(path).scores_wide(run_id, ["confidence"])["confidence"]
        assert at.session_state["t_keep"] == pytest.approx(float(np.median(stored)), abs=1e-9)
        # Explore's signal charts are titled with the new weights.
        from ui.charts import readable

        titles = " ".join(json.dumps(json.loads(c.proto.spec).get("layout", {}).get("title", ""))
                          for c in at.get("plotly_chart"))
        assert f"weight {readable(new['likelihood'])}" in titles
    finally:
        close_app_workspace(path)


def test_explore_button_says_why_with_too_few_decisions(tmp_path, monkeypatch):
    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, "small", N)
        run_id, _ = _finished_run(ws)
        ws.record_decisions(ws.get_dataset("small").id, [50, 51], "keep", reviewer="alice")
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        at.switch_page("app_pages/explore.py").run()
        at.button(key="refit_weights").click().run()
        assert not at.exception
        assert any("needs at least 5 kept" in e.value for e in at.error), [e.value for e in at.error]
        from ui import state

        assert state.workspace(path).get_run(run_id).weights == OLD
    finally:
        close_app_workspace(path)
