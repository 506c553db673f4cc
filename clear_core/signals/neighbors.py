"""The `neighbors` signal: does a row's response agree with what the rest of the dataset says for similar prompts?

Values are in [0, 1], higher = more trustworthy. Two cases, decided per row:

* categorical rows (the response is one of a few distinct answers, each with enough support: labels, option
  letters, short categories): an out-of-fold classifier on the standardised prompt embeddings (k folds, logistic
  regression) gives the probability of the given answer, confident learning's self-confidence. Optionally a second
  round refits each fold without the rows the first round found most suspicious (confident learning's pruning),
  and the classifier's probability is averaged with the answers of the nearest prompts (kNN label agreement).
* free-text rows: the prompt's nearest neighbours (cosine over centred prompt embeddings) vote with their responses;
  the value is the share of reference responses that sit further from the neighbours' response centroid than the
  row's own response does (a retrieval rank), so a response swapped in from an unrelated row scores low.

`compute` fits and scores the dataset; `fit` + `score_queries` also score extra (prompt, response) pairs made from
existing rows (calibration's synthetic corruptions) without letting the source row see itself.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import knn


@dataclass(frozen=True)
class NeighborsConfig:
    """Settings of the `neighbors` signal."""

    folds: int = 5  # out-of-fold classifier folds
    C: float = 0.001  # inverse L2 regularisation on standardised embeddings (strong: chosen on fpb)
    max_classes: int = 20  # more distinct frequent answers than this = not categorical
    min_support: int = 8  # an answer needs at least this many rows (and min_support_frac of the rows) to be a class
    min_support_frac: float = 0.005
    # The classes must cover this share of the rows (and at least min_rows, or every row of a smaller dataset).
    # A few labelled rows inside a free-text dataset stay with the free-text scoring, whose values are on the
    # same scale as the rest of the dataset (bench/results/quality.md, History).
    min_coverage: float = 0.2
    min_rows: int = 30
    max_answer_words: int = 12  # longer responses are never class labels
    prune: bool = False  # second round without the rows the first round flags (confident learning)
    knn_weight: float = 0.0  # weight of kNN label agreement averaged into the categorical value
    k: int = 10  # neighbours for free-text agreement and kNN label agreement
    n_reference: int = 1000  # reference responses for the free-text retrieval rank
    # Each fold's classifier trains on at most this many rows (a fixed-seed stratified sample beyond it), so a
    # million-row dataset costs what a small one does; a dataset below it trains on every row.
    max_fit_rows: int = 20_000
    seed: int = 0


@dataclass(frozen=True)
class NeighborsResult:
    """Per-row output. values: [0, 1], higher = more trustworthy; raw: the uncombined component (classifier
    probability of the given answer, or the free-text cosine agreement); categorical: rows scored by the
    classifier; predicted / predicted_prob: the classifier's best answer (a response string) and its probability
    for categorical rows (None / NaN elsewhere)."""

    values: np.ndarray
    raw: np.ndarray
    categorical: np.ndarray
    predicted: np.ndarray
    predicted_prob: np.ndarray


@dataclass(frozen=True)
class NeighborsModel:
    """The fitted dataset: what `score_queries` needs to score new pairs against it."""

    config: NeighborsConfig
    prompt_unit: np.ndarray  # centred, L2-normalised prompt embeddings (n, d)
    response_unit: np.ndarray  # centred, L2-normalised response embeddings (n, d)
    prompt_mean: np.ndarray
    response_mean: np.ndarray
    labels: np.ndarray  # class index per row, -1 for free-text rows
    classes: tuple[str, ...]  # normalised answers
    class_text: tuple[str, ...]  # the most common original spelling of each class
    fold_of: np.ndarray  # fold index per row (-1 for free-text rows)
    fold_models: tuple  # one fitted sklearn pipeline per fold
    has_other: bool  # the classifier has an extra last class for the free-text rows of a mixed dataset
    reference: np.ndarray  # row indices whose responses serve as the free-text reference set


def normalize_answer(text: str) -> str:
    """Lower-case, collapse whitespace, strip surrounding punctuation and quotes."""
    t = re.sub(r"\s+", " ", str(text)).strip().lower()
    return t.strip(" .,:;!?\"'`()[]")


def detect_classes(responses, config: NeighborsConfig = NeighborsConfig()) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class index per row (-1 = free text) and the class names; no classes when the data is not categorical."""
    norm = [normalize_answer(r) for r in responses]
    n = len(norm)
    need = max(config.min_support, int(np.ceil(config.min_support_frac * n)), config.folds)
    counts = Counter(v for v in norm if v and len(v.split()) <= config.max_answer_words)
    classes = tuple(sorted(v for v, c in counts.items() if c >= need))
    covered = sum(counts[c] for c in classes)
    if not (2 <= len(classes) <= config.max_classes) or covered < min(config.min_rows, n) \
            or covered < config.min_coverage * n:
        return np.full(n, -1), ()
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(v, -1) for v in norm]), classes


