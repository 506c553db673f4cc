"""The judges of Auto-Correct: the probability that a candidate response is better than the original.

* the LLM judge: the base model comparing original and candidate for the prompt in BOTH orders (A/B, then B/A, so
  a preference for a position cancels out); each verdict is read from the next-token probabilities of the letters
  "A" and "B" (renormalised), and its value is the mean over the two orders;
* the dataset judge (categorical rows whose candidate is one of the classes): the out-of-fold classifier of
  `signals.neighbors` (the fold that never trained on the row), P(candidate) / (P(candidate) + P(original)).
  Rows without it (free text, a candidate outside the classes) get NaN, which counts as no opinion;
* the scorer judge (`scorer.py`): the scoring run's confidence model applied to the candidate in the original's
  place, c_candidate / (c_candidate + c_original).
They are pooled as independent judges in log-odds, logit(judge_conf) = sum of logit(judge_i), so a 0.5 judge adds
nothing and two agreeing judges give more confidence than either alone. Everything here but `judge` (one call of
the backend) is a pure function of arrays.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..chat import model_text

JUDGE_SIGNALS = ("judge_llm", "judge_dataset", "judge_scorer")  # the pooled components
# Stored as scores of the correction run: the components, and the LLM judge's verdict on the classifier's
# relabel (the confident-learning rule reads it; the bench's trade-off curve recomputes the rule from it).
STORED_SIGNALS = JUDGE_SIGNALS + ("relabel_llm",)
POOL_EPS = 1e-4  # each judge is clipped to [POOL_EPS, 1 - POOL_EPS] before pooling, so no judge alone is certain
JUDGE_LETTERS = ("A", "B")
JUDGE_TEMPLATE = (
    "Two responses to the same prompt follow. Which response is the better answer to the prompt (correct, "
    "relevant and helpful)?\n\n### Prompt\n{prompt}\n\n### Response A\n{a}\n\n### Response B\n{b}\n\n"
    "Answer with one letter: A or B."
)


def judge_prompts(prompt: Sequence[dict], original: str, candidate: str) -> tuple[list[dict], list[dict]]:
    """The two judge conversations: original as A / candidate as B, then candidate as A / original as B."""
    text = model_text(prompt)
    ab = JUDGE_TEMPLATE.format(prompt=text, a=original, b=candidate)
    ba = JUDGE_TEMPLATE.format(prompt=text, a=candidate, b=original)
    return [{"role": "user", "content": ab}], [{"role": "user", "content": ba}]


def judge_confidence(p_ab: np.ndarray, p_ba: np.ndarray) -> np.ndarray:
    """Confidence that the candidate is better, in [0, 1], from (n, 2) letter probabilities of both orders.

    p_ab: original shown as A, candidate as B -> P(B); p_ba: candidate shown as A -> P(A). Each pair is
    renormalised over the two letters, and the two orders are averaged, so a judge that always prefers one
    position gives 0.5 whatever it prefers.
    """
    p_ab, p_ba = np.asarray(p_ab, dtype=float), np.asarray(p_ba, dtype=float)
    ab = p_ab[:, 1] / np.maximum(p_ab.sum(axis=1), 1e-12)
    ba = p_ba[:, 0] / np.maximum(p_ba.sum(axis=1), 1e-12)
    return np.clip(0.5 * (ab + ba), 0.0, 1.0)


def pool_judges(*judges) -> np.ndarray:
    """Pool independent judges' probabilities in log-odds: logit(p) = sum of logit(p_i).

    Each argument is an array (or scalar) of probabilities that the candidate is better; NaN = no opinion (adds
    nothing, like 0.5). Each judge is clipped to [POOL_EPS, 1 - POOL_EPS]. With no judge at all the result is 0.5.
    """
    arrays = [np.asarray(j, dtype=float) for j in judges]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
    total = np.zeros(shape)
    for a in arrays:
        p = np.clip(a, POOL_EPS, 1.0 - POOL_EPS)
        total = total + np.where(np.isnan(p), 0.0, np.log(p) - np.log1p(-p))
    return 1.0 / (1.0 + np.exp(-total))


def dataset_judge(p_candidate, p_original) -> np.ndarray:
    """The dataset-consistency judge: P(candidate) / (P(candidate) + P(original)) from a classifier's class
    probabilities; NaN (no opinion) where either is NaN or both are 0."""
    pc, po = np.asarray(p_candidate, dtype=float), np.asarray(p_original, dtype=float)
    total = pc + po
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, pc / np.where(total > 0, total, 1.0), np.nan)


def categorical_data_judge(model, prompt_emb: np.ndarray, positions: Sequence[int], originals: Sequence[str],
                           candidates: Sequence[str]) -> np.ndarray:
    """P(candidate) / (P(candidate) + P(original)) from the classifier of the row's fold (which never trained on
    the row), for categorical rows whose original and candidate are both classes; NaN elsewhere.

    model: a `signals.neighbors.NeighborsModel`; prompt_emb: the prompt embeddings it was fitted on; positions:
    each query's row position in them.
    """
    from ..signals.neighbors import class_proba, normalize_answer

    out = np.full(len(positions), np.nan)
    if model is None or not model.classes or not len(positions):
        return out
    index = {c: i for i, c in enumerate(model.classes)}
    pos = np.asarray(positions, dtype=np.int64)
    ci = np.array([index.get(normalize_answer(c), -1) for c in candidates])
    oi = np.array([index.get(normalize_answer(o), -1) for o in originals])
    fold = model.fold_of[pos]
    ok = (ci >= 0) & (oi >= 0) & (fold >= 0) & (model.labels[pos] >= 0)
    n_classes = len(model.classes) + bool(model.has_other)
    for f in np.unique(fold[ok]):
        sel = np.flatnonzero(ok & (fold == f))
        p = class_proba(model.fold_models[f], np.asarray(prompt_emb, dtype=np.float64)[pos[sel]], n_classes)
        out[sel] = dataset_judge(p[np.arange(len(sel)), ci[sel]], p[np.arange(len(sel)), oi[sel]])
    return out


def judge(backend, prompts: Sequence[Sequence[dict]], originals: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """Two-order pairwise judge: confidence in [0, 1] that each candidate is better than its original."""
    if not len(prompts):
        return np.zeros(0)
    pairs = [judge_prompts(p, o, c) for p, o, c in zip(prompts, originals, candidates)]
    probs = np.asarray(backend.next_token_probs([ab for ab, _ in pairs] + [ba for _, ba in pairs], list(JUDGE_LETTERS)))
    n = len(pairs)
    return judge_confidence(probs[:n], probs[n:])


def judge_scores(props: pd.DataFrame) -> pd.DataFrame | None:
    """The judge components of each row's stored proposal as long scores [row_idx, signal, value] (NaN left out)."""
    parts = [pd.DataFrame({"row_idx": props["row_idx"].astype(np.int64), "signal": name,
                           "value": props[name].astype(float)}) for name in STORED_SIGNALS if name in props]
    if not parts:
        return None
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[frame["value"].notna()].reset_index(drop=True)
    return frame if len(frame) else None
