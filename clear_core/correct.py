"""Auto-Correct (CLEAR + RobustFT): propose a better response for low-confidence rows, and judge it.

Candidates for a row below t_keep come from
  (a) `icl`: the model answering the prompt after k in-context examples, the most similar high-confidence rows
      (cosine over the scoring run's prompt embeddings; RobustFT's context-enhanced relabeling), greedy;
  (b) `classifier`: for categorical rows, the dataset classifier's most likely answer (`signals.neighbors`), when
      it differs from the given one;
  (c) `finetuned`: a generator model dir (e.g. the output of `finetune`), greedy, no examples.
Two judges give the probability that the candidate is better than the original:
  * the LLM judge: the base model comparing original and candidate for the prompt in BOTH orders (A/B, then B/A,
    so a preference for a position cancels out); each verdict is read from the next-token probabilities of the
    letters "A" and "B" (renormalised), and its value is the mean over the two orders;
  * the dataset judge (categorical rows whose candidate is one of the classes): the out-of-fold classifier of
    `signals.neighbors` (the fold that never trained on the row), P(candidate) / (P(candidate) + P(original)).
    Rows without it (free text, a candidate outside the classes) get NaN, which counts as no opinion.
They are pooled as independent judges in log-odds, logit(judge_conf) = sum of logit(judge_i), so a 0.5 judge adds
nothing and two agreeing judges give more confidence than either alone. A proposal is `confident` when the pooled
`judge_conf` is >= eta (0.8, CLEAR's). Proposals are stored next to the original, never over it; the components
are stored as scores of the correction run (signals `judge_llm`, `judge_dataset`).

A correction run is resumable like a scoring run. Its one stage, `propose`, generates a batch's candidates, judges
them and commits the best-judged candidate per row (the store holds one proposal per row) in one transaction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .config import CorrectConfig, Thresholds
from .errors import ClearError

PROPOSE = "propose"
JUDGE_METHOD = "pooled-llm-dataset"  # recorded in a correction run's settings
JUDGE_SIGNALS = ("judge_llm", "judge_dataset")  # the components, stored as scores of the correction run
POOL_EPS = 1e-4  # each judge is clipped to [POOL_EPS, 1 - POOL_EPS] before pooling, so no judge alone is certain
MAX_EXAMPLE_CHARS = 2000  # per in-context example prompt / response
JUDGE_LETTERS = ("A", "B")
JUDGE_TEMPLATE = (
    "Two responses to the same prompt follow. Which response is the better answer to the prompt (correct, "
    "relevant and helpful)?\n\n### Prompt\n{prompt}\n\n### Response A\n{a}\n\n### Response B\n{b}\n\n"
    "Answer with one letter: A or B."
)


# ----------------------------------------------------------------------------------------------- pure functions
def prompt_as_text(prompt: Sequence[dict]) -> str:
    """A conversation as readable text for the judge (the last user turn alone when it is the only turn)."""
    msgs = [m for m in prompt if m.get("role") != "system"]
    if len(msgs) == 1:
        return str(msgs[0].get("content", ""))
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in msgs)


def judge_prompts(prompt: Sequence[dict], original: str, candidate: str) -> tuple[list[dict], list[dict]]:
    """The two judge conversations: original as A / candidate as B, then candidate as A / original as B."""
    text = prompt_as_text(prompt)
    ab = JUDGE_TEMPLATE.format(prompt=text, a=original, b=candidate)
    ba = JUDGE_TEMPLATE.format(prompt=text, a=candidate, b=original)
    return [{"role": "user", "content": ab}], [{"role": "user", "content": ba}]


def judge_confidence(p_ab: np.ndarray, p_ba: np.ndarray) -> np.ndarray:
    """Confidence that the candidate is better, in [0, 1], from (n, 2) letter probabilities of both orders.

    p_ab: original shown as A, candidate as B -> P(B); p_ba: candidate shown as A -> P(A). Each pair is
    renormalised over the two letters, and the two orders are averaged, so a judge that always prefers one
    position gives 0.5 whatever it prefers.
    """
    p_ab, p_ba = np.asarray(p_ab, dtype=float), np.asarray(p_ba, dtype=float)
    ab = p_ab[:, 1] / np.maximum(p_ab.sum(axis=1), 1e-12)
    ba = p_ba[:, 0] / np.maximum(p_ba.sum(axis=1), 1e-12)
    return np.clip(0.5 * (ab + ba), 0.0, 1.0)


def pool_judges(*judges) -> np.ndarray:
    """Pool independent judges' probabilities in log-odds: logit(p) = sum of logit(p_i).

    Each argument is an array (or scalar) of probabilities that the candidate is better; NaN = no opinion (adds
    nothing, like 0.5). Each judge is clipped to [POOL_EPS, 1 - POOL_EPS]. With no judge at all the result is 0.5.
    """
    arrays = [np.asarray(j, dtype=float) for j in judges]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
    total = np.zeros(shape)
    for a in arrays:
        p = np.clip(a, POOL_EPS, 1.0 - POOL_EPS)
        total = total + np.where(np.isnan(p), 0.0, np.log(p) - np.log1p(-p))
    return 1.0 / (1.0 + np.exp(-total))


def dataset_judge(p_candidate, p_original) -> np.ndarray:
    """The dataset-consistency judge: P(candidate) / (P(candidate) + P(original)) from a classifier's class
    probabilities; NaN (no opinion) where either is NaN or both are 0."""
    pc, po = np.asarray(p_candidate, dtype=float), np.asarray(p_original, dtype=float)
    total = pc + po
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, pc / np.where(total > 0, total, 1.0), np.nan)


def nearest_examples(prompt_emb: np.ndarray, queries: np.ndarray, pool: np.ndarray, k: int) -> list[np.ndarray]:
    """For each query position, the k pool positions of highest cosine similarity (the query itself excluded).

    prompt_emb: (n, d) embeddings indexed by position; queries / pool: positions into it.
    """
    emb = np.asarray(prompt_emb, dtype=np.float64)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    pool = np.asarray(pool, dtype=np.int64)
    if len(pool) == 0 or k <= 0:
        return [np.zeros(0, dtype=np.int64) for _ in queries]
    sim = unit[np.asarray(queries, dtype=np.int64)] @ unit[pool].T
    sim[pool[None, :] == np.asarray(queries)[:, None]] = -np.inf
    kk = min(k, len(pool))
    order = np.argsort(-sim, axis=1, kind="stable")[:, :kk]
    return [pool[o][np.isfinite(s[o])] for o, s in zip(order, sim)]


def icl_messages(examples: Sequence[tuple[Sequence[dict], str]], prompt: Sequence[dict],
                 max_chars: int = MAX_EXAMPLE_CHARS) -> list[dict]:
    """Few-shot chat: each example as a user turn and its response as the assistant turn, then the prompt.

    Each example's prompt and response are cut to `max_chars` so that k long rows cannot crowd out the prompt.
    """
    msgs: list[dict] = []
    system = [m for m in prompt if m.get("role") == "system"]
    msgs.extend(dict(m) for m in system[:1])
    for ex_prompt, ex_response in examples:
        msgs.append({"role": "user", "content": prompt_as_text(ex_prompt)[-max_chars:]})
        msgs.append({"role": "assistant", "content": str(ex_response)[:max_chars]})
    msgs.extend(dict(m) for m in prompt if m.get("role") != "system")
    return msgs


def clean_candidate(text: str, categories: Sequence[str] = ()) -> str:
    """A generated answer trimmed; for categorical data, mapped onto a known category when it names one."""
    out = str(text).strip()
    if not categories:
        return out
    from .signals.neighbors import normalize_answer

    by_norm = {normalize_answer(c): c for c in categories}
    first = out.splitlines()[0] if out else ""
    for guess in (out, first, first.split(" ")[0] if first else ""):
        if normalize_answer(guess) in by_norm:
            return by_norm[normalize_answer(guess)]
    # An option letter alone ("C") names the category written "C. positive" / "C) positive".
    head = normalize_answer(first.split(" ")[0]) if first else ""
    if len(head) == 1:
        hits = [c for n, c in by_norm.items() if re.match(re.escape(head) + r"[.):]\s", n)]
        if len(hits) == 1:
            return hits[0]
    return first.strip()


def same_answer(a: str, b: str) -> bool:
    from .signals.neighbors import normalize_answer

    return normalize_answer(a) == normalize_answer(b)


# ------------------------------------------------------------------------------------------------ model calls
def judge(backend, prompts: Sequence[Sequence[dict]], originals: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """Two-order pairwise judge: confidence in [0, 1] that each candidate is better than its original."""
    if not len(prompts):
        return np.zeros(0)
    pairs = [judge_prompts(p, o, c) for p, o, c in zip(prompts, originals, candidates)]
    probs = np.asarray(backend.next_token_probs([ab for ab, _ in pairs] + [ba for _, ba in pairs], list(JUDGE_LETTERS)))
    n = len(pairs)
    return judge_confidence(probs[:n], probs[n:])


def propose_batch(backend, rows: Sequence[dict], examples: Sequence[Sequence[tuple]], config: CorrectConfig,
                  categories: Sequence[str] = (), classifier: dict | None = None, generator=None,
                  categorical: set | None = None, data_judge=None) -> pd.DataFrame:
    """Candidates for a batch of rows, judged: a DataFrame of proposals, the best-judged candidate per row.

    rows: dicts with row_idx, prompt (messages), response; examples[i]: the (prompt, response) pairs shown to the
    model for rows[i]; categories: the dataset's answer classes, which generated answers of the `categorical` rows
    (all rows when None) are mapped onto; classifier: {row_idx: best answer} for categorical rows; generator: a
    fine-tuned backend; data_judge: f(row_idx list, originals, candidates) -> dataset-judge probabilities (NaN =
    no opinion), pooled with the LLM judge. Candidates equal to the original (after normalisation) are not
    proposals. Columns: row_idx, candidate, source, judge_llm, judge_dataset, judge_conf (pooled), confident.
    """
    def cats(i: int) -> Sequence[str]:
        return categories if categorical is None or rows[i]["row_idx"] in categorical else ()

    cands: list[tuple[int, str, str]] = []  # (position in rows, candidate, source)
    msgs = [icl_messages(ex, r["prompt"]) for r, ex in zip(rows, examples)]
    gen = backend.generate(msgs, n=1, max_new_tokens=config.max_new_tokens, temperature=0.0, seed=config.seed)
    cands += [(i, clean_candidate(g[0], cats(i)), "icl") for i, g in enumerate(gen)]
    if classifier:
        cands += [(i, classifier[r["row_idx"]], "classifier") for i, r in enumerate(rows) if r["row_idx"] in classifier]
    if generator is not None:
        out = generator.generate([list(r["prompt"]) for r in rows], n=1, max_new_tokens=config.max_new_tokens,
                                 temperature=0.0, seed=config.seed)
        cands += [(i, clean_candidate(g[0], cats(i)), "finetuned") for i, g in enumerate(out)]
    seen, kept = set(), []
    for i, cand, source in cands:  # one judgement per distinct candidate of a row
        if not cand or same_answer(cand, rows[i]["response"]) or (i, cand) in seen:
            continue
        seen.add((i, cand))
        kept.append((i, cand, source))
    originals, candidates = [rows[i]["response"] for i, _, _ in kept], [c for _, c, _ in kept]
    row_ids = np.array([rows[i]["row_idx"] for i, _, _ in kept], dtype=np.int64)
    llm = judge(backend, [rows[i]["prompt"] for i, _, _ in kept], originals, candidates).astype(float)
    data = np.full(len(kept), np.nan)
    if data_judge is not None and len(kept):
        data = np.asarray(data_judge([int(r) for r in row_ids], originals, candidates), dtype=float)
    frame = pd.DataFrame({"row_idx": row_ids, "candidate": candidates, "source": [s for _, _, s in kept],
                          "judge_llm": llm, "judge_dataset": data,
                          "judge_conf": pool_judges(llm, data).astype(float)})
    # The store keeps one proposal per row: the candidate with the highest pooled judge_conf.
    frame = frame.sort_values(["row_idx", "judge_conf"], ascending=[True, False], kind="stable")
    frame = frame.drop_duplicates("row_idx").reset_index(drop=True)
    return frame.assign(confident=frame["judge_conf"] >= config.eta)


# ------------------------------------------------------------------------------------------------------- runs
def run_correction(ws, dataset, config: CorrectConfig = CorrectConfig(), score_run: int | None = None,
                   thresholds: Thresholds | None = None, backend=None, generator=None, progress=None,
                   cancel=None) -> int:
    """Create a correction run over the rows of `score_run` below t_keep and run it; returns its run id.

    score_run: a finished scoring run of the dataset (default: the latest); thresholds: default the median
    (`filtering.run_thresholds`). backend: the judge and in-context generator (default: the scoring run's
    model); generator: a fine-tuned backend, else loaded from `config.generator` when that is a model dir.
    """
    from . import filtering

    info = ws.get_dataset(dataset)
    run = ws.get_run(score_run) if score_run is not None else ws.latest_run(info.id, kind="score", status="done")
    if run is None or run.status != "done" or run.kind != "score":
        raise ClearError(f"dataset '{info.name}' has no finished scoring run; run `clear-studio score {info.name}` first")
    if thresholds is None:
        thresholds = filtering.run_thresholds(ws, run.id, eta=config.eta)
    targets = _targets(ws, run.id, thresholds.t_keep)
    settings = {**json.loads(config.to_json()), "score_run": run.id, "t_keep": thresholds.t_keep,
                "t_drop": thresholds.t_drop, "judge": JUDGE_METHOD}
    run_id = ws.create_run(info.id, "correct", json.dumps(settings, sort_keys=True), len(targets))
    return resume(ws, run_id, backend=backend, generator=generator, progress=progress, cancel=cancel)


def resume(ws, run_id: int, backend=None, generator=None, progress=None, cancel=None) -> int:
    """Go on with a correction run from where it stopped (or was killed); returns its run id."""
    from .pipeline import run_batches, tracked_run

    run = ws.get_run(run_id)
    if run.kind != "correct":
        raise ClearError(f"run {run_id} is a {run.kind} run, not a correction run")
    settings = run.config
    config = CorrectConfig(**{k: settings[k] for k in json.loads(CorrectConfig().to_json()) if k in settings})
    if run.status == "done":
        return run_id
    with tracked_run(ws, run_id):
        context = _Context.build(ws, run, settings, config, backend, generator)
        run_batches(ws, run_id, PROPOSE, run.n_total, context.compute, config.batch_size, progress, cancel,
                    rows=context.targets)
    return run_id


def _targets(ws, score_run: int, t_keep: float) -> np.ndarray:
    """Row indices below t_keep, in row order (recomputed identically on resume from the stored scores)."""
    from .filtering import run_confidence

    rows, conf = run_confidence(ws, score_run)
    order = np.argsort(rows, kind="stable")
    rows, conf = rows[order], conf[order]
    return rows[~(conf >= t_keep)].astype(np.int64)  # a NaN confidence is a target too


@dataclass
class _Context:
    """Everything a correction batch needs, loaded once per session of the run."""

    ws: object
    run: object
    config: CorrectConfig
    backend: object
    generator: object
    targets: np.ndarray  # the run's rows (below t_keep), in row order
    rows_all: np.ndarray  # the scored rows, aligned with prompt_emb and examples
    prompt_emb: np.ndarray
    pos_of: dict  # row_idx -> position in rows_all
    pool: np.ndarray  # positions of the high-confidence rows the in-context examples come from
    examples: pd.DataFrame
    categories: tuple
    categorical: set
    classifier: dict  # row_idx -> the classifier's answer, where it differs from the given one
    load_rows: object
    neighbors_model: object = None  # the fitted `signals.neighbors` model (its out-of-fold classifiers)
    prompt_raw: np.ndarray | None = None  # the scoring run's prompt embeddings, float64, aligned with rows_all

    @classmethod
    def build(cls, ws, run, settings, config, backend, generator):
        from .pipeline import _load_rows
        from .signals import neighbors

        score_run = ws.get_run(int(settings["score_run"]))
        targets = _targets(ws, score_run.id, float(settings["t_keep"]))
        if len(targets) != run.n_total:
            raise ClearError(f"correction run {run.id}: its scoring run {score_run.id} changed since it started")
        if backend is None:
            from .backends import load_backend
            backend = load_backend(score_run.config["model"])
        if generator is None and config.generator not in ("default", "", None):
            from .backends import load_backend
            generator = load_backend(config.generator)
        rows_all, conf = ws.scores_wide(score_run.id, ["confidence"])[["row_idx", "confidence"]].to_numpy().T
        rows_all = rows_all.astype(np.int64)
        prompt_emb = np.asarray(ws.embeddings(score_run.id, "prompt", row_idx=rows_all), dtype=np.float32)
        response_emb = np.asarray(ws.embeddings(score_run.id, "response", row_idx=rows_all), dtype=np.float32)
        examples = ws.examples(run.dataset_id, row_idx=[int(r) for r in rows_all]).set_index("row_idx").loc[rows_all]
        responses = list(examples["response"])
        model, result = neighbors.fit(prompt_emb, response_emb, responses)
        pos_of = {int(r): i for i, r in enumerate(rows_all)}
        classifier = {int(r): str(result.predicted[i]) for i, r in enumerate(rows_all)
                      if result.categorical[i] and result.predicted[i] is not None
                      and not same_answer(str(result.predicted[i]), responses[i])}
        pool = np.flatnonzero(conf >= float(settings["t_keep"]))
        categorical = {int(r) for i, r in enumerate(rows_all) if result.categorical[i]}
        return cls(ws=ws, run=run, config=config, backend=backend, generator=generator, targets=targets,
                   rows_all=rows_all, prompt_emb=prompt_emb, pos_of=pos_of, pool=pool, examples=examples,
                   categories=tuple(model.class_text), categorical=categorical, classifier=classifier,
                   load_rows=_load_rows, neighbors_model=model, prompt_raw=prompt_emb.astype(np.float64))

    def data_judge(self, row_idx: Sequence[int], originals: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """Dataset judge per (row, original, candidate): the out-of-fold class probabilities of the row's prompt."""
        return categorical_data_judge(self.neighbors_model, self.prompt_raw,
                                      [self.pos_of[int(r)] for r in row_idx], originals, candidates)

    def compute(self, row_idx: np.ndarray) -> dict:
        rows = self.load_rows(self.ws, self.run.dataset_id, row_idx)
        near = nearest_examples(self.prompt_emb, np.array([self.pos_of[int(r)] for r in row_idx]), self.pool,
                                self.config.k_examples)
        shots = [[(_prompt_of(self.examples.iloc[j]), self.examples.iloc[j]["response"]) for j in nn] for nn in near]
        classifier = {int(r): self.classifier[int(r)] for r in row_idx if int(r) in self.classifier}
        errors = {}
        try:
            props = propose_batch(self.backend, rows, shots, self.config, self.categories, classifier, self.generator,
                                  categorical=self.categorical, data_judge=self.data_judge)
        except Exception as exc:  # record the batch's rows as failed, keep going
            props = None
            errors = {int(r): f"{type(exc).__name__}: {exc}" for r in row_idx}
        scores = None
        if props is not None:
            props = props.assign(row_idx=props["row_idx"].astype(np.int64))
            scores = judge_scores(props)
        return dict(scores=scores, embeddings=None, proposals=props, errors=errors)


