"""ifd: instruction-following difficulty (Li et al. 2023), a diagnostic of misaligned prompt/response pairs.

raw = loss(response | prompt) / loss(response alone), where loss is the mean token negative log-likelihood and
"alone" means the response as the answer to an empty user turn. raw < 1: the prompt helps predict the response;
raw >= 1: it does not, a sign the pair does not belong together.
value = 1 / (1 + exp(SLOPE * (raw - 1))): a logistic map in [0, 1], decreasing in raw (0.5 at raw = 1),
higher = more trustworthy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SLOPE = 4.0  # raw 0.5 -> 0.88, 1.0 -> 0.5, 1.5 -> 0.12: spreads the typical range of ratios over [0, 1]
EMPTY_PROMPT = ({"role": "user", "content": ""},)


def ratio(conditioned: Sequence[np.ndarray], alone: Sequence[np.ndarray]) -> np.ndarray:
    """Per row: mean NLL of the response given the prompt / mean NLL of the response alone."""
    out = np.full(len(conditioned), np.nan)
    for i, (c, a) in enumerate(zip(conditioned, alone)):
        if len(c) and len(a):
            out[i] = float(-np.mean(c)) / max(float(-np.mean(a)), 1e-12)
    return out


def score(ratios: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw) from the loss ratios."""
    raw = np.asarray(ratios, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(SLOPE * (raw - 1.0))), raw


def compute(batch) -> tuple[np.ndarray, np.ndarray]:
    """`ifd` of a scored batch (a row signal's entry): one more forward per row, the response after an empty
    user turn."""
    return score(ratio(batch.token_logprobs(), batch.logprobs_after(EMPTY_PROMPT)))


def naive_ratio(backend, prompt, response: str) -> float:
    """Reference: the two losses from the backend's unbatched full forwards."""
    cond = backend.token_logprobs([prompt], [response])[0]
    alone = backend.token_logprobs([list(EMPTY_PROMPT)], [response])[0]
    return float(np.mean(-cond) / np.mean(-alone))
