"""Shared helpers of the text signals (appended, placeholder, unseen_input, artifacts, arithmetic).

These signals read only the row's text (no model), so they are cheap and run on every preset. Each one scores a
row in [0, 1], higher = more trustworthy; 1.0 means the check found nothing. Where a pattern can be legitimate in
some datasets (markdown headings, escapes in code), the signal is dataset-relative: a pattern that many of the
dataset's own responses share is not evidence against one of them.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.S)


def without_code(text: str) -> str:
    """The text with fenced and inline code removed (escapes and symbols in code are normal)."""
    return CODE.sub(" ", text)


def rarity_value(fired: np.ndarray, share: np.ndarray, common: float = 0.2, floor: float = 0.02) -> np.ndarray:
    """Per row: 1.0 where nothing fired, else share / common clipped to [floor, 1], so a pattern found in `common`
    (20 %) or more of the dataset's rows costs nothing and a rare one costs almost everything.

    fired: (n, c) booleans (row i shows pattern class j); share: (c,) the share of dataset rows showing each class.
    """
    fired = np.asarray(fired, dtype=bool)
    if fired.size == 0:
        return np.ones(len(fired))
    per_class = np.clip(np.asarray(share, dtype=float) / common, floor, 1.0)
    return np.where(fired, per_class[None, :], 1.0).min(axis=1)


def shares(fired: np.ndarray) -> np.ndarray:
    """The share of rows showing each pattern class (columns of `fired`)."""
    fired = np.asarray(fired, dtype=bool)
    return fired.mean(axis=0) if len(fired) else np.zeros(fired.shape[1:])

