"""The dataset signals together: fit them over a whole dataset, then score extra pairs against the fit.

`fit(wanted, ...)` runs the dataset signals named in `wanted` (neighbors, form, likelihood_rel) over every row and
returns their values, raw values and fitted models; `score_queries(fitted, ...)` scores extra (prompt, response)
pairs made from dataset rows (calibration's synthetic corruptions) with each fitted signal, out-of-fold against
the row each pair was made from. The scoring pipeline and bench/quality.py both go through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class DatasetFit:
    """values / raw: signal name -> array over the rows; models: signal name -> fitted model (for queries)."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    models: dict[str, object] = field(default_factory=dict)

    @property
    def labels_only(self) -> np.ndarray | None:
        """Rows whose response is a class label (neighbors' categorical rows), None without neighbors."""
        nb = self.models.get("neighbors")
        return None if nb is None else nb.labels >= 0


def fit(wanted: Sequence[str], prompt_emb, response_emb, prompts: Sequence, responses: Sequence[str],
        raw_likelihood: np.ndarray | None = None) -> DatasetFit:
    """Fit the dataset signals in `wanted` over all rows (likelihood_rel only when raw_likelihood, the rows'
    mean token log-probs, is given)."""
    out = DatasetFit()
    if "neighbors" in wanted:
        from . import neighbors
        out.models["neighbors"], nb = neighbors.fit(prompt_emb, response_emb, responses)
        out.values["neighbors"], out.raw["neighbors"] = np.asarray(nb.values, float), np.asarray(nb.raw, float)
    if "form" in wanted:
        from . import form
        out.models["form"], out.values["form"], out.raw["form"] = form.fit(prompt_emb, prompts, responses)
    if "likelihood_rel" in wanted and raw_likelihood is not None:
        from . import likelihood
        out.models["likelihood_rel"], vals = likelihood.fit_relative(raw_likelihood, prompt_emb)
        out.values["likelihood_rel"] = out.raw["likelihood_rel"] = vals
    return out


def score_queries(fitted: DatasetFit, prompt_emb, response_emb, prompts: Sequence, responses: Sequence[str],
                  source_rows: Sequence[int], raw_likelihood: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Values of each fitted dataset signal for extra pairs; source_rows[i] is the dataset row pair i came from."""
    out = {}
    if "neighbors" in fitted.models:
        from . import neighbors
        out["neighbors"] = neighbors.score_queries(fitted.models["neighbors"], prompt_emb, response_emb, responses,
                                                   source_rows)
    if "form" in fitted.models:
        from . import form
        out["form"] = form.score_queries(fitted.models["form"], prompt_emb, prompts, responses, source_rows)
    if "likelihood_rel" in fitted.models and raw_likelihood is not None:
        from . import likelihood
        out["likelihood_rel"] = likelihood.relative_queries(fitted.models["likelihood_rel"],
                                                            np.asarray(raw_likelihood, dtype=float), prompt_emb,
                                                            source_rows)
    return out
