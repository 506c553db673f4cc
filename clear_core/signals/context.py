"""likelihood_ctx: the response's likelihood with the dataset's most similar rows shown first as worked examples.

A bare prompt leaves a small model guessing the answer's *form* (one word or a sentence, "positive" or "The
sentiment is positive."), and that guess swamps its knowledge of the *content*: a right one-word antonym scores
below a wrong full sentence. Shown the k rows whose prompts are nearest (as earlier user / assistant turns of the
same chat, `chat.few_shot`), the model expects the dataset's own form, so what is left in the likelihood is
whether this answer is the one it would give. value = exp(mean token log-prob over the response tokens and the
end-of-turn token after them), in [0, 1], higher = more trustworthy; raw = that mean log-prob.
`likelihood_ctx_min`, from the same pass: exp(the least likely response token's log-prob), the one wrong word in
an answer of the expected form.

It needs every row's prompt embedding to find the examples, so it runs as its own pass after the rows pass
(`pipeline` stage `context`). The nearest rows may themselves be noisy; with k examples one bad one is outvoted by
the others' form. Where the answers are labels (sentiment classes), the examples' labels are copied and the
signal says little; the label-free calibration then gives it no weight (bench/results/quality.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import knn

NAME, MIN_NAME = "likelihood_ctx", "likelihood_ctx_min"
K = 4  # worked examples per row
MAX_EXAMPLE_CHARS = 1500  # each example turn is cut to this many characters (chat.few_shot)


@dataclass(frozen=True)
class ContextIndex:
    """The dataset's prompt embeddings, to find each row's worked examples."""

    row_idx: np.ndarray   # the dataset row of each embedding
    unit: np.ndarray      # centred, L2-normalised prompt embeddings (float32)
    pos: dict             # dataset row -> its position in row_idx / unit

    @classmethod
    def build(cls, row_idx, prompt_emb) -> "ContextIndex":
        row_idx = np.asarray(row_idx, dtype=np.int64)
        return cls(row_idx, knn.centred_unit(prompt_emb)[0].astype(np.float32, copy=False),
                   {int(r): i for i, r in enumerate(row_idx)})

    def examples_for(self, rows: Sequence[int], k: int = K) -> np.ndarray:
        """(n, k') dataset rows whose prompts are nearest to each of `rows`' prompt (the row itself never),
        least similar first, so that the nearest example stands right before the row. A row without an
        embedding gets -1s."""
        pos = self.pos
        k = max(0, min(k, len(self.row_idx) - 1))
        out = np.full((len(rows), k), -1, dtype=np.int64)
        have = [i for i, r in enumerate(rows) if int(r) in pos]
        if not k or not have:
            return out
        q = np.array([pos[int(rows[i])] for i in have])
        out[have] = self.row_idx[knn.nearest(self.unit[q], self.unit, k, exclude=q)[:, ::-1]]
        return out


def score(token_logprobs: Sequence[np.ndarray],
          ends_turn: Sequence[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """likelihood_ctx (values, raw) from each row's response + end-of-turn token log-probs: exp(mean) and the
    mean (the end-of-turn token counts, so ends_turn is not needed); NaN when a row has no token."""
    raw = np.array([float(np.mean(lp)) if len(lp) else np.nan for lp in token_logprobs], dtype=np.float64)
    return np.exp(raw), raw


def score_min(token_logprobs: Sequence[np.ndarray], ends_turn: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """likelihood_ctx_min (values, raw): exp(the least likely response token's log-prob) and that log-prob, the
    end-of-turn token left out (where the row has one: ends_turn); NaN when a row has no token."""
    raw = np.full(len(token_logprobs), np.nan)
    for i, (lp, ends) in enumerate(zip(token_logprobs, ends_turn)):
        lp = lp[:-1] if ends and len(lp) > 1 else lp
        if len(lp):
            raw[i] = float(np.min(lp))
    return np.exp(raw), raw
