"""The acceptance rule of Auto-Correct, calibrated without labels.

The pooled judge's `judge_conf` is a probability only in name: a small model's verdicts, the classifier's ratio and
the scorer's margin are pooled as if independent and well calibrated, which they are not. So the rule is fitted on
rows the tool makes itself: rows the filter keeps with high confidence are corrupted (`calibrate.make_corruptions`:
swaps, cuts, echoes, text defects) and proposals are made for them exactly as for real rows; a proposal is right
when it restores the row it was made from. As many of those rows are also proposed for untouched (controls): any
proposal on them changes a good row, so a judge that proposes everywhere pays for it. The reliability curve
(judge_conf bin -> share of proposals that restore the original) and the threshold come from those proposals: the
lowest judge_conf whose proposals at or above it are right at a rate >= eta (precision on the synthetic rows), and
never below `floor`. Pure functions of arrays; the correction run (`run.py`) makes the rows and stores the rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)  # judge_conf bins of the reliability curve
MIN_ACCEPTED = 5  # a threshold must accept at least this many synthetic proposals to count as measured


@dataclass(frozen=True)
class AcceptanceRule:
    """Accept a proposal (mark it `confident`) when judge_conf >= threshold (or when it is a confident-learning
    relabel, see `relabel.py`).

    method: "calibrated" (fitted on synthetic rows) or "eta" (the fixed CLEAR threshold: nothing to fit from);
    precision: share of the synthetic proposals at or above the threshold that restore the original (NaN when none);
    n_rows / n_proposals: synthetic rows (corrupted + controls) and the proposals made for them; curve: per bin
    [lo, hi, proposals, restored]."""

    threshold: float
    eta: float
    method: str = "eta"
    precision: float = float("nan")
    accepted: int = 0
    n_rows: int = 0
    n_proposals: int = 0
    curve: tuple = ()
    kinds: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["curve"] = [list(c) for c in self.curve]
        out["kinds"] = dict(self.kinds)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, eta: float = 0.8) -> "AcceptanceRule":
        if not data:
            return cls(threshold=float(eta), eta=float(eta))
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["curve"] = tuple(tuple(c) for c in values.get("curve", ()))
        return cls(**values)

    def describe(self) -> str:
        """One line for people: what is accepted and how the threshold was found."""
        if self.method != "calibrated":
            return f"confident when judge_conf >= {self.threshold:.3f} (eta; no calibration)"
        prec = "no synthetic proposal reached it" if np.isnan(self.precision) else \
            f"precision {100 * self.precision:.1f} % on {self.accepted} synthetic proposals"
        return (f"confident when the pooled judge >= {self.threshold:.3f} (judge_conf >= {self.eta:.2f}): "
                f"calibrated on {self.n_rows} synthetic rows (corrupted kept rows and controls), {prec}, "
                f"target {100 * self.eta:.0f} %")


def reliability_curve(conf: np.ndarray, right: np.ndarray, bins: Sequence[float] = BINS) -> tuple:
    """Per judge_conf bin [lo, hi): (lo, hi, proposals, right ones); the last bin includes 1."""
    conf, right = np.asarray(conf, dtype=float), np.asarray(right, dtype=bool)
    out = []
    for i, (lo, hi) in enumerate(zip(bins[:-1], bins[1:])):
        sel = (conf >= lo) & ((conf < hi) | (i == len(bins) - 2))
        out.append((float(lo), float(hi), int(sel.sum()), int((sel & right).sum())))
    return tuple(out)


def fit_threshold(conf: np.ndarray, right: np.ndarray, eta: float, floor: float = 0.5,
                  min_accepted: int = MIN_ACCEPTED) -> tuple[float, float, int]:
    """(threshold, precision above it, proposals above it): the lowest judge_conf t >= floor such that the
    proposals with judge_conf >= t are right at a rate >= eta, over at least `min_accepted` of them.

    When no t reaches eta, the threshold is 1.0 + a hair (nothing accepted through the judge) and the precision
    is the best seen (NaN with no proposal)."""
    conf, right = np.asarray(conf, dtype=float), np.asarray(right, dtype=bool)
    ok = ~np.isnan(conf)
    conf, right = conf[ok], right[ok]
    order = np.argsort(-conf, kind="stable")
    conf, right = conf[order], right[order]
    hits = np.cumsum(right)
    n = np.arange(1, len(conf) + 1)
    prec = hits / np.maximum(n, 1)
    # Only the last of equal judge_conf values is a place a threshold can fall.
    last = np.r_[conf[1:] != conf[:-1], True] if len(conf) else np.zeros(0, bool)
    good = last & (prec >= eta) & (n >= min_accepted) & (conf >= floor)
    if good.any():
        i = int(np.flatnonzero(good)[-1])
        return float(conf[i]), float(prec[i]), int(n[i])
    best = float(prec[last].max()) if last.any() else float("nan")
    return float(np.nextafter(1.0, 2.0)), best, 0


def fit_rule(conf: np.ndarray, right: np.ndarray, eta: float, n_rows: int, kinds: Mapping[str, int] | None = None,
             floor: float = 0.5) -> AcceptanceRule:
    """The calibrated rule from the synthetic rows' proposals: judge_conf and whether each restored its row."""
    threshold, precision, accepted = fit_threshold(conf, right, eta, floor)
    return AcceptanceRule(threshold=threshold, eta=float(eta), method="calibrated", precision=precision,
                          accepted=accepted, n_rows=int(n_rows), n_proposals=int(len(conf)),
                          curve=reliability_curve(conf, right), kinds=dict(kinds or {}))


