"""reflection: BSDetector's self-reflection certainty, read from next-token probabilities.

After the (prompt, response) conversation the model is asked two follow-up questions as a new user turn; the
probabilities of the answer letters A (correct), B (incorrect), C (not sure) after the assistant's generation prompt
are renormalised over the three letters (each letter counting both its "A" and " A" spellings). The row's value is
the mean over the two questions of P(A) * 1 + P(B) * 0 + P(C) * 0.5: in [0, 1], higher = more trustworthy.
raw = the same expected score (it is already on its natural scale); no text is sampled or parsed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

QUESTIONS = (
    "Is the proposed answer:\n(A) Correct\n(B) Incorrect\n(C) I am not sure",
    "Are you really sure the proposed answer is correct? Choose again:\n(A) Correct\n(B) Incorrect\n(C) I am not sure",
)
CANDIDATES = ("A", "B", "C")
LETTER_SCORES = np.array([1.0, 0.0, 0.5])


def renormalise(probs: np.ndarray) -> np.ndarray:
    """Letter probabilities divided by their sum over the letters (last axis)."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs / probs.sum(axis=-1, keepdims=True)


def score(letter_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw) from letter_probs (n, n_questions, 3): the expected letter score, averaged over questions."""
    expected = renormalise(letter_probs) @ LETTER_SCORES
    values = expected.mean(axis=1)
    return values, values.copy()


def compute(batch) -> tuple[np.ndarray, np.ndarray]:
    """`reflection` of a scored batch (a row signal's entry): QUESTIONS were asked on each response's cache."""
    return score(batch.suffix_probs(QUESTIONS))


def naive_letter_probs(backend, ids: Sequence[int], question: str,
                       candidates: Sequence[str] = CANDIDATES) -> np.ndarray:
    """Reference: one forward from scratch over prefix + question, full softmax, the letters' spellings summed,
    then renormalised over the letters."""
    full = list(ids) + backend.suffix_ids(question)
    logits = backend.logits(full)[-1].astype(np.float64)
    p = np.exp(logits - np.logaddexp.reduce(logits))
    token_ids, groups = backend.candidate_groups(candidates)
    return renormalise(np.array([sum(p[token_ids[c]] for c in cols) for cols in groups]))
