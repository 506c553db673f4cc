"""Refit a finished scoring run's weights from the reviewers' keep / drop decisions, and store them on the run.

The label-free calibration at the end of a run guesses what bad rows look like from synthetic corruptions; once
people have reviewed rows, their decisions say it directly: a kept row is good, a dropped or edited one, or one
whose proposal was accepted, is bad (`calibrate.from_decisions`, a logistic regression on the run's signals). The
run's `confidence` (in [0, 1], higher = more trustworthy) is recombined over every row with the new weights, and
both are written in one transaction, so thresholds, bands and exports follow at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import calibrate
from .config import ScoreConfig
from .errors import ClearError

AUTO_REVIEWER = "auto"  # `curate --auto` decides as this reviewer, from the confidence itself
MIN_EACH = 5  # decisions needed of each kind (kept / not kept)


@dataclass(frozen=True)
class Refit:
    """The outcome of a refit: the weights before and after, and the fit (counts, per-signal AUROC)."""

    run_id: int
    old_weights: dict[str, float]
    calibration: calibrate.Calibration  # .weights are the new weights; .n_good / .n_bad the decisions used

    @property
    def weights(self) -> dict[str, float]:
        return self.calibration.weights


def decision_labels(ws, run) -> tuple[np.ndarray, np.ndarray]:
    """(row_idx, action) of the people's standing decisions on the rows `run` scored. Decisions of the automatic
    curation are left out: they come from the run's own confidence, and fitting to them would only confirm it."""
    decided = ws.current_decisions(run.dataset_id)
    decided = decided[decided["reviewer"] != AUTO_REVIEWER]
    return decided["row_idx"].to_numpy(dtype=np.int64), decided["action"].to_numpy(dtype=object)


def refit_from_decisions(ws, run_id: int, min_each: int = MIN_EACH) -> Refit:
    """Fit new weights for a finished scoring run from the decisions on its rows, store them with the recombined
    `confidence`, and return what changed. Raises `calibrate.CalibrationError` (a ClearError) with too few kept or
    too few dropped / edited rows."""
    from .signals.combine import confidence

    run = ws.score_run(ws.get_run(run_id).dataset_id, run_id)
    wide = ws.scores_wide(run_id)
    signals = [s for s in (run.weights or {}) if s in wide.columns]
    if not signals:
        raise ClearError(f"run {run_id} has no weighted signals to refit")
    rows, actions = decision_labels(ws, run)
    scored = wide.set_index("row_idx")
    on_run = np.isin(rows, scored.index.to_numpy())
    at = scored.loc[rows[on_run], signals]
    config = ScoreConfig.from_dict(run.config or {})
    mean = config.mean
    try:
        cal = calibrate.from_decisions({s: at[s].to_numpy(dtype=float) for s in signals}, actions[on_run],
                                       min_each=min_each, mean=mean, veto=config.veto)
    except calibrate.CalibrationError as exc:
        raise calibrate.CalibrationError(f"run {run_id}: {exc}; keep or drop more rows on Review first") from None
    conf = confidence({s: wide[s].to_numpy(dtype=float) for s in signals}, cal.weights, mean, config.veto)
    ws.replace_signal(run_id, "confidence", wide["row_idx"].to_numpy(), conf, cal.weights)
    return Refit(run_id, dict(run.weights or {}), cal)
