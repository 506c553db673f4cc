"""Confident-learning relabels of categorical rows (Northcutt et al.'s confident learning, on `signals.neighbors`'
out-of-fold classifier).

For a categorical row the classifier of its fold (which never trained on it) gives class probabilities P. Its best
class c* (other than the given one) is proposed as a relabel, with high confidence, when the classifier is sure:
  * P(c*) reaches c*'s per-class threshold, the `class_quantile` quantile of P(c) over the rows labelled c
    (confident learning's per-class threshold: a class the classifier is always unsure of needs less, one it is
    always sure of needs more), and
  * the ratio P(c*) / (P(c*) + P(given)) reaches `threshold` (the knob the bench's trade-off curve runs over:
    restored noisy rows against clean rows changed);
and the LLM judge agrees or has no opinion (its verdict on c* is not below 0.5 - `llm_veto`; NaN = no opinion).
Pure functions of arrays, apart from `oof_proba`, which runs the fold classifiers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RelabelTable:
    """The out-of-fold class probabilities of the scored rows (positions; NaN rows: not categorical), the
    per-class thresholds and the classes (normalised, and as proposed)."""

    proba: np.ndarray  # (n, classes)
    class_threshold: np.ndarray  # per class: the class_quantile quantile of P(c) over the rows labelled c
    classes: tuple  # normalised answers (signals.neighbors.normalize_answer)
    class_text: tuple  # the classes' texts, as proposed

    def pick(self, pos: int, response: str) -> tuple[str | None, float, float]:
        """(best class other than `response`'s, its P, its ratio P / (P + P(response's class))) for the row at
        `pos` answered with `response`; (None, NaN, NaN) where the row has no probabilities or `response` is no
        class."""
        from ..signals.neighbors import normalize_answer

        p = self.proba[int(pos)] if len(self.classes) > 1 else np.full(1, np.nan)
        given = self.classes.index(normalize_answer(response)) if normalize_answer(response) in self.classes else -1
        if given < 0 or np.isnan(p).any():
            return None, float("nan"), float("nan")
        other = p.copy()
        other[given] = -1.0
        best = int(other.argmax())
        total = p[best] + p[given]
        return str(self.class_text[best]), float(p[best]), float(p[best] / total) if total > 0 else 0.5

    def sure(self, candidate: str, p_best: float, ratio: float, threshold: float) -> bool:
        """The classifier is sure of `candidate`: the ratio reaches `threshold` and P its class's threshold."""
        from ..signals.neighbors import normalize_answer

        c = self.classes.index(normalize_answer(candidate))
        return bool(ratio >= threshold and p_best >= self.class_threshold[c])


def oof_proba(model, prompt_emb: np.ndarray) -> np.ndarray:
    """(n, classes) out-of-fold class probabilities of every scored row (NaN rows: not categorical / no fold)."""
    from ..signals.neighbors import class_proba

    n, k = len(model.labels), len(model.classes)
    out = np.full((n, k), np.nan)
    if not k:
        return out
    emb = np.asarray(prompt_emb, dtype=np.float64)
    for f, fold_model in enumerate(model.fold_models):
        sel = np.flatnonzero((model.fold_of == f) & (model.labels >= 0))
        if len(sel):
            out[sel] = class_proba(fold_model, emb[sel], k + bool(model.has_other))[:, :k]
    return out


def class_thresholds(proba: np.ndarray, labels: np.ndarray, quantile: float) -> np.ndarray:
    """Per class c: the `quantile` quantile of P(c) over the rows labelled c (1.0 for a class without rows)."""
    k = proba.shape[1]
    out = np.ones(k)
    for c in range(k):
        own = proba[labels == c, c]
        own = own[~np.isnan(own)]
        if len(own):
            out[c] = float(np.quantile(own, quantile))
    return out


def table(proba: np.ndarray, labels: np.ndarray, classes, class_text, quantile: float) -> RelabelTable:
    """The relabel table from the out-of-fold probabilities and the given labels (-1: free text)."""
    return RelabelTable(np.asarray(proba, dtype=float), class_thresholds(proba, labels, quantile), tuple(classes),
                        tuple(class_text))


def llm_allows(judge_llm, veto: float) -> np.ndarray:
    """The LLM judge agrees or has no opinion: NaN, or not below 0.5 - veto."""
    j = np.asarray(judge_llm, dtype=float)
    return np.isnan(j) | (j >= 0.5 - veto)
