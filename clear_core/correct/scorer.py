"""The scorer as a judge: a candidate is scored with the scoring run's own confidence model, in the original's place.

Same signals, same weights: the row signals come from the backend (`scoring.score_batch` with the run's config),
the dataset signals from the run's rows fitted again (`signals.dataset.fit`; a candidate is a query scored
against the fit with its row as the source, so the row never counts as its own neighbour:
`signals.dataset.score_queries`), combined by `signals.combine.confidence` with the run's weights. Sampled and
in-context signals are left out on both sides (they cost more forwards than a judge should), so the original's
confidence is recombined from its stored values of the same signals. The judge's value is the margin as a share,
c_candidate / (c_candidate + c_original): 0.5 when the scorer rates both alike, towards 1 when the candidate is
much more trustworthy (an empty or cut-off original, a placeholder, control characters), in [0, 1].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .judging import dataset_judge


@dataclass
class Scorer:
    """The scoring run's confidence model over the scored rows (by position)."""

    config: object  # the scoring run's ScoreConfig, without sampling
    weights: dict
    fitted: object  # signals.dataset.DatasetFit over the scored rows
    stored: dict  # signal -> stored values of the scored rows (positions), the signals the scorer computes

    @classmethod
    def build(cls, score_run, values: dict, raw: dict, prompt_emb, response_emb, prompts, responses) -> "Scorer":
        """values / raw: the scoring run's stored values and raw values per signal (by position)."""
        from ..config import ScoreConfig
        from ..signals import dataset, of_kind

        config = ScoreConfig.from_dict(score_run.config)
        config = dataclasses.replace(config, k_samples=0)
        row_signals = of_kind("row", config.signals)
        fitted = dataset.fit(of_kind("dataset", config.signals),
                             dataset.Rows(np.asarray(prompt_emb, np.float32), np.asarray(response_emb, np.float32),
                                          list(prompts), list(responses),
                                          {s: raw[s] for s in row_signals if s in raw}))
        weights = {k: float(v) for k, v in (score_run.weights or config.weights).items()}
        # Every signal with a weight, 0 included: a detector with weight 0 still caps confidence (combine.veto).
        used = [s for s in (*row_signals, *fitted.fits) if s in weights and s in values]
        return cls(config, weights, fitted, {s: np.asarray(values[s], dtype=float) for s in used})

    def original(self, positions: Sequence[int]) -> np.ndarray:
        """The stored rows' confidence over the scorer's signals."""
        from ..signals.combine import confidence

        pos = np.asarray(positions, dtype=np.int64)
        if not self.stored:
            return np.full(len(pos), np.nan)
        return confidence({s: v[pos] for s, v in self.stored.items()}, self.weights, self.config.mean,
                          self.config.veto)

    def score(self, backend, prompts: Sequence, responses: Sequence[str], positions: Sequence[int]) -> np.ndarray:
        """Confidence of (prompt, response) pairs in place of the rows at `positions` (NaN where scoring failed)."""
        from .. import scoring
        from ..signals import dataset
        from ..signals.combine import confidence

        if not len(responses) or not self.stored:
            return np.full(len(responses), np.nan)
        # Negative ids: these pairs are never dataset rows.
        res = scoring.score_batch(backend, [(-i - 1, p, r) for i, (p, r) in enumerate(zip(prompts, responses))],
                                  self.config)
        values = dict(res.values)
        ok = ~np.isnan(res.prompt_emb).any(axis=1) if res.prompt_emb is not None and len(res.prompt_emb) else None
        if ok is not None and ok.all():
            values.update(dataset.score_queries(self.fitted, dataset.Rows(res.prompt_emb, res.response_emb,
                                                                          list(prompts), list(responses), res.raw),
                                                positions))
        used = {s: np.asarray(values[s], dtype=float) for s in self.stored if s in values}
        if not used:
            return np.full(len(responses), np.nan)
        out = confidence(used, self.weights, self.config.mean, self.config.veto)
        failed = np.array([-i - 1 in res.errors for i in range(len(responses))], dtype=bool)
        return np.where(failed, np.nan, out)

    def judge(self, backend, prompts, originals, candidates, positions, original_conf=None) -> np.ndarray:
        """judge_scorer: c_candidate / (c_candidate + c_original); NaN (no opinion) where either is missing.

        original_conf: the originals' confidence when they are not the stored rows (synthetic rows: scored here)."""
        if not len(candidates):
            return np.zeros(0)
        cand = self.score(backend, prompts, candidates, positions)
        orig = self.original(positions) if original_conf is None else np.asarray(original_conf, dtype=float)
        return dataset_judge(cand, orig)