def judge_scores(props: pd.DataFrame) -> pd.DataFrame:
    """The judge components of each row's stored proposal as long scores [row_idx, signal, value] (NaN left out)."""
    parts = [pd.DataFrame({"row_idx": props["row_idx"].astype(np.int64), "signal": name,
                           "value": props[name].astype(float)}) for name in JUDGE_SIGNALS if name in props]
    if not parts:
        return None
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[frame["value"].notna()].reset_index(drop=True)
    return frame if len(frame) else None


def categorical_data_judge(model, prompt_emb: np.ndarray, positions: Sequence[int], originals: Sequence[str],
                           candidates: Sequence[str]) -> np.ndarray:
    """P(candidate) / (P(candidate) + P(original)) from the classifier of the row's fold (which never trained on
    the row), for categorical rows whose original and candidate are both classes; NaN elsewhere.

    model: a `signals.neighbors.NeighborsModel`; prompt_emb: the prompt embeddings it was fitted on; positions:
    each query's row position in them.
    """
    from .signals.neighbors import _proba, normalize_answer

    out = np.full(len(positions), np.nan)
    if model is None or not model.classes or not len(positions):
        return out
    index = {c: i for i, c in enumerate(model.classes)}
    pos = np.asarray(positions, dtype=np.int64)
    ci = np.array([index.get(normalize_answer(c), -1) for c in candidates])
    oi = np.array([index.get(normalize_answer(o), -1) for o in originals])
    fold = model.fold_of[pos]
    ok = (ci >= 0) & (oi >= 0) & (fold >= 0) & (model.labels[pos] >= 0)
    n_classes = len(model.classes) + bool(model.has_other)
    for f in np.unique(fold[ok]):
        sel = np.flatnonzero(ok & (fold == f))
        p = _proba(model.fold_models[f], np.asarray(prompt_emb, dtype=np.float64)[pos[sel]], n_classes)
        out[sel] = dataset_judge(p[np.arange(len(sel)), ci[sel]], p[np.arange(len(sel)), oi[sel]])
    return out


def _prompt_of(example_row) -> list[dict]:
    p = example_row["prompt"]
    return json.loads(p) if isinstance(p, str) else list(p)
