"""The dataset signals together: fit them over a whole dataset, then score extra pairs against the fit.

A dataset signal's entry takes the dataset's `Rows` and returns its `Fitted`: values and raw values over every
row, and `score(queries, source_rows)`, which scores extra (prompt, response) pairs made from dataset rows
(calibration's synthetic corruptions) out-of-fold against the row each pair was made from (that row never counts
as its own neighbour). `fit(wanted, rows)` runs the dataset signals named in `wanted`, in registry order;
`score_queries(fitted, queries, source_rows)` scores queries with each of them. The scoring pipeline and
bench/quality.py both go through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Rows:
    """What a dataset signal reads, aligned by position: the rows' (or queries') prompt and response embeddings,
    prompt messages, responses, and the raw values of the row signals computed for them (signal name -> array;
    a signal that needs one that is missing returns no fit)."""

    prompt_emb: np.ndarray
    response_emb: np.ndarray
    prompts: Sequence
    responses: Sequence[str]
    raw: Mapping[str, np.ndarray] = field(default_factory=dict)
    # The embedding matrices belong to this fit alone: on a large dataset neighbors may turn each into its unit
    # vectors in place instead of holding a second matrix (form and likelihood_rel then share those through
    # knn.centred_unit's cache). The scoring pipeline sets it.
    scratch_embeddings: bool = False

    def __len__(self) -> int:
        return len(self.responses)


@dataclass(frozen=True)
class Fitted:
    """One dataset signal fitted over a dataset: values in [0, 1] (higher = more trustworthy) and raw values over
    its rows, the fitted model, and score(queries: Rows, source_rows) -> the queries' values."""

    values: np.ndarray
    raw: np.ndarray
    model: object
    score: Callable[[Rows, np.ndarray], np.ndarray]


@dataclass
class DatasetFit:
    """The fitted dataset signals by name (registry order)."""

    fits: dict[str, Fitted] = field(default_factory=dict)

    @property
    def values(self) -> dict[str, np.ndarray]:
        return {name: f.values for name, f in self.fits.items()}

    @property
    def raw(self) -> dict[str, np.ndarray]:
        return {name: f.raw for name, f in self.fits.items()}

    @property
    def models(self) -> dict[str, object]:
        return {name: f.model for name, f in self.fits.items()}

    @property
    def labels_only(self) -> np.ndarray | None:
        """Rows whose response is a class label (neighbors' categorical rows), None without neighbors."""
        nb = self.fits.get("neighbors")
        return None if nb is None else nb.model.labels >= 0


def text_signal(fit_text: Callable, score_text: Callable, rows: Rows) -> Fitted:
    """The `Fitted` of a dataset signal that reads only the rows' text: fit_text(prompts, responses) -> model,
    score_text(model, prompts, responses) -> (values, raw); queries are scored with the same model (a text rule
    has no neighbours, so the source row needs no exclusion)."""
    model = fit_text(rows.prompts, rows.responses)
    values, raw = score_text(model, rows.prompts, rows.responses)
    return Fitted(np.asarray(values, dtype=float), np.asarray(raw, dtype=float), model,
                  lambda queries, source_rows: np.asarray(score_text(model, queries.prompts, queries.responses)[0],
                                                          dtype=float))


def fit(wanted: Sequence[str], rows: Rows) -> DatasetFit:
    """Fit the dataset signals of `wanted` over all rows (a signal whose inputs are missing is left out)."""
    from . import get_signal, of_kind

    out = DatasetFit()
    for name in of_kind("dataset", wanted):
        fitted = get_signal(name).compute(rows)
        if fitted is not None:
            out.fits[name] = fitted
    return out


def score_queries(fitted: DatasetFit, queries: Rows, source_rows: Sequence[int]) -> dict[str, np.ndarray]:
    """Values of each fitted dataset signal for extra pairs; source_rows[i] is the dataset row pair i came from.
    A signal whose query inputs are missing (score returns None) is left out."""
    source_rows = np.asarray(source_rows, dtype=np.int64)
    out = {}
    for name, f in fitted.fits.items():
        values = f.score(queries, source_rows)
        if values is not None:
            out[name] = values
    return out
