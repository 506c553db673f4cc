"""The `form` signal: is a response shaped like the responses to similar prompts?

Some bad responses are wrong in their shape rather than in their facts: the response only repeats the prompt or
its input (an "antonym" that is the word itself, a "corrected" sentence that is the input unchanged), a JSON answer
that does not parse, an empty answer. What is normal depends on the task: a sentiment label naturally appears in
its prompt ("positive or negative?"), free text is never JSON. So each row's shape is compared with the shapes of
its nearest prompts' responses, as `neighbors` does with their content.

Binary shape features per row (FEATURES):
* copy: the whole normalised response (lower case, words only) occurs verbatim in the normalised prompt
  (its display text, `chat.display_text`);
* json: the response parses as a JSON object or array;
* blank: the response is empty or whitespace.
For each feature, p = the similarity-weighted share of the k nearest prompts (cosine over centred prompt
embeddings, the row itself excluded) whose response has it, smoothed as (k p + 0.5) / (k + 1); the row's
typicality is p when it has the feature and 1 - p when not. value = the smallest typicality over the features,
in [0, 1], higher = more trustworthy: a response that copies its prompt where no neighbour does scores about
0.05; one that copies where every neighbour does scores about 0.95. raw = the row's features as a bit mask
(copy = 1, json = 2, blank = 4).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..chat import display_text
from . import knn

FEATURES = ("copy", "json", "blank")
ROUND = 12  # decimals kept of each value (see _typicality)
_NON_WORD = re.compile(r"[^\w\s]+")


@dataclass(frozen=True)
class FormModel:
    """The fitted dataset: what `score_queries` needs to score new pairs against it."""

    prompt_unit: np.ndarray  # centred, L2-normalised prompt embeddings (n, d)
    prompt_mean: np.ndarray
    features: np.ndarray  # (n, len(FEATURES)) 0/1
    k: int


def _words(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", str(text).lower()).split())


def is_copy(prompt: str, response: str) -> bool:
    """The whole response, normalised to its words, occurs as a run of whole words in the prompt."""
    r = _words(response)
    return bool(r) and f" {r} " in f" {_words(prompt)} "


def is_json(response: str) -> bool:
    text = str(response).strip()
    if not text or text[0] not in "[{":
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def features(prompts: Sequence, responses: Sequence[str]) -> np.ndarray:
    """(n, len(FEATURES)) 0/1 shape features of each (prompt, response)."""
    out = np.zeros((len(responses), len(FEATURES)), dtype=np.float64)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        out[i] = (is_copy(display_text(p), r), is_json(r), not str(r).strip())
    return out


def _typicality(model: FormModel, unit: np.ndarray, feats: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nn, sim = knn.nearest(unit, model.prompt_unit, model.k, exclude=exclude, return_sim=True)
    w = np.maximum(sim, 0) + 1e-6
    share = np.einsum("nk,nkf->nf", w, model.features[nn]) / w.sum(1, keepdims=True)
    k = nn.shape[1]
    p = (k * share + 0.5) / (k + 1)
    # Rounded so that rows whose typicality is equal (the same features among equally typical neighbours) compare
    # equal whatever order the weights were summed in: on a dataset where the signal is constant, float noise would
    # otherwise rank the rows.
    typical = np.round(np.where(feats > 0, p, 1 - p).min(axis=1), ROUND)
    mask = (feats * (2 ** np.arange(len(FEATURES)))).sum(axis=1)
    return np.clip(typical, 0, 1), mask


def fit(prompt_emb, prompts: Sequence, responses: Sequence[str], k: int = 10) -> tuple[FormModel, np.ndarray, np.ndarray]:
    """(model, values, raw) for every row of a dataset; see the module docstring."""
    prompt_emb = np.asarray(prompt_emb)  # as given: knn.centred_unit picks the precision (and shares the result)
    n = len(responses)
    if prompt_emb.shape[0] != n or len(prompts) != n:
        raise ValueError(f"prompt embeddings ({prompt_emb.shape[0]}), prompts ({len(prompts)}) and responses ({n}) "
                         "must have the same length")
    if n < 2:
        raise ValueError("form needs at least 2 rows")
    feats = features(prompts, responses)
    model = FormModel(*knn.centred_unit(prompt_emb), feats, k)
    values, raw = _typicality(model, model.prompt_unit, feats, exclude=np.arange(n))
    return model, values, raw


def compute(prompt_emb, prompts: Sequence, responses: Sequence[str], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw) for every row: values in [0, 1], higher = shaped like the neighbours' responses."""
    _, values, raw = fit(prompt_emb, prompts, responses, k)
    return values, raw


def fit_rows(data):
    """The registry's entry (a dataset signal, `signals.dataset`): `fit` over the rows, queries by
    `score_queries`."""
    from .dataset import Fitted

    model, values, raw = fit(data.prompt_emb, data.prompts, data.responses)
    return Fitted(values, raw, model,
                  lambda q, src: score_queries(model, q.prompt_emb, q.prompts, q.responses, src))


def score_queries(model: FormModel, prompt_emb, prompts: Sequence, responses: Sequence[str], source_rows) -> np.ndarray:
    """Values of extra (prompt, response) pairs made from dataset rows; source_rows[i] is never its own neighbour."""
    source_rows = np.asarray(source_rows, dtype=np.int64)
    if not (len(prompts) == len(responses) == len(source_rows) == len(prompt_emb)):
        raise ValueError("prompt_emb, prompts, responses and source_rows must have the same length")
    if len(responses) == 0:
        return np.zeros(0)
    unit = knn.unit(prompt_emb, model.prompt_mean)
    return _typicality(model, unit, features(prompts, responses), exclude=source_rows)[0]
