"""Detection metrics for the benchmarks (numpy only).

Convention: ``scores`` are trust scores (higher = more trustworthy) and ``is_bad`` marks the rows that really are
noise, so a perfect detector ranks every bad row below every good row. AUROC is reported for "detecting bad rows",
i.e. the probability that a random bad row scores lower than a random good row (ties count one half).
"""

from __future__ import annotations

import numpy as np


def _check(scores, is_bad) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float).ravel()
    y = np.asarray(is_bad, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and is_bad differ in length: {s.shape[0]} vs {y.shape[0]}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return s, y


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1 .. ends
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(scores, is_bad) -> float:
    """AUROC of low trust scores for bad rows (0.5 = random, 1.0 = every bad row below every good one).

    Equal to ``sklearn.metrics.roc_auc_score(is_bad, -scores)``. NaN when only one class is present.
    """
    s, y = _check(scores, is_bad)
    n_bad, n_good = int(y.sum()), int((~y).sum())
    if n_bad == 0 or n_good == 0:
        return float("nan")
    ranks = _average_ranks(-s)  # high rank = low trust
    return float((ranks[y].sum() - n_bad * (n_bad + 1) / 2.0) / (n_bad * n_good))


def precision_recall_at(scores, is_bad, n_flag: int) -> tuple[float, float]:
    """Precision and recall when the ``n_flag`` least trustworthy rows are flagged (stable order on ties)."""
    s, y = _check(scores, is_bad)
    n_flag = int(min(max(n_flag, 0), len(s)))
    flagged = np.zeros(len(s), dtype=bool)
    flagged[np.argsort(s, kind="mergesort")[:n_flag]] = True
    return _pr(flagged, y)


def precision_recall_below(scores, is_bad, threshold: float) -> tuple[float, float]:
    """Precision and recall when rows scoring strictly below ``threshold`` are flagged."""
    s, y = _check(scores, is_bad)
    return _pr(s < threshold, y)


def _pr(flagged: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    tp = int((flagged & y).sum())
    precision = tp / flagged.sum() if flagged.any() else float("nan")
    recall = tp / y.sum() if y.any() else float("nan")
    return float(precision), float(recall)


def report(scores, is_bad) -> dict[str, float]:
    """AUROC, and precision/recall flagging as many rows as there are bad ones and flagging below the median."""
    s, y = _check(scores, is_bad)
    p_k, r_k = precision_recall_at(s, y, int(y.sum()))
    p_m, r_m = precision_recall_below(s, y, float(np.median(s)))
    return {"auroc": auroc(s, y), "p_at_k": p_k, "r_at_k": r_k, "p_median": p_m, "r_median": r_m}


def write_markdown(path, lines: list[str]) -> None:
    """Write a benchmark's report (markdown lines) to `path` and print it."""
    from pathlib import Path

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
