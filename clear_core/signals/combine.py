"""Combination of the per-row signals into `confidence`.

`confidence` is in [0, 1], higher = more trustworthy: the weighted mean of the signals present for a row, the
weights renormalised over those signals (a NaN value means the signal is missing for that row); geometric by
default: a row that one signal is sure is bad is not averaged away by the others (the two means are compared in
bench/results/quality.md). Detector signals (`Signal.detector`: high-precision text checks, 1.0 when silent) also
cap the mean when they fire (`veto`): averaged in with a small weight, a check that is sure of a rare defect would
be diluted by the signals that do not see it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..config import PRESETS
from ..errors import UnknownNameError


def preset_weights(preset: str) -> dict[str, float]:
    """The fixed weights of a named preset (clear_core.config.PRESETS)."""
    if preset not in PRESETS:
        raise UnknownNameError("preset", preset, list(PRESETS))
    return dict(PRESETS[preset]["weights"])


MEANS = ("geometric", "arithmetic")
FLOOR = 1e-4  # the geometric mean reads a value below this as this: one signal at 0 does not zero the row


def features(v: np.ndarray, mean: str) -> np.ndarray:
    """The space in which `mean` averages: the values themselves, or their logs (floored at FLOOR)."""
    v = np.clip(np.asarray(v, dtype=float), 0.0, 1.0)
    return np.log(np.maximum(v, FLOOR)) if mean == "geometric" else v


# A detector's value v caps confidence at min(1, v / VETO_FULL). Under textrules.rarity_value, v >= VETO_FULL means
# the pattern is on a twentieth of the dataset's rows or more: a check firing that often is as likely misfiring on
# a legitimate trait of the dataset, so it caps nothing and a misfiring detector cannot sink a dataset; a rarer one
# caps more the rarer it is.
VETO_FULL = 0.25


def detector_cap(values: Mapping[str, np.ndarray], weights: Mapping[str, float], n: int) -> np.ndarray:
    """Per row, the cap the weighted detector signals put on confidence (1.0 where none fires; NaN counts as 1)."""
    from . import REGISTRY

    cap = np.ones(n)
    for name in weights:
        signal = REGISTRY.get(name)
        if signal is not None and signal.detector and name in values:
            v = np.asarray(values[name], dtype=float)
            cap = np.fmin(cap, np.where(np.isnan(v), 1.0, np.clip(v / VETO_FULL, 0.0, 1.0)))
    return cap


def confidence(values: Mapping[str, np.ndarray], weights: Mapping[str, float], mean: str = "geometric",
               veto: bool = True) -> np.ndarray:
    """Weighted mean of the available signals per row; in [0, 1], higher = more trustworthy.

    values: signal name -> array of per-row values in [0, 1] (NaN = missing for that row). Signals without a
    weight, or with weight 0, are ignored; weights of absent signals are ignored; for each row the weights are
    renormalised over the signals it has. A row with no usable signal gets NaN.
    mean: "geometric" (exp of the weighted mean of the logs: one signal that is sure the row is bad pulls the row
    down, as with probabilities of independent evidence) or "arithmetic" (one low signal is averaged away).
    veto: the registered detectors among `weights` (any weight, 0 included: calibration may find no synthetic row
    that only they catch) cap the mean (detector_cap); False for runs stored before the cap (ScoreConfig.veto).
    """
    if mean not in MEANS:
        raise UnknownNameError("mean", mean, list(MEANS))
    used = [name for name, w in weights.items() if name in values and float(w) > 0]
    if any(float(w) < 0 or not np.isfinite(float(w)) for w in weights.values()):
        raise ValueError(f"weights must be finite and non-negative, got {dict(weights)}")
    if not values:
        raise ValueError("no signal values to combine")
    n = len(next(iter(values.values())))
    for name, v in values.items():
        if len(v) != n:
            raise ValueError(f"signal '{name}' has {len(v)} values, expected {n}")
    if not used:
        raise ValueError(f"none of the weighted signals {sorted(weights)} is present; have {sorted(values)}")
    v = np.column_stack([np.asarray(values[name], dtype=float) for name in used])
    w = np.array([float(weights[name]) for name in used])
    present = ~np.isnan(v)
    num = np.where(present, features(np.where(present, v, 1.0), mean), 0.0) @ w
    den = present.astype(float) @ w
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    if mean == "geometric":
        out = np.exp(out)
    if veto:
        out = np.minimum(out, detector_cap(values, weights, n))  # a row with no signal stays NaN
    return np.clip(out, 0.0, 1.0)
