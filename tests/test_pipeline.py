"""Scoring runs with the tiny model: stages, one commit per row and stage, cancel + resume equals an uninterrupted
run, failed rows recorded, progress; and the Auto-Filter thresholds and bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clear_core import filtering, pipeline
from clear_core.config import Thresholds, preset_config
from conftest import run_then_stop

CONFIG = preset_config("fast", batch_size=8)


def _status_counts(ws, run_id):
    cur = ws.cursor()
    status = cur.execute("SELECT stage, row_idx, count(*) FROM row_status WHERE run_id = ? GROUP BY ALL",
                         [run_id]).df()
    scores = cur.execute("SELECT signal, row_idx, count(*) AS n FROM scores WHERE run_id = ? GROUP BY ALL",
                         [run_id]).df()
    return status, scores


def test_run_scores_every_row_once(small_workspace, tiny_backend):
    ws = small_workspace
    seen = []
    run_id = pipeline.run_scoring(ws, "small", CONFIG, backend=tiny_backend, progress=seen.append)
    run = ws.get_run(run_id)
    assert run.status == "done" and run.n_total == 48 and run.n_failed == 0
    wide = ws.scores_wide(run_id)
    assert list(wide["row_idx"]) == list(range(48))
    for signal in CONFIG.signals + ("confidence",):
        assert wide[signal].between(0, 1).all(), signal
    status, scores = _status_counts(ws, run_id)
    assert (status.iloc[:, 2] == 1).all() and sorted(status["stage"].unique()) == ["dataset", "rows"]
    assert len(status) == 2 * 48
    assert (scores["n"] == 1).all() and len(scores) == (len(CONFIG.signals) + 1) * 48
    # Weights are stored with the run and reproduce the stored confidence.
    from clear_core.signals.combine import confidence

    assert set(run.weights) <= set(CONFIG.signals) and sum(run.weights.values()) > 0
    expect = confidence({s: wide[s].to_numpy() for s in run.weights}, run.weights)
    np.testing.assert_allclose(wide["confidence"], expect, atol=1e-9)
    # Progress: per-batch, monotonic, ends at the total, with a rate and an ETA.
    rows = [p for p in seen if p.stage == "rows"]
    assert [p.done for p in rows] == [0, 8, 16, 24, 32, 40, 48]
    assert all(p.total == 48 for p in rows) and rows[-1].rows_per_s > 0 and rows[-1].eta_s == 0
    assert rows[1].eta_s == pytest.approx((48 - 8) / rows[1].rows_per_s)
    assert seen[-1].stage == "dataset" and seen[-1].done == seen[-1].total
    # The label-free calibration reports the synthetic rows it scores, up to their total.
    cal = [p for p in seen if p.stage == "calibration"]
    assert cal and cal[-1].done == cal[-1].total > 0 and [p.done for p in cal] == sorted(p.done for p in cal)


def test_cancel_then_resume_equals_uninterrupted(small_workspace, tiny_backend):
    ws = small_workspace
    full, stopped = run_then_stop(ws, "small", CONFIG, tiny_backend, "rows", after=16)  # after two batches
    run = ws.get_run(stopped)
    assert run.status == "stopped" and run.n_done == 16
    assert len(ws.pending_rows(run.id, "rows")) == 32 and len(ws.scores_wide(run.id, ["confidence"]).dropna()) == 0
    pipeline.resume(ws, run.id, backend=tiny_backend)
    assert ws.get_run(run.id).status == "done"
    a, b = ws.scores_wide(full), ws.scores_wide(run.id)
    pd.testing.assert_frame_equal(a, b, atol=1e-5, rtol=1e-5)
    status, scores = _status_counts(ws, run.id)
    assert (status.iloc[:, 2] == 1).all() and (scores["n"] == 1).all()


def test_keyboard_interrupt_marks_the_run_stopped(small_workspace, tiny_backend):
    ws = small_workspace

    def interrupt(p):
        if p.done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.run_scoring(ws, "small", CONFIG, backend=tiny_backend, progress=interrupt)
    run = ws.latest_run(ws.get_dataset("small").id)
    assert run.status == "stopped" and run.n_done == 8


def test_a_failing_row_is_recorded_and_the_run_goes_on(small_workspace, tiny_backend, monkeypatch):
    from clear_core import scoring

    real = scoring.score_batch

    def flaky(backend, rows, config):
        if any(r[0] == 5 for r in rows):
            raise RuntimeError("boom on row 5")
        return real(backend, rows, config)

    monkeypatch.setattr(scoring, "score_batch", flaky)
    ws = small_workspace
    run_id = pipeline.run_scoring(ws, "small", CONFIG, backend=tiny_backend)
    run = ws.get_run(run_id)
    assert run.status == "done"
    errors = ws.row_errors(run_id, "rows")
    assert list(errors["row_idx"]) == [5] and "boom on row 5" in errors["error"].iloc[0]
    wide = ws.scores_wide(run_id)
    assert 5 not in set(wide["row_idx"]) and len(wide) == 47 and wide["confidence"].notna().all()


@pytest.mark.parametrize("limit", [0, -5])
def test_a_limit_below_one_row_is_refused(small_workspace, tiny_backend, limit):
    from clear_core.errors import ClearError

    with pytest.raises(ClearError, match=f"limit must be a positive number of rows, got {limit}"):
        pipeline.run_scoring(small_workspace, "small", preset_config("fast", limit=limit), backend=tiny_backend)
    assert small_workspace.list_runs() == []


def test_limit_scores_the_first_rows(small_workspace, tiny_backend):
    run_id = pipeline.run_scoring(small_workspace, "small", preset_config("fast", batch_size=8, limit=20,
                                                                           calibrate="none"), backend=tiny_backend)
    wide = small_workspace.scores_wide(run_id)
    assert list(wide["row_idx"]) == list(range(20))
    assert small_workspace.get_run(run_id).weights == dict(CONFIG.weights)


# ------------------------------------------------------------------------------------------------ Auto-Filter
def test_thresholds_median_fraction_value():
    conf = np.linspace(0, 1, 101)
    t = filtering.thresholds_from_scores(conf)
    assert t.t_keep == pytest.approx(0.5) and t.t_drop == t.t_keep and t.eta == 0.8
    t = filtering.thresholds_from_scores(conf, keep_fraction=0.3)
    assert (conf >= t.t_keep).sum() == 30
    t = filtering.thresholds_from_scores(conf, keep_value=0.9, drop_fraction=0.2)
    assert t.t_keep == 0.9 and (conf < t.t_drop).sum() == 20
    t = filtering.thresholds_from_scores(conf, keep_value=0.4, drop_value=0.7)  # t_drop clipped to t_keep
    assert t.t_drop == t.t_keep == 0.4
    with pytest.raises(ValueError):
        filtering.thresholds_from_scores(conf, keep_value=0.5, keep_fraction=0.5)
    with pytest.raises(ValueError):
        filtering.thresholds_from_scores([])


def test_bands():
    t = Thresholds(t_drop=0.3, t_keep=0.6)
    got = filtering.bands([0.1, 0.3, 0.5, 0.6, 0.9, np.nan], t)
    assert list(got) == ["drop", "review", "review", "keep", "keep", "review"]
    assert [t.band(v) for v in (0.1, 0.3, 0.6)] == ["drop", "review", "keep"]


def test_band_counts_agree_with_bands(small_workspace, tiny_backend):
    ws = small_workspace
    run_id = pipeline.run_scoring(ws, "small", CONFIG, backend=tiny_backend)
    _, conf = filtering.run_confidence(ws, run_id)
    for kw in ({}, {"keep_fraction": 0.25, "drop_fraction": 0.25}, {"keep_value": 0.7, "drop_value": 0.2}):
        t = filtering.run_thresholds(ws, run_id, **kw)
        counts = filtering.band_counts(ws, run_id, t)
        b = filtering.bands(conf, t)
        assert (counts["keep"], counts["review"], counts["drop"]) == tuple(int((b == x).sum()) for x in filtering.BANDS)
        assert counts["total"] == 48
    assert filtering.band_counts(ws, run_id, filtering.run_thresholds(ws, run_id))["keep"] == 24


def test_a_run_where_every_row_fails_still_ends(small_workspace, tiny_backend, monkeypatch):
    from clear_core import scoring

    def broken(backend, rows, config):
        raise RuntimeError("no model today")

    monkeypatch.setattr(scoring, "score_batch", broken)
    run_id = pipeline.run_scoring(small_workspace, "small", preset_config("fast", batch_size=16, limit=10),
                                  backend=tiny_backend)
    run = small_workspace.get_run(run_id)
    assert run.status == "done" and run.n_failed == 10
    assert len(small_workspace.row_errors(run_id, "rows")) == 10 and small_workspace.scores_wide(run_id).empty
