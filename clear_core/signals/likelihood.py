"""likelihood: the geometric-mean probability of the response tokens given the prompt (CLEAR / BSDetector).

value = exp(mean token log-prob), in [0, 1], higher = more trustworthy (the model finds the response likely);
raw = the mean token log-prob (<= 0). The response tokens include the end-of-turn token, so a response cut off
mid-sentence is penalised by the model's low probability of ending there.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def score(token_logprobs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw) from each row's per-token log-probs; a row with no token gets NaN."""
    raw = np.array([float(np.mean(lp)) if len(lp) else np.nan for lp in token_logprobs], dtype=np.float64)
    return np.exp(raw), raw


def naive_token_logprobs(backend, ids: Sequence[int], response_start: int) -> np.ndarray:
    """Reference: each response token's log-prob from a separate forward over the unpadded sequence before it."""
    out = []
    for t in range(response_start, len(ids)):
        logits = backend.logits(ids[:t])[-1].astype(np.float64)
        out.append(logits[ids[t]] - np.logaddexp.reduce(logits))
    return np.array(out)
