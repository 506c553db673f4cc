"""The correction run: Auto-Correct over the rows of a finished scoring run below t_keep, resumable like a scoring
run (its lifecycle is `clear_core.runs`). Its one stage, `propose`, generates a batch's candidates, judges them and
commits the best-judged candidate per row (the store holds one proposal per row) in one transaction. Proposals are
stored next to the original, never over it; the judge components are stored as scores of the correction run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import runs
from ..config import CorrectConfig, Thresholds
from ..errors import ClearError
from . import judging
from .candidates import nearest_examples, propose_batch, same_answer

PROPOSE = "propose"
JUDGE_METHOD = "pooled-llm-dataset"  # recorded in a correction run's settings


def run_correction(ws, dataset, config: CorrectConfig = CorrectConfig(), score_run: int | None = None,
                   thresholds: Thresholds | None = None, backend=None, generator=None, progress=None,
                   cancel=None) -> int:
    """Create a correction run over the rows of `score_run` below t_keep and run it; returns its run id.

    score_run: a finished scoring run of the dataset (default: the latest); thresholds: default the median
    (`filtering.run_thresholds`). backend: the judge and in-context generator (default: the scoring run's
    model); generator: a fine-tuned backend, else loaded from `config.generator` when that is a model dir.
    """
    from .. import filtering

    info = ws.get_dataset(dataset)
    run = ws.score_run(info, score_run)
    if thresholds is None:
        thresholds = filtering.run_thresholds(ws, run.id, eta=config.eta)
    targets = target_rows(ws, run.id, thresholds.t_keep)
    settings = {**json.loads(config.to_json()), "score_run": run.id, "t_keep": thresholds.t_keep,
                "t_drop": thresholds.t_drop, "judge": JUDGE_METHOD}
    run_id = ws.create_run(info.id, "correct", json.dumps(settings, sort_keys=True), len(targets))
    return resume(ws, run_id, backend=backend, generator=generator, progress=progress, cancel=cancel)


def resume(ws, run_id: int, backend=None, generator=None, progress=None, cancel=None) -> int:
    """Go on with a correction run from where it stopped (or was killed); returns its run id."""
    def stage(run) -> None:
        settings = run.config
        config = CorrectConfig(**{k: settings[k] for k in json.loads(CorrectConfig().to_json()) if k in settings})
        context = _Context.build(ws, run, settings, config, backend, generator)
        runs.run_batches(ws, run.id, PROPOSE, run.n_total, context.compute, config.batch_size, progress, cancel,
                         rows=context.targets, label="proposing fixes")

    return runs.execute(ws, run_id, "correct", stage)


def target_rows(ws, score_run: int, t_keep: float) -> np.ndarray:
    """Row indices below t_keep, in row order (recomputed identically on resume from the stored scores)."""
    from ..filtering import KEEP, band_codes, run_confidence

    rows, conf = run_confidence(ws, score_run)
    order = np.argsort(rows, kind="stable")
    rows, conf = rows[order], conf[order]
    return rows[band_codes(conf, t_keep, t_keep) != KEEP].astype(np.int64)  # a NaN confidence (review) is a target


@dataclass
class _Context:
    """Everything a correction batch needs, loaded once per session of the run."""

    run: object
    config: CorrectConfig
    backend: object
    generator: object
    targets: np.ndarray  # the run's rows (below t_keep), in row order
    prompts: list  # the scored rows' prompts (message tuples), aligned with prompt_emb
    responses: list  # and their responses
    prompt_emb: np.ndarray  # the scoring run's prompt embeddings of the scored rows (float64)
    pos_of: dict  # row_idx -> position among the scored rows
    pool: np.ndarray  # positions of the high-confidence rows the in-context examples come from
    categories: tuple
    categorical: set
    classifier: dict  # row_idx -> the classifier's answer, where it differs from the given one
    neighbors_model: object = None  # the fitted `signals.neighbors` model (its out-of-fold classifiers)

    @classmethod
    def build(cls, ws, run, settings, config, backend, generator):
        from ..signals import neighbors

        score_run = ws.get_run(int(settings["score_run"]))
        targets = target_rows(ws, score_run.id, float(settings["t_keep"]))
        if len(targets) != run.n_total:
            raise ClearError(f"correction run {run.id}: its scoring run {score_run.id} changed since it started")
        if backend is None:
            from ..backends import load_backend
            backend = load_backend(runs.model_spec(ws, run))
        if generator is None and config.generator not in ("default", "", None):
            from ..backends import load_backend
            generator = load_backend(config.generator)
        rows_all, conf = ws.scores_wide(score_run.id, ["confidence"])[["row_idx", "confidence"]].to_numpy().T
        rows_all = rows_all.astype(np.int64)
        # float64 once: the neighbour search and the dataset judge both compute in it
        prompt_emb = np.asarray(ws.embeddings(score_run.id, "prompt", row_idx=rows_all), dtype=np.float32
                                ).astype(np.float64)
        response_emb = np.asarray(ws.embeddings(score_run.id, "response", row_idx=rows_all), dtype=np.float32)
        examples = ws.rows(run.dataset_id, rows_all)
        prompts = [r.prompt for r in examples]
        responses = [r.response for r in examples]
        model, result = neighbors.fit(prompt_emb, response_emb, responses)
        classifier = {int(r): str(result.predicted[i]) for i, r in enumerate(rows_all)
                      if result.categorical[i] and result.predicted[i] is not None
                      and not same_answer(str(result.predicted[i]), responses[i])}
        return cls(run=run, config=config, backend=backend, generator=generator, targets=targets, prompts=prompts,
                   responses=responses, prompt_emb=prompt_emb, pos_of={int(r): i for i, r in enumerate(rows_all)},
                   pool=np.flatnonzero(conf >= float(settings["t_keep"])), categories=tuple(model.class_text),
                   categorical={int(r) for i, r in enumerate(rows_all) if result.categorical[i]},
                   classifier=classifier, neighbors_model=model)

    def data_judge(self, row_idx: Sequence[int], originals: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """Dataset judge per (row, original, candidate): the out-of-fold class probabilities of the row's prompt."""
        return judging.categorical_data_judge(self.neighbors_model, self.prompt_emb,
                                              [self.pos_of[int(r)] for r in row_idx], originals, candidates)

    def compute(self, row_idx: np.ndarray) -> dict:
        positions = [self.pos_of[int(r)] for r in row_idx]
        rows = [{"row_idx": int(r), "prompt": self.prompts[p], "response": self.responses[p]}
                for r, p in zip(row_idx, positions)]
        near = nearest_examples(self.prompt_emb, np.array(positions), self.pool, self.config.k_examples)
        shots = [[(self.prompts[j], self.responses[j]) for j in nn] for nn in near]
        classifier = {int(r): self.classifier[int(r)] for r in row_idx if int(r) in self.classifier}
        try:
            props = propose_batch(self.backend, rows, shots, self.config, self.categories, classifier, self.generator,
                                  categorical=self.categorical, data_judge=self.data_judge)
        except Exception as exc:  # record the batch's rows as failed, keep going
            return dict(scores=None, embeddings=None, proposals=None,
                        errors={int(r): f"{type(exc).__name__}: {exc}" for r in row_idx})
        props = props.assign(row_idx=props["row_idx"].astype(np.int64))
        return dict(scores=judging.judge_scores(props), embeddings=None, proposals=props, errors={})

