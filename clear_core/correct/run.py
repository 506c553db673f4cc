"""The correction run: Auto-Correct over the rows of a finished scoring run below t_keep, resumable like a scoring
run (its lifecycle is `clear_core.runs`). Its one stage, `propose`, generates a batch's candidates, judges them and
commits the best-judged candidate per row (the store holds one proposal per row) in one transaction. Proposals are
stored next to the original, never over it; the judge components are stored as scores of the correction run.
Before the first batch the acceptance rule is fitted on synthetic rows (`acceptance.py`: corruptions of the rows
the filter keeps with most confidence, and controls, proposed for like real rows) and stored in the run's config
(`acceptance`), so a resumed run judges with the same rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import runs
from ..config import CorrectConfig, Thresholds
from ..errors import ClearError
from . import acceptance, judging, relabel
from .candidates import nearest_examples, propose_batch, same_answer

PROPOSE = "propose"
CALIBRATE = "calibrate"  # a progress stage before `propose`: the synthetic rows the acceptance rule is fitted on
JUDGE_METHOD = "pooled-llm-dataset-scorer+relabel"  # recorded in a correction run's settings


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
        if "acceptance" not in settings:
            meter = []

            def before_batch(done: int, total: int) -> None:
                if not meter:
                    meter.append(runs.Meter(progress, run.id, CALIBRATE, total, label="calibrating the judge"))
                else:
                    meter[0].add(done - meter[0].done)
                # Stop works here too: the calibration commits nothing before its end and is redone
                runs.check_cancel(cancel, run.id, f"in its acceptance calibration, at {done} of {total} synthetic rows")

            rule = context.calibrate(before_batch)
            ws.update_run(run.id, config={**settings, "acceptance": rule.to_dict()})
            context.rule = rule
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
    neighbors_model: object = None  # the fitted `signals.neighbors` model (its out-of-fold classifiers)
    relabels: object = None  # relabel.RelabelTable over the scored rows' positions
    scorer: object = None  # scorer.Scorer (None when config.scorer is off)
    confidence: np.ndarray | None = None  # the scored rows' confidence
    rule: acceptance.AcceptanceRule | None = None

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
        wide = ws.scores_wide(score_run.id)
        rows_all = wide["row_idx"].to_numpy().astype(np.int64)
        conf = wide["confidence"].to_numpy(dtype=float)
        # float64 once: the neighbour search and the dataset judge both compute in it
        prompt_emb = np.asarray(ws.embeddings(score_run.id, "prompt", row_idx=rows_all), dtype=np.float32
                                ).astype(np.float64)
        response_emb = np.asarray(ws.embeddings(score_run.id, "response", row_idx=rows_all), dtype=np.float32)
        examples = ws.rows(run.dataset_id, rows_all)
        prompts = [r.prompt for r in examples]
        responses = [r.response for r in examples]
        model, result = neighbors.fit(prompt_emb, response_emb, responses)
        relabels = relabel.table(relabel.oof_proba(model, prompt_emb), model.labels, model.classes, model.class_text,
                                 config.relabel_class_quantile)
        scorer = None
        if config.scorer:
            from .scorer import Scorer

            values = {c: wide[c].to_numpy(dtype=float) for c in wide.columns if c not in ("row_idx", "confidence")}
            raw = ws.scores_wide(score_run.id, list(values), raw=True)
            scorer = Scorer.build(score_run, values, {c: raw[c].to_numpy(dtype=float) for c in values},
                                  prompt_emb, response_emb, prompts, responses)
        rule = acceptance.AcceptanceRule.from_dict(settings.get("acceptance"), config.eta)
        return cls(run=run, config=config, backend=backend, generator=generator, targets=targets, prompts=prompts,
                   responses=responses, prompt_emb=prompt_emb, pos_of={int(r): i for i, r in enumerate(rows_all)},
                   pool=np.flatnonzero(conf >= float(settings["t_keep"])), categories=tuple(model.class_text),
                   categorical={int(r) for i, r in enumerate(rows_all) if result.categorical[i]},
                   neighbors_model=model, relabels=relabels, scorer=scorer,
                   confidence=conf, rule=rule)

    def data_judge(self, row_idx: Sequence[int], originals: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """Dataset judge per (row, original, candidate): the out-of-fold class probabilities of the row's prompt."""
        return judging.categorical_data_judge(self.neighbors_model, self.prompt_emb,
                                              [self.pos_of[int(r)] for r in row_idx], originals, candidates)

    def scorer_judge(self, row_idx, prompts, originals, candidates) -> np.ndarray:
        return self.scorer.judge(self.backend, prompts, originals, candidates, [self.pos_of[int(r)] for r in row_idx])

    def propose(self, rows: list[dict], positions: Sequence[int], threshold: float, data_judge=None,
                scorer_judge=None):
        """propose_batch for rows at these positions (real rows, or synthetic rows made from them)."""
        near = nearest_examples(self.prompt_emb, np.array(positions), self.pool, self.config.k_examples)
        shots = [[(self.prompts[j], self.responses[j]) for j in nn] for nn in near]
        categorical = {r["row_idx"] for r, p in zip(rows, positions) if self.neighbors_model.labels[p] >= 0}
        classifier, sure = {}, {}
        for r, p in zip(rows, positions):
            if r["row_idx"] not in categorical:
                continue
            cand, p_best, ratio = self.relabels.pick(p, r["response"])
            if cand is not None and ratio > 0.5:  # the classifier prefers it to the given answer
                classifier[r["row_idx"]] = cand
                sure[r["row_idx"]] = self.relabels.sure(cand, p_best, ratio, self.config.relabel_threshold)
        return propose_batch(self.backend, rows, shots, self.config, self.categories, classifier, self.generator,
                             categorical=categorical, data_judge=data_judge or self.data_judge,
                             scorer_judge=scorer_judge or (self.scorer_judge if self.scorer is not None else None),
                             relabel=sure, threshold=threshold)

    def calibrate(self, before_batch=None) -> acceptance.AcceptanceRule:
        """The acceptance rule, fitted on synthetic rows made from the kept rows (see `acceptance`).
        before_batch(done, total) comes before each batch of them (it raises Cancelled to stop)."""
        n = int(self.config.calibration_rows)
        pool = self.pool
        rows = [{"prompt": self.prompts[p], "response": self.responses[p]} for p in pool]
        labels_only = self.neighbors_model.labels[pool] >= 0
        made = acceptance.synthetic_rows(rows, self.confidence[pool], n, self.config.seed, labels_only)
        if not made:
            return acceptance.AcceptanceRule(threshold=self.config.eta, eta=self.config.eta)
        conf, right, kinds = [], [], {}
        for start in range(0, len(made), self.config.batch_size):
            if before_batch is not None:
                before_batch(start, len(made))
            part = made[start:start + self.config.batch_size]
            positions = [int(pool[m["source_row"]]) for m in part]
            # Synthetic rows get negative ids; the judges read them through their source row's position.
            ids = [-(start + i) - 1 for i in range(len(part))]
            pos_of = dict(zip(ids, positions))
            rows_ = [{"row_idx": i, "prompt": m["prompt"], "response": m["response"]} for i, m in zip(ids, part)]

            def data_judge(row_idx, originals, candidates):
                return judging.categorical_data_judge(self.neighbors_model, self.prompt_emb,
                                                      [pos_of[int(r)] for r in row_idx], originals, candidates)

            def scorer_judge(row_idx, prompts, originals, candidates):
                pos = [pos_of[int(r)] for r in row_idx]
                orig = self.scorer.score(self.backend, prompts, originals, pos)
                return self.scorer.judge(self.backend, prompts, originals, candidates, pos, original_conf=orig)

            props = self.propose(rows_, positions, threshold=self.config.eta, data_judge=data_judge,
                                 scorer_judge=scorer_judge if self.scorer is not None else None)
            target = {i: m["target"] for i, m in zip(ids, part)}
            for r, cand, pooled in zip(props["row_idx"], props["candidate"], _pooled(props)):
                conf.append(pooled)
                right.append(target[int(r)] is not None and same_answer(cand, target[int(r)]))
            for m in part:
                kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
        return acceptance.fit_rule(np.array(conf), np.array(right), self.config.eta, len(made), kinds)

    def compute(self, row_idx: np.ndarray) -> dict:
        positions = [self.pos_of[int(r)] for r in row_idx]
        rows = [{"row_idx": int(r), "prompt": self.prompts[p], "response": self.responses[p]}
                for r, p in zip(row_idx, positions)]
        try:
            props = self.propose(rows, positions, self.rule.threshold)
        except Exception as exc:  # record the batch's rows as failed, keep going
            return dict(scores=None, embeddings=None, proposals=None,
                        errors={int(r): f"{type(exc).__name__}: {exc}" for r in row_idx})
        props = props.assign(row_idx=props["row_idx"].astype(np.int64))
        return dict(scores=judging.judge_scores(props), embeddings=None, proposals=props, errors={})


def _pooled(props) -> np.ndarray:
    """The pooled judge of proposals made with the threshold at eta (judge_conf is then the pooled value itself),
    relabels excluded from the fit: they are accepted by their own rule."""
    return np.where(props["source"] == "relabel", np.nan, props["judge_conf"].to_numpy(dtype=float))
