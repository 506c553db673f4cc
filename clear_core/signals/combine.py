"""Combination of the per-row signals into `confidence`.

`confidence` is in [0, 1], higher = more trustworthy: the weighted mean of the signals present for a row, the
weights renormalised over those signals (a NaN value means the signal is missing for that row).
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


def confidence(values: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted mean of the available signals per row; in [0, 1], higher = more trustworthy.

    values: signal name -> array of per-row values in [0, 1] (NaN = missing for that row). Signals without a
    weight, or with weight 0, are ignored; weights of absent signals are ignored; for each row the weights are
    renormalised over the signals it has. A row with no usable signal gets NaN.
    """
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
    num = np.where(present, np.clip(v, 0.0, 1.0), 0.0) @ w
    den = present.astype(float) @ w
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(out, 0.0, 1.0)
