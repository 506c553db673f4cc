"""likelihood: the geometric-mean probability of the response tokens given the prompt (CLEAR / BSDetector).

value = exp(mean token log-prob), in [0, 1], higher = more trustworthy (the model finds the response likely);
raw = the mean token log-prob (<= 0). Whether the end-of-turn token counts is ScoreConfig.likelihood_end_token.

Two more row signals come from the same per-token log-probs (no extra forward):
* `likelihood_min`: exp(minimum token log-prob) over the response tokens (end-of-turn token excluded); a single
  unlikely token (one wrong fact in a fluent answer) is a sharp dip that the mean dilutes. raw = the minimum.
* `likelihood_end`: exp(log-prob of the end-of-turn token after the response); low when the model would not end
  the answer there (a cut-off response). raw = that log-prob; NaN when the row's response was cut to fit max_tokens.
`relative` is the dataset signal `likelihood_rel`, computed once every row is scored: the row's mean log-prob
ranked against the mean log-probs of the responses of its k nearest prompts, which removes the task-format effect
on the raw likelihood (a one-word label and a paragraph are not equally likely, right or wrong).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import knn


def score(token_logprobs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw) from each row's per-token log-probs; a row with no token gets NaN."""
    raw = np.array([float(np.mean(lp)) if len(lp) else np.nan for lp in token_logprobs], dtype=np.float64)
    return np.exp(raw), raw


def row_mean(batch) -> tuple[np.ndarray, np.ndarray]:
    """`likelihood` of a scored batch (a row signal's entry): the end-of-turn token counts when
    config.likelihood_end_token."""
    return score(batch.token_logprobs(include_end=batch.config.likelihood_end_token))


def row_min(batch) -> tuple[np.ndarray, np.ndarray]:
    """`likelihood_min` of a scored batch (a row signal's entry), the end-of-turn token left out."""
    return score_min(batch.token_logprobs(include_end=False))


def row_end(batch) -> tuple[np.ndarray, np.ndarray]:
    """`likelihood_end` of a scored batch (a row signal's entry)."""
    return score_end(batch.end_logprobs())


def naive_token_logprobs(backend, ids: Sequence[int], response_start: int) -> np.ndarray:
    """Reference: each response token's log-prob from a separate forward over the unpadded sequence before it."""
    out = []
    for t in range(response_start, len(ids)):
        logits = backend.logits(ids[:t])[-1].astype(np.float64)
        out.append(logits[ids[t]] - np.logaddexp.reduce(logits))
    return np.array(out)


def score_min(token_logprobs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw): exp(min token log-prob) and the min itself; a row with no token gets NaN."""
    raw = np.array([float(np.min(lp)) if len(lp) else np.nan for lp in token_logprobs], dtype=np.float64)
    return np.exp(raw), raw


def score_end(end_logprobs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw): exp(end-of-turn token log-prob) and the log-prob; NaN stays NaN (no end token scored)."""
    raw = np.asarray(end_logprobs, dtype=np.float64)
    return np.exp(raw), raw


def relative(raw_mean: np.ndarray, prompt_unit: np.ndarray, k: int = 10, query_raw: np.ndarray | None = None,
             query_unit: np.ndarray | None = None, source_rows: np.ndarray | None = None) -> np.ndarray:
    """`likelihood_rel` in [0, 1], higher = more trustworthy: the share of a row's k nearest prompts (cosine over
    `prompt_unit`, the row itself excluded) whose responses have a lower mean token log-prob than the row's response
    (ties count half; (below + 0.5) / (k + 1)). Rows, or neighbours, with NaN raw values are not compared: a row
    without a raw value gets NaN.

    With query_raw / query_unit / source_rows, scores extra pairs instead (e.g. synthetic corruptions): query i is
    ranked against the neighbours of its prompt, never counting dataset row source_rows[i].
    """
    raw_mean = np.asarray(raw_mean, dtype=np.float64)
    n = len(raw_mean)
    if query_raw is None:
        q_raw, q_unit, excl = raw_mean, prompt_unit, np.arange(n)
    else:
        q_raw, q_unit, excl = np.asarray(query_raw, dtype=np.float64), query_unit, np.asarray(source_rows)
    out = np.full(len(q_raw), np.nan)
    if n < 2 or not len(q_raw):
        return out
    nn = knn.nearest(np.asarray(q_unit), np.asarray(prompt_unit), k, exclude=excl)  # knn's precision, shared index
    nb = raw_mean[nn]
    valid = ~np.isnan(nb)
    below = ((nb < q_raw[:, None]) & valid).sum(1) + 0.5 * ((nb == q_raw[:, None]) & valid).sum(1)
    out = (below + 0.5) / (valid.sum(1) + 1.0)
    return np.where(np.isnan(q_raw), np.nan, out)


@dataclass(frozen=True)
class RelativeModel:
    """A dataset fitted for `likelihood_rel`: what `relative_queries` needs to rank new pairs against it."""

    raw_mean: np.ndarray  # each row's mean token log-prob (the `likelihood` raw value)
    prompt_unit: np.ndarray  # centred, L2-normalised prompt embeddings
    prompt_mean: np.ndarray
    k: int


def fit_relative(raw_mean, prompt_emb, k: int = 10) -> tuple[RelativeModel, np.ndarray]:
    """(model, values) of `likelihood_rel` for every row of a dataset."""
    model = RelativeModel(np.asarray(raw_mean, dtype=np.float64), *knn.centred_unit(prompt_emb), k)
    return model, relative(model.raw_mean, model.prompt_unit, k)


def fit_rows(data):
    """`likelihood_rel` as the registry's entry (a dataset signal, `signals.dataset`); None without the rows'
    `likelihood` raw values, and a query without them is not scored."""
    from .dataset import Fitted

    raw_mean = data.raw.get("likelihood")
    if raw_mean is None:
        return None
    model, values = fit_relative(raw_mean, data.prompt_emb)

    def score_rows(queries, source_rows):
        q_raw = queries.raw.get("likelihood")
        return None if q_raw is None else relative_queries(model, np.asarray(q_raw, dtype=float),
                                                           queries.prompt_emb, source_rows)

    return Fitted(values, values, model, score_rows)


def relative_queries(model: RelativeModel, query_raw, prompt_emb, source_rows) -> np.ndarray:
    """`likelihood_rel` of extra pairs made from dataset rows (source_rows[i] is never its own neighbour)."""
    unit = knn.unit(prompt_emb, model.prompt_mean)
    return relative(model.raw_mean, model.prompt_unit, model.k, query_raw=query_raw, query_unit=unit,
                    source_rows=source_rows)