def _classifier(C: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))


def class_proba(model, x: np.ndarray, n_classes: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities over all classes (a fold may lack a class: it gets probability 0), of x[rows] (all of
    x when None), converted to float64 a block at a time."""
    rows = np.arange(len(x)) if rows is None else rows
    p = np.zeros((len(rows), n_classes))
    for s in range(0, len(rows), 65536):
        p[s:s + 65536, model.classes_] = model.predict_proba(np.asarray(x[rows[s:s + 65536]], dtype=np.float64))
    return p


def _fit_folds(x, y, fold_of, cfg, keep, rng: np.random.Generator) -> tuple[tuple, np.ndarray]:
    """One classifier per fold trained on the other folds' kept rows (at most cfg.max_fit_rows of them);
    out-of-fold probabilities for every row. x may be float32: rows are converted as they are used."""
    k = int(y.max()) + 1  # the last class is always present (classes are numbered from the data)
    models, oof = [], np.zeros((len(y), k))
    for f in range(cfg.folds):
        train = _capped(np.flatnonzero((fold_of != f) & keep), y, cfg.max_fit_rows, rng)
        model = _classifier(cfg.C, cfg.seed).fit(np.asarray(x[train], dtype=np.float64), y[train])
        models.append(model)
        held = np.flatnonzero(fold_of == f)
        oof[held] = class_proba(model, x, k, held)
    return tuple(models), oof


def _capped(rows: np.ndarray, y: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """rows itself when there are at most `cap`; else a sample of `cap` of them, each class keeping its share (at
    least one row), in row order."""
    if len(rows) <= cap:
        return rows
    picked = []
    for c in np.unique(y[rows]):
        members = rows[y[rows] == c]
        picked.append(rng.choice(members, max(1, round(cap * len(members) / len(rows))), replace=False))
    return np.sort(np.concatenate(picked))


def _suspicious(oof: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Confident learning's off-diagonal rows: another class reaches its per-class threshold and beats the label."""
    k = oof.shape[1]
    thresholds = np.array([oof[y == j, j].mean() if (y == j).any() else 1.0 for j in range(k)])
    above = np.where(oof >= thresholds, oof, -1.0)
    best = above.argmax(axis=1)
    return (above.max(axis=1) >= 0) & (best != y)


def fit(prompt_emb, response_emb, responses, config: NeighborsConfig = NeighborsConfig(),
        overwrite: bool = False) -> tuple[NeighborsModel, NeighborsResult]:
    """Fit the dataset model and score every row out-of-fold; see the module docstring for the method.
    overwrite: both embedding matrices are the caller's to give up (knn.centred_unit's in_place): on a large
    dataset each becomes its own unit vectors, the prompts' once the classifier has read them as they are."""
    # Kept in their own precision (float32 from the workspace): a float64 copy of a million rows is 4.6 GB each.
    prompt_emb, response_emb = np.asarray(prompt_emb), np.asarray(response_emb)
    n = len(responses)
    if prompt_emb.shape[0] != n or response_emb.shape[0] != n:
        raise ValueError(f"embeddings ({prompt_emb.shape[0]}, {response_emb.shape[0]} rows) and responses ({n}) differ")
    if n < 2:
        raise ValueError("neighbors needs at least 2 rows")
    cfg = config
    rng = np.random.default_rng(cfg.seed)
    ru, r_mean = knn.centred_unit(response_emb, overwrite)
    labels, classes = detect_classes(responses, cfg)
    cat = labels >= 0
    fold_of = np.full(n, -1)
    models: tuple = ()
    values, raw = np.full(n, np.nan), np.full(n, np.nan)
    predicted, predicted_prob = np.full(n, None, dtype=object), np.full(n, np.nan)
    class_text: tuple[str, ...] = ()
    has_other = False
    if cat.any():
        # In a mixed dataset the free-text rows join the classifier as one "other" class, so that a label pasted
        # onto a prompt unlike the labelled ones gets a low probability.
        has_other = int((~cat).sum()) >= cfg.folds
        train = np.flatnonzero(cat | has_other)
        y_train = np.where(cat, labels, len(classes))[train]
        fold_of[train] = _stratified_folds(y_train, cfg.folds, rng)
        x_train = prompt_emb if len(train) == n else prompt_emb[train]
        models, oof_train = _fit_folds(x_train, y_train, fold_of[train], cfg, np.ones(len(train), bool), rng)
        if cfg.prune:
            models, oof_train = _fit_folds(x_train, y_train, fold_of[train], cfg, ~_suspicious(oof_train, y_train),
                                           rng)
        idx = np.flatnonzero(cat)
        y = labels[idx]
        oof = oof_train[np.searchsorted(train, idx)][:, :len(classes)]
        self_conf = oof[np.arange(len(idx)), y]
        raw[idx] = self_conf
        values[idx] = self_conf
        spelled = Counter(zip(labels[idx], (str(responses[i]).strip() for i in idx)))
        class_text = tuple(max(((c, t) for (j, t), c in spelled.items() if j == k), default=(0, classes[k]))[1]
                           for k in range(len(classes)))
        best = oof.argmax(axis=1)
        predicted[idx] = np.array(class_text, dtype=object)[best]
        predicted_prob[idx] = oof.max(axis=1)
    pu, p_mean = knn.centred_unit(prompt_emb, overwrite)  # after the classifier, which reads the embeddings as given
    if cat.any() and cfg.knn_weight > 0:
        values[idx] = (1 - cfg.knn_weight) * self_conf + cfg.knn_weight * _label_agreement(pu[idx], y, cfg.k)
    reference = rng.permutation(n)[:min(cfg.n_reference, n)]
    model = NeighborsModel(cfg, pu, ru, p_mean, r_mean, labels, classes, class_text, fold_of, models, has_other,
                           reference)
    free = np.flatnonzero(~cat)
    if len(free):
        # every row's neighbours at once: the same search as form's and likelihood_rel's, which knn does once
        nn, sim = knn.nearest(pu, pu, cfg.k, exclude=np.arange(n), return_sim=True)
        values[free], raw[free] = _free_text(model, ru[free], nn[free], sim[free], exclude=free)
    return model, NeighborsResult(np.clip(values, 0, 1), raw, cat, predicted, predicted_prob)


def compute(prompt_emb, response_emb, responses, config: NeighborsConfig = NeighborsConfig()) -> NeighborsResult:
    """Score every row: values in [0, 1], higher = more trustworthy (the response agrees with similar prompts)."""
    return fit(prompt_emb, response_emb, responses, config)[1]


def fit_rows(data):
    """The registry's entry (a dataset signal, `signals.dataset`): `fit` over the rows, queries by
    `score_queries`."""
    from .dataset import Fitted

    model, res = fit(data.prompt_emb, data.response_emb, data.responses, overwrite=data.scratch_embeddings)
    return Fitted(np.asarray(res.values, float), np.asarray(res.raw, float), model,
                  lambda q, src: score_queries(model, q.prompt_emb, q.response_emb, q.responses, src))


def score_queries(model: NeighborsModel, prompt_emb, response_emb, responses, source_rows) -> np.ndarray:
    """Score extra (prompt, response) pairs against the fitted dataset; [0, 1], higher = more trustworthy.

    source_rows[i] is the dataset row query i was made from (its prompt): a categorical query is scored by the
    classifier of that row's fold (which never trained on it) and free-text queries never count that row as a
    neighbour, so corruptions of existing rows are scored out-of-fold.
    """
    source_rows = np.asarray(source_rows, dtype=np.int64)
    n_q = len(responses)
    if len(source_rows) != n_q or len(prompt_emb) != n_q or len(response_emb) != n_q:
        raise ValueError("prompt_emb, response_emb, responses and source_rows must have the same length")
    pu, ru = knn.unit(prompt_emb, model.prompt_mean), knn.unit(response_emb, model.response_mean)
    index = {c: i for i, c in enumerate(model.classes)}
    q_label = np.array([index.get(normalize_answer(r), -1) for r in responses], dtype=np.int64)
    folds = model.fold_of[source_rows] if n_q else np.zeros(0, np.int64)
    out = np.full(n_q, np.nan)
    cat = (q_label >= 0) & (folds >= 0)
    for f in np.unique(folds[cat]):
        sel = np.flatnonzero(cat & (folds == f))
        p = class_proba(model.fold_models[f], prompt_emb, len(model.classes) + model.has_other, sel)
        self_conf = p[np.arange(len(sel)), q_label[sel]]
        if model.config.knn_weight > 0:
            agree = _label_agreement_query(model, pu[sel], q_label[sel], source_rows[sel])
            self_conf = (1 - model.config.knn_weight) * self_conf + model.config.knn_weight * agree
        out[sel] = self_conf
    free = np.flatnonzero(~cat)
    if len(free):
        nn, sim = knn.nearest(pu[free], model.prompt_unit, model.config.k, exclude=source_rows[free],
                              return_sim=True)
        out[free] = _free_text(model, ru[free], nn, sim, exclude=source_rows[free])[0]
    return np.clip(out, 0, 1)


def _stratified_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        out[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
    return out


def _label_agreement(unit: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Similarity-weighted share of the k nearest other rows (among categorical rows) that give the same answer."""
    nn, sim = knn.nearest(unit, unit, k, exclude=np.arange(len(unit)), return_sim=True)
    w = np.maximum(sim, 0) + 1e-6
    return (w * (y[nn] == y[:, None])).sum(1) / w.sum(1)


def _label_agreement_query(model: NeighborsModel, unit, q_label, source_rows) -> np.ndarray:
    idx = np.flatnonzero(model.labels >= 0)
    pos = np.full(len(model.labels), -1)
    pos[idx] = np.arange(len(idx))
    base = model.prompt_unit[idx]
    # a source row that is not categorical is not in `base`: nothing to exclude (-1)
    nn, sim = knn.nearest(unit, base, model.config.k, exclude=pos[source_rows], return_sim=True)
    y = model.labels[idx]
    w = np.maximum(sim, 0) + 1e-6
    return (w * (y[nn] == q_label[:, None])).sum(1) / w.sum(1)


def _free_text(model: NeighborsModel, ru: np.ndarray, nn: np.ndarray, nn_sim: np.ndarray,
               exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Retrieval rank of each response against its prompt neighbours' (nn, with similarities nn_sim) response
    centroid, and the cosine itself; a block of rows at a time (the neighbours' responses are n x k x d)."""
    exclude = np.asarray(exclude)
    # In the unit vectors' precision: float64 on datasets searched exactly, float32 above (knn.unit), where the
    # n x 1000 similarities to the reference set are the largest product of the signal.
    dtype = model.response_unit.dtype
    ref = np.asarray(model.response_unit[model.reference], dtype=dtype)
    rank, own = np.empty(len(ru)), np.empty(len(ru))
    for s in range(0, len(ru), 4096):
        w = (np.maximum(nn_sim[s:s + 4096], 0) + 1e-6).astype(dtype)
        centroid = np.einsum("nk,nkd->nd", w, np.asarray(model.response_unit[nn[s:s + 4096]], dtype=dtype))
        centroid /= np.maximum(np.linalg.norm(centroid, axis=1, keepdims=True), 1e-12).astype(dtype)
        o = np.einsum("nd,nd->n", np.asarray(ru[s:s + 4096], dtype=dtype), centroid)
        sim = centroid @ ref.T
        mine = model.reference[None, :] == exclude[s:s + 4096, None]  # a row is not its own reference
        below = ((sim < o[:, None]) & ~mine).sum(1) + 0.5 * ((sim == o[:, None]) & ~mine).sum(1)
        rank[s:s + 4096] = (below + 0.5) / ((~mine).sum(1) + 1.0)
        own[s:s + 4096] = o
    return rank, own
