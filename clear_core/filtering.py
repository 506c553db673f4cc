"""Auto-Filter (CLEAR): thresholds over `confidence` and the keep / review / drop bands.

`confidence` is a float in [0, 1], higher = more trustworthy. A row is kept when its confidence is >= t_keep,
dropped when it is < t_drop, and sent to review in between. CLEAR keeps rows above one threshold gamma, by
default the median confidence (about half the data); a review band below it is optional (t_drop < t_keep).

The pure functions take arrays; `run_thresholds` and `band_counts` read a scoring run from the store, where the
thresholds an analyst set are kept with the run (`store_thresholds`): the app, the CLI and export read the same.
"""

from __future__ import annotations

import numpy as np

from .config import Thresholds

BANDS = ("keep", "review", "drop")
KEEP, REVIEW, DROP = range(3)  # the values of band_codes: indices into BANDS


def thresholds_from_scores(confidence, keep_value: float | None = None, keep_fraction: float | None = None,
                           drop_value: float | None = None, drop_fraction: float | None = None,
                           eta: float = 0.8) -> Thresholds:
    """Thresholds over an array of confidences (in [0, 1], higher = more trustworthy).

    t_keep: `keep_value` if given, else the quantile that keeps `keep_fraction` of the rows, else the median.
    t_drop: `drop_value` if given, else the quantile that drops `drop_fraction` of the rows, else t_keep (no
    review band: every row below gamma is a drop, as in CLEAR). t_drop is clipped to t_keep.
    """
    conf = np.asarray(confidence, dtype=float)
    conf = conf[np.isfinite(conf)]
    if keep_value is not None and keep_fraction is not None:
        raise ValueError("give a keep value or a keep fraction, not both")
    if drop_value is not None and drop_fraction is not None:
        raise ValueError("give a drop value or a drop fraction, not both")
    for name, frac in (("keep_fraction", keep_fraction), ("drop_fraction", drop_fraction)):
        if frac is not None and not 0.0 <= frac <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {frac}")
    needs_data = keep_value is None or (drop_value is None and drop_fraction is not None)
    if needs_data and conf.size == 0:
        raise ValueError("no confidence values to set thresholds from")
    if keep_value is not None:
        t_keep = float(keep_value)
    elif keep_fraction is not None:
        t_keep = _quantile_keeping(conf, keep_fraction)
    else:
        t_keep = float(np.median(conf))
    if drop_value is not None:
        t_drop = float(drop_value)
    elif drop_fraction is not None:
        t_drop = float(np.quantile(conf, drop_fraction)) if drop_fraction > 0 else 0.0
    else:
        t_drop = t_keep
    t_keep = min(max(t_keep, 0.0), 1.0)
    return Thresholds(t_drop=min(max(t_drop, 0.0), t_keep), t_keep=t_keep, eta=eta)


def _quantile_keeping(conf: np.ndarray, fraction: float) -> float:
    """The threshold t such that about `fraction` of the rows have confidence >= t."""
    if fraction <= 0.0:
        return 1.0  # keeps nothing but rows of confidence exactly 1.0 (thresholds stay in [0, 1])
    if fraction >= 1.0:
        return float(conf.min())
    # The k-th largest value keeps exactly k rows when values are distinct (ties keep a few more).
    k = max(1, int(round(fraction * conf.size)))
    return float(np.sort(conf)[::-1][k - 1])


def band_codes(confidence, t_drop: float, t_keep: float) -> np.ndarray:
    """The band of each confidence as an index into BANDS: keep (>= t_keep), drop (< t_drop), review otherwise.

    This is the one rule of the bands; `store.views.band_sql` is its SQL twin. A confidence that is not a number
    (NaN or None: the row's signals could not be combined) is 'review': a row is neither kept nor dropped without
    a number, a person decides. The store cannot tell NaN from NULL once read back into pandas, so both are review.
    """
    conf = np.asarray(confidence, dtype=float)
    codes = np.full(conf.shape, REVIEW, dtype=np.int8)  # NaN compares false below and stays here
    codes[conf < t_drop] = DROP
    codes[conf >= t_keep] = KEEP  # after drop: with t_drop > t_keep, as in SQL, keep wins
    return codes


