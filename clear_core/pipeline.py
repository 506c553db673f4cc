"""The stages of a scoring run; the run itself (status, batches, cancel, progress, resume) is `clear_core.runs`.

A scoring run has up to three stages. `rows`: the pending rows go through `scoring.score_batch` in batches, and
each batch's values, raw values, embeddings and per-row errors are committed with `ws.commit_batch` in ONE
transaction, so `row_status` always says exactly which rows are done. `context` (only when the config has a
context signal, likelihood_ctx or likelihood_ctx_min): every row again, after its nearest rows as worked examples
(`scoring.score_context`), batch by batch in the same way. `dataset`: once every row is done, the dataset-level
signals (`neighbors`, `form`, `likelihood_rel`: `signals.dataset`), the label-free calibration of the weights and
`confidence` (in [0, 1], higher = more trustworthy) are computed over all rows and committed in one transaction.
A run killed at any moment (even SIGKILL) starts again from `row_status`: no row is computed twice, none is lost.

Stopping: `cancel` (a threading.Event, the app's stop button) is checked between batches of every stage, between
the dataset signals, and between calibration's batches of synthetic rows; Ctrl-C interrupts the batch in flight.
Either way the run is marked `stopped`, committed batches stay, and `resume` goes on: the dataset stage commits
nothing before its end, so it is done again whole (calibration's synthetic rows scored again).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from . import runs
from .config import ScoreConfig
from .errors import ClearError
from .runs import Meter, Progress, ProgressFn, check_cancel, run_batches  # noqa: F401 - Progress: the callbacks' type

ROWS, CONTEXT, DATASET = "rows", "context", "dataset"
CALIBRATION = "calibration"  # a progress stage inside `dataset`: the synthetic rows scored for the weights


def run_scoring(ws, dataset, config: ScoreConfig, backend=None, progress: ProgressFn | None = None,
                cancel=None, workers=None) -> int:
    """Create a scoring run of `dataset` (name or id) with `config` and run it to the end; returns its run id.

    The backend is loaded from `config.model` when not given. Raises `Cancelled` when stopped by `cancel`.
    """
    if config.limit is not None and int(config.limit) < 1:
        raise ClearError(f"limit must be a positive number of rows, got {config.limit}")
    info = ws.get_dataset(dataset)
    n_total = info.n_rows if config.limit is None else min(info.n_rows, int(config.limit))
    run_id = ws.create_run(info.id, "score", config.to_json(), n_total)
    return resume(ws, run_id, backend=backend, progress=progress, cancel=cancel, workers=workers)


def resume(ws, run_id: int, backend=None, progress: ProgressFn | None = None, cancel=None, workers=None) -> int:
    """Go on with a scoring run from where it stopped (or was killed); returns its run id.

    workers: a `distributed.Workers` to score the rows stage on Ray actors (the other stages stay here)."""
    def stages(run) -> None:
        config = ScoreConfig.from_dict(run.config)
        model = backend
        if model is None:
            from .backends import load_backend
            model = load_backend(config.model)
        (_rows_stage if workers is None else workers.rows_stage)(ws, run, config, model, progress, cancel)
        _context_stage(ws, run, config, model, progress, cancel)
        _dataset_stage(ws, run, config, model, progress, cancel)

    return runs.execute(ws, run_id, "score", stages)


def _rows_stage(ws, run, config: ScoreConfig, backend, progress, cancel) -> None:
    from . import scoring

    def compute(batch: np.ndarray) -> dict:
        rows = _as_tuples(_load_rows(ws, run.dataset_id, batch))
        try:
            result = scoring.score_batch(backend, rows, config)
        except Exception:  # the whole batch failed (a bad row, OOM on the batch): one row at a time
            return _score_one_by_one(scoring, backend, rows, batch, config)
        return _commit_kwargs(batch, result)

    run_batches(ws, run.id, ROWS, run.n_total, compute, config.batch_size, progress, cancel,
                label="scoring the rows")


def _context_stage(ws, run, config: ScoreConfig, backend, progress, cancel) -> None:
    """The context signals of config.signals (likelihood_ctx, likelihood_ctx_min): each row again, after its
    nearest rows as worked examples; batches committed like the rows stage. A row that failed the rows stage has
    no embedding and fails here too."""
    from . import scoring
    from .signals import context, of_kind

    wanted = of_kind("context", config.signals)
    if not wanted or len(ws.pending_rows(run.id, CONTEXT)) == 0:
        return
    index = context.ContextIndex.build(*ws.load_embeddings(run.id, "prompt"))
    embedded = set(index.row_idx.tolist())

    def lookup(row_ids) -> dict:
        return {r["row_idx"]: (r["prompt"], r["response"]) for r in _load_rows(ws, run.dataset_id, row_ids)}

    def compute(batch: np.ndarray) -> dict:
        have = np.array([r for r in batch if int(r) in embedded], dtype=np.int64)
        missing = {int(r): "no embedding (the row failed the rows stage)" for r in batch if int(r) not in embedded}
        if not len(have):
            return dict(scores=None, embeddings=None, errors=missing)
        result = scoring.score_context(backend, _as_tuples(_load_rows(ws, run.dataset_id, have)), have, index,
                                       lookup, config)
        result = dataclasses.replace(result, values={k: result.values[k] for k in wanted},
                                     raw={k: result.raw[k] for k in wanted})
        kwargs = _commit_kwargs(have, result)
        kwargs["errors"].update(missing)
        return kwargs

    run_batches(ws, run.id, CONTEXT, run.n_total, compute, config.batch_size, progress, cancel,
                label="in context: each row again after its nearest rows as worked examples")


def _score_one_by_one(scoring, backend, rows, batch, config) -> dict:
    parts, errors = [], {}
    for i, row_idx in enumerate(batch):
        try:
            parts.append(_commit_kwargs(batch[i:i + 1], scoring.score_batch(backend, rows[i:i + 1], config)))
        except Exception as exc:
            errors[int(row_idx)] = f"{type(exc).__name__}: {exc}"
    frames = [p["scores"] for p in parts if p["scores"] is not None]
    embs = [p["embeddings"] for p in parts if p["embeddings"] is not None]
    for p in parts:
        errors.update(p["errors"])
    return dict(scores=pd.concat(frames, ignore_index=True) if frames else None,
                embeddings=pd.concat(embs, ignore_index=True) if embs else None, errors=errors)


def _commit_kwargs(batch: np.ndarray, result) -> dict:
    """BatchResult -> commit_batch keywords: long-format scores, embeddings, {row_idx: error}."""
    errors = {int(k): str(v) for k, v in (result.errors or {}).items() if v}
    ok = np.array([int(r) not in errors for r in batch], dtype=bool)
    frames = []
    for signal, values in result.values.items():
        raw = result.raw.get(signal, values) if result.raw else values
        frames.append(pd.DataFrame({"row_idx": batch[ok], "signal": signal,
                                    "value": np.asarray(values, dtype=float)[ok],
                                    "raw": np.asarray(raw, dtype=float)[ok]}))
    scores = pd.concat(frames, ignore_index=True) if frames else None
    embeddings = None
    if result.prompt_emb is not None and ok.any():
        pe, re_ = np.asarray(result.prompt_emb, dtype=np.float32), np.asarray(result.response_emb, dtype=np.float32)
        embeddings = pd.DataFrame({
            "row_idx": np.concatenate([batch[ok], batch[ok]]),
            "kind": ["prompt"] * int(ok.sum()) + ["response"] * int(ok.sum()),
            "vec": [v for v in pe[ok]] + [v for v in re_[ok]]})
    return dict(scores=scores, embeddings=embeddings, errors=errors)


def _as_tuples(rows: list[dict]) -> list[tuple]:
    """(row_idx, prompt, response) tuples, as scoring.score_batch takes rows."""
    return [(r["row_idx"], r["prompt"], r["response"]) for r in rows]


def _load_rows(ws, dataset_id: int, row_idx) -> list[dict]:
    """Rows as dicts with row_idx, prompt (messages) and response, in the order of `row_idx` (the shape
    calibrate's synthetic rows share), from the store's decoded rows."""
    return ws.scoring_rows(dataset_id, row_idx)


def _dataset_stage(ws, run, config: ScoreConfig, backend, progress, cancel=None) -> None:
    """The dataset signals + calibrated weights + confidence over all rows, committed in one transaction.

    Its progress counts steps: one per dataset signal fitted, one for the calibration (which reports its synthetic
    rows as a stage of its own) and one for the confidence and the commit."""
    if len(ws.pending_rows(run.id, DATASET)) == 0:
        return
    from .signals import context, of_kind

    wanted = of_kind("dataset", config.signals)
    meter = Meter(progress, run.id, DATASET, len(wanted) + 2, label="dataset: reading the row signals",
                  unit="steps")
    wide = ws.scores_wide(run.id)
    rows = wide["row_idx"].to_numpy(dtype=np.int64)  # the rows scored ok (failed rows have no scores)
    all_rows = np.arange(run.n_total, dtype=np.int64)
    failed = {int(r): "no row signals (the row failed)" for r in np.setdiff1d(all_rows, rows)}
    if len(rows) == 0:  # nothing to combine: close the stage so that the run ends, with every row reported
        ws.commit_batch(run.id, DATASET, all_rows, scores=None, embeddings=None, proposals=None, errors=failed)
        return
    values = {s: wide[s].to_numpy(dtype=float) for s in wide.columns if s not in ("row_idx", "confidence")}
    records = _load_rows(ws, run.dataset_id, rows)

    def step(label: str, n: int = 1) -> None:
        """Between two pieces of the stage: stop here when asked, else say what comes next."""
        check_cancel(cancel, run.id, "in its dataset stage (redone whole on resume; every row signal is kept)")
        meter.label = f"dataset: {label}"
        meter.add(n)

    # Loaded once, for the dataset signals and for the worked examples of calibration's synthetic rows.
    needs_emb = bool(of_kind("dataset", config.signals) + of_kind("context", config.signals))
    prompt_emb, response_emb = _embeddings(ws, run.id, rows) if needs_emb else (None, None)
    frames, fitted = _dataset_signals(ws, run, config, rows, records, values, prompt_emb, response_emb, step)
    weights = {k: float(v) for k, v in config.weights.items() if k in values}
    step(f"the weights ({len(wanted)} of {len(wanted)} signals fitted)", int(bool(wanted)))
    if config.calibrate == "synthetic" and len(rows) >= 8:
        ctx = None
        if any(weights.get(s, 0) > 0 for s in of_kind("context")):  # synthetic rows: their source row's examples
            ctx = context.ContextIndex.build(np.arange(len(rows)), prompt_emb)
        weights = _calibrated_weights(records, values, weights, config, backend, fitted, ctx,
                                      lambda total, label: Meter(progress, run.id, CALIBRATION, total, label=label,
                                                                 unit="synthetic rows"),
                                      lambda done, total: check_cancel(
                                          cancel, run.id, f"in calibration, at {done} of {total} synthetic rows "
                                          "(scored again on resume; every row signal is kept)"))
    step("combining the signals into confidence")
    conf = _combine(values, weights, config.mean, config.veto)
    frames.append(pd.DataFrame({"row_idx": rows, "signal": "confidence", "value": conf, "raw": conf}))
    # The weights go in first: if the process dies before the commit below, the dataset stage is simply redone.
    ws.update_run(run.id, weights=weights)
    # Every row of the run is marked for this stage (failed rows too, with their row error), so it is pending
    # until this one commit and done after it.
    ws.commit_batch(run.id, DATASET, all_rows, scores=pd.concat(frames, ignore_index=True), embeddings=None,
                    proposals=None, errors=failed)
    meter.label = "dataset: done"
    meter.add(meter.total - meter.done)


def _dataset_signals(ws, run, config: ScoreConfig, rows, records, values: dict, prompt_emb,
                     response_emb, step=None) -> tuple[list, object]:
    """Fit the dataset signals of config.signals over the scored rows (embeddings aligned with `rows`); adds their
    values to `values`. step(label, n) comes before each signal's fit (the stop is checked there) and counts the
    one before it as done.

    Returns (score frames to commit, the `signals.dataset.DatasetFit` that scores calibration's synthetic rows)."""
    from .signals import dataset, of_kind

    wanted = of_kind("dataset", config.signals)
    if not wanted or len(rows) < 2:
        return [], dataset.DatasetFit()
    # The row signals' raw values, which some dataset signals rank (likelihood_rel: the likelihood's).
    scored = [s for s in of_kind("row") + of_kind("sampled") if s in values]
    raw = ws.scores_wide(run.id, scored, raw=True) if scored else {}
    # The embeddings were read for this stage alone (calibration embeds its own synthetic rows; its worked
    # examples, when weighted, search the prompts' unit vectors, which knn.centred_unit shares).
    inputs = dataset.Rows(prompt_emb, response_emb, [r["prompt"] for r in records], [r["response"] for r in records],
                          {s: raw[s].to_numpy(dtype=float) for s in scored}, scratch_embeddings=True)
    fitted = dataset.DatasetFit()
    for i, name in enumerate(wanted):  # one at a time, so that a stop comes between two of them
        if step is not None:
            step(f"fitting {name} over {len(rows):,} rows ({i} of {len(wanted)} signals fitted)", int(i > 0))
        fitted.fits.update(dataset.fit([name], inputs).fits)
    values.update(fitted.values)
    frames = [pd.DataFrame({"row_idx": rows, "signal": name, "value": vals, "raw": fitted.raw[name]})
              for name, vals in fitted.values.items()]
    return frames, fitted


def _combine(values, weights, mean, veto):
    from .signals import combine
    return combine.confidence(values, weights, mean, veto)


def _calibrated_weights(records, values, weights, config, backend, fitted, ctx=None, meter=None,
                        before_batch=None) -> dict:
    """Label-free weights from synthetic corruptions; the fixed weights when they cannot be fitted.

    fitted: the dataset signals' `DatasetFit`, which scores the synthetic rows out-of-fold against the rows they
    were made from. ctx: a `signals.context.ContextIndex` over the positions of `records`, when likelihood_ctx is
    weighted: each synthetic row is scored after the worked examples of the row it was made from (never that row
    itself). meter(total, label) -> a `runs.Meter` that follows the synthetic rows as they are scored;
    before_batch(done, total) comes before each batch of them (it raises to stop)."""
    from . import calibrate, scoring
    from .signals import dataset

    sampled = calibrate.SYNTHETIC_SIZE.sampled(len(records))

    def score_rows(bad_rows: list[dict]) -> dict:
        out: dict[str, list] = {}
        label = (f"calibration: {len(bad_rows):,} synthetic rows (made from {sampled:,} of the {len(records):,} "
                 "rows; each scored like a dataset row)")
        follow = meter(len(bad_rows), label) if meter is not None else None
        for start in range(0, len(bad_rows), config.batch_size):
            if before_batch is not None:
                before_batch(start, len(bad_rows))
            part = bad_rows[start:start + config.batch_size]
            # Synthetic rows get negative ids so that they can never be mistaken for dataset rows.
            tuples = [(-(start + i) - 1, r["prompt"], r["response"]) for i, r in enumerate(part)]
            result = scoring.score_batch(backend, tuples, config)
            queried = dataset.score_queries(fitted, dataset.Rows(result.prompt_emb, result.response_emb,
                                                                 [r["prompt"] for r in part],
                                                                 [r["response"] for r in part], result.raw),
                                            [r["source_row"] for r in part])
            if ctx is not None:
                in_ctx = scoring.score_context(
                    backend, tuples, [r["source_row"] for r in part], ctx,
                    lambda ids: {i: (records[i]["prompt"], records[i]["response"]) for i in ids}, config)
                queried.update(in_ctx.values)
            for name, v in {**result.values, **queried}.items():
                out.setdefault(name, []).append(np.asarray(v, dtype=float))
            if follow is not None:
                follow.add(len(part))
        return {k: np.concatenate(v) for k, v in out.items()}

    used = {k: v for k, v in values.items() if weights.get(k, 0) > 0}
    try:
        cal = calibrate.label_free(records, used, score_rows, n=sampled, seed=config.seed,
                                   labels_only=fitted.labels_only, mean=config.mean, veto=config.veto)
    except calibrate.CalibrationError:
        return weights
    return {k: float(v) for k, v in cal.weights.items()}


def _embeddings(ws, run_id: int, rows: np.ndarray):
    """Prompt and response embeddings of `rows` (in that order)."""
    return ws.embeddings(run_id, "prompt", rows), ws.embeddings(run_id, "response", rows)  # float32, no copies