def synthetic_rows(rows: Sequence[Mapping], confidence: np.ndarray, n: int, seed: int = 0,
                   labels_only: Sequence[bool] | None = None, top_share: float = 0.5) -> list[dict]:
    """Rows to calibrate on: up to n corruptions of rows the filter keeps with high confidence (the top
    `top_share` of `rows`, which are the keep band's), and as many of those rows untouched as controls.

    rows: dicts with prompt, response (positions = indices into `confidence`). Each output dict has prompt,
    response, source_row (a position in rows), kind ("control" or the corruption's), target (the response a
    proposal must equal to count as right; None for controls, where no proposal is right)."""
    from ..calibrate import CalibrationError, make_corruptions

    conf = np.asarray(confidence, dtype=float)
    if n <= 0 or len(rows) < 4:
        return []
    top = np.argsort(-np.where(np.isnan(conf), -np.inf, conf), kind="stable")[:max(2, int(len(rows) * top_share))]
    pool = [rows[int(i)] for i in top]
    only = None if labels_only is None else np.asarray(labels_only, dtype=bool)[top]
    try:
        made = make_corruptions(pool, n=len(pool), seed=seed, labels_only=only)
    except CalibrationError:
        return []
    # A defect that changes only the prompt (an unseen input) has no response to restore: not a test of a fix.
    made = [m for m in made if m["response"] != pool[m["source_row"]]["response"]]
    rng = np.random.default_rng([seed, 14])
    made = [made[i] for i in np.sort(rng.permutation(len(made))[:n])]
    out = [{"prompt": m["prompt"], "response": m["response"], "source_row": int(top[m["source_row"]]),
            "kind": m["kind"], "target": pool[m["source_row"]]["response"]} for m in made]
    controls = rng.permutation(len(top))[:len(out)]
    out += [{"prompt": pool[int(i)]["prompt"], "response": pool[int(i)]["response"], "source_row": int(top[int(i)]),
             "kind": "control", "target": None} for i in controls]
    return out


def rescale(pooled, threshold: float, eta: float) -> np.ndarray:
    """The stored judge_conf: the pooled judge mapped piecewise-linearly so that the rule's threshold lands on eta
    ([0, threshold] -> [0, eta], [threshold, 1] -> [eta, 1]); judge_conf >= eta then means "accepted by the rule",
    which is what the store's and the app's confident counts read. The identity when threshold == eta."""
    p = np.asarray(pooled, dtype=float)
    t = float(threshold)
    if t >= 1.0:  # nothing reaches the rule: everything stays below eta
        return p * eta / max(t, 1.0) * (1.0 - 1e-9)
    low = p * eta / t if t > 0 else np.full_like(p, eta)
    high = eta + (p - t) * (1.0 - eta) / (1.0 - t)
    return np.clip(np.where(p < t, low, high), 0.0, 1.0)