def bands(confidence, thresholds: Thresholds) -> np.ndarray:
    """The band ("keep" | "review" | "drop") of each confidence (see band_codes: NaN goes to review)."""
    return np.asarray(BANDS, dtype=object)[band_codes(confidence, thresholds.t_drop, thresholds.t_keep)]


def run_confidence(ws, run_id: int):
    """(row_idx, confidence) arrays of a finished scoring run."""
    wide = ws.scores_wide(run_id, signals=["confidence"])
    if "confidence" not in wide.columns or wide.empty:
        raise ValueError(f"run {run_id} has no confidence scores yet (is it finished?)")
    return wide["row_idx"].to_numpy(), wide["confidence"].to_numpy(dtype=float)


DEFAULT_KEEP_FRACTION = 0.5  # CLEAR's gamma: the median keeps about half the rows
DEFAULT_ETA = 0.8  # CLEAR's judge threshold for a confident proposal


def default_thresholds(confidence, keep_fraction: float = DEFAULT_KEEP_FRACTION, eta: float = DEFAULT_ETA
                       ) -> Thresholds:
    """The thresholds of a run nobody set any for, shared by the app, the CLI and export: t_keep keeps
    `keep_fraction` of the rows (0.5 = the median, CLEAR's gamma) and t_drop = t_keep (no review band: every row
    below gamma is a drop, as in CLEAR). Confidence in [0, 1], higher = more trustworthy."""
    return thresholds_from_scores(confidence, keep_fraction=None if keep_fraction == 0.5 else keep_fraction, eta=eta)


def stored_thresholds(run) -> Thresholds | None:
    """The thresholds stored with a score run (RunInfo.thresholds, set in the app or with set_thresholds), or None."""
    stored = getattr(run, "thresholds", None)
    if not stored:
        return None
    return Thresholds(t_drop=float(stored["t_drop"]), t_keep=float(stored["t_keep"]),
                      eta=float(stored.get("eta", DEFAULT_ETA)))


def run_thresholds(ws, run_id: int, keep_value: float | None = None, keep_fraction: float | None = None,
                   drop_value: float | None = None, drop_fraction: float | None = None,
                   eta: float | None = None) -> Thresholds:
    """The thresholds in force for a run, one rule for the app, the CLI and export.

    With any value or fraction given: `thresholds_from_scores` over the run's stored confidence. With none: the
    thresholds stored with the run, else `default_thresholds`. eta, when given, replaces the stored or default one.
    """
    if all(v is None for v in (keep_value, keep_fraction, drop_value, drop_fraction)):
        stored = stored_thresholds(ws.get_run(run_id))
        if stored is not None:
            return stored if eta is None else Thresholds(t_drop=stored.t_drop, t_keep=stored.t_keep, eta=eta)
        _, conf = run_confidence(ws, run_id)
        return default_thresholds(conf, eta=DEFAULT_ETA if eta is None else eta)
    _, conf = run_confidence(ws, run_id)
    return thresholds_from_scores(conf, keep_value, keep_fraction, drop_value, drop_fraction,
                                  DEFAULT_ETA if eta is None else eta)


def store_thresholds(ws, run_id: int, thresholds: Thresholds | None) -> None:
    """Keep `thresholds` with the score run, where the CLI and export find them; None goes back to the default."""
    ws.set_thresholds(run_id, None if thresholds is None else
                      {"t_drop": thresholds.t_drop, "t_keep": thresholds.t_keep, "eta": thresholds.eta})


def band_counts(ws, run_id: int, thresholds: Thresholds) -> dict:
    """Rows per band (keep, review, drop, confident_fix, total) from the store's single query."""
    return ws.band_counts(run_id, thresholds.t_drop, thresholds.t_keep, thresholds.eta)
