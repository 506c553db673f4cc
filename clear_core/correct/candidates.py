"""Candidates for Auto-Correct, judged: per low-confidence row, better responses proposed from
  (a) `icl`: the model answering the prompt after k in-context examples, the most similar high-confidence rows
      (cosine over the scoring run's prompt embeddings; RobustFT's context-enhanced relabeling), greedy;
  (b) `classifier`: for categorical rows, the dataset classifier's most likely answer (`signals.neighbors`), when
      it differs from the given one;
  (c) `finetuned`: a generator model (e.g. the output of `finetune`), greedy, no examples;
each judged against the original (`judging`), the best-judged one kept per row.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from ..chat import few_shot
from ..config import CorrectConfig
from ..signals import knn
from .judging import judge, pool_judges

MAX_EXAMPLE_CHARS = 2000  # per in-context example prompt / response


def nearest_examples(prompt_emb: np.ndarray, queries: np.ndarray, pool: np.ndarray, k: int) -> list[np.ndarray]:
    """For each query position, the k pool positions of highest cosine similarity (the query itself excluded),
    most similar first, ties in pool order.

    prompt_emb: (n, d) embeddings indexed by position; queries / pool: positions into it.
    """
    queries, pool = np.asarray(queries, dtype=np.int64), np.asarray(pool, dtype=np.int64)
    out = [np.zeros(0, dtype=np.int64) for _ in queries]
    if len(pool) == 0 or k <= 0:
        return out
    unit = knn.unit(prompt_emb)
    where = {int(p): i for i, p in enumerate(pool)}
    own = np.array([where.get(int(q), -1) for q in queries], dtype=np.int64)  # the query's place in the pool
    # Queries outside the pool may have every pool row; only those inside need (and lose a place to) exclusion.
    for inside in (False, True):
        sel = np.flatnonzero((own >= 0) == inside)
        if len(sel):
            near = knn.nearest(unit[queries[sel]], unit[pool], k, exclude=own[sel] if inside else None)
            for i, positions in zip(sel, near):
                out[i] = pool[positions]
    return out


def icl_messages(examples: Sequence[tuple[Sequence[dict], str]], prompt: Sequence[dict],
                 max_chars: int = MAX_EXAMPLE_CHARS) -> list[dict]:
    """Few-shot chat: each example as one user turn and its response as the assistant turn, then the prompt.

    Each example's prompt and response are cut to `max_chars` so that k long rows cannot crowd out the prompt.
    """
    return few_shot(prompt, examples, max_chars, flatten_examples=True)


def clean_candidate(text: str, categories: Sequence[str] = ()) -> str:
    """A generated answer trimmed; for categorical data, mapped onto a known category when it names one."""
    out = str(text).strip()
    if not categories:
        return out
    from ..signals.neighbors import normalize_answer

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


def normalize(text: str) -> str:
    from ..signals.neighbors import normalize_answer

    return normalize_answer(text)


def same_answer(a: str, b: str) -> bool:
    return normalize(a) == normalize(b)


def propose_batch(backend, rows: Sequence[dict], examples: Sequence[Sequence[tuple]], config: CorrectConfig,
                  categories: Sequence[str] = (), classifier: dict | None = None, generator=None,
                  categorical: set | None = None, data_judge=None, scorer_judge=None, relabel: dict | None = None,
                  threshold: float | None = None) -> pd.DataFrame:
    """Candidates for a batch of rows, judged: a DataFrame of proposals, the best-judged candidate per row.

    rows: dicts with row_idx, prompt (messages), response; examples[i]: the (prompt, response) pairs shown to the
    model for rows[i]; categories: the dataset's answer classes, which generated answers of the `categorical` rows
    (all rows when None) are mapped onto; classifier: {row_idx: best answer} for categorical rows; generator: a
    fine-tuned backend; data_judge / scorer_judge: f(row_idx list, prompts, originals, candidates) ->
    probabilities (NaN = no opinion) pooled with the LLM judge (data_judge takes no prompts); relabel:
    {row_idx: whether the classifier is sure of its answer} (`relabel.RelabelTable.sure`): such a classifier
    answer that the LLM judge does not veto is the row's proposal, source "relabel", confident whatever the
    pooled judge says; threshold: the acceptance rule's on the pooled judge (default eta): the stored judge_conf
    is the pooled one rescaled to put it at eta (`acceptance.rescale`), and `confident` = judge_conf >= eta. Candidates equal to the original (after
    normalisation) are not proposals. Columns: row_idx, candidate, source, judge_llm, judge_dataset,
    judge_scorer, relabel_llm, judge_conf (pooled), confident.
    """
    from .acceptance import rescale
    from .relabel import llm_allows

    def cats(i: int) -> Sequence[str]:
        return categories if categorical is None or rows[i]["row_idx"] in categorical else ()

    cands: list[tuple[int, str, str]] = []  # (position in rows, candidate, source)
    msgs = [icl_messages(ex, r["prompt"]) for r, ex in zip(rows, examples)]
    gen = backend.generate(msgs, n=1, max_new_tokens=config.max_new_tokens, temperature=0.0, seed=config.seed)
    cands += [(i, clean_candidate(g[0], cats(i)), "icl") for i, g in enumerate(gen)]
    if classifier:
        # First among equal candidates: a classifier answer the icl answer repeats is judged as the classifier's.
        cands = [(i, classifier[r["row_idx"]], "classifier") for i, r in enumerate(rows)
                 if r["row_idx"] in classifier] + cands
    if generator is not None:
        out = generator.generate([list(r["prompt"]) for r in rows], n=1, max_new_tokens=config.max_new_tokens,
                                 temperature=0.0, seed=config.seed)
        cands += [(i, clean_candidate(g[0], cats(i)), "finetuned") for i, g in enumerate(out)]
    seen, kept = set(), []
    for i, cand, source in cands:  # one judgement per distinct candidate of a row
        key = (i, normalize(cand))
        if not cand or same_answer(cand, rows[i]["response"]) or key in seen:
            continue
        seen.add(key)
        kept.append((i, cand, source))
    kept.sort(key=lambda k: k[0])
    prompts = [rows[i]["prompt"] for i, _, _ in kept]
    originals, candidates = [rows[i]["response"] for i, _, _ in kept], [c for _, c, _ in kept]
    row_ids = [int(rows[i]["row_idx"]) for i, _, _ in kept]
    llm = judge(backend, prompts, originals, candidates).astype(float)
    data, scored = np.full(len(kept), np.nan), np.full(len(kept), np.nan)
    if data_judge is not None and len(kept):
        data = np.asarray(data_judge(row_ids, originals, candidates), dtype=float)
    if scorer_judge is not None and len(kept):
        scored = np.asarray(scorer_judge(row_ids, prompts, originals, candidates), dtype=float)
    sources = [s for _, _, s in kept]
    is_relabel = np.array([s == "classifier" and bool((relabel or {}).get(r, False)) for r, s in zip(row_ids, sources)],
                          dtype=bool) & llm_allows(llm, config.relabel_llm_veto)
    frame = pd.DataFrame({"row_idx": np.array(row_ids, dtype=np.int64), "candidate": candidates,
                          "source": np.where(is_relabel, "relabel", np.array(sources, dtype=object)),
                          "judge_llm": llm, "judge_dataset": data, "judge_scorer": scored,
                          "judge_conf": pool_judges(llm, data, scored).astype(float)})
    # The LLM judge's verdict on the classifier's answer, on every row that has one (what the relabel rule reads).
    on_classifier = pd.Series(llm[[s == "classifier" for s in sources]],
                              index=[r for r, s in zip(row_ids, sources) if s == "classifier"], dtype=float)
    frame["relabel_llm"] = frame["row_idx"].map(on_classifier).astype(float)
    # The store keeps one proposal per row: a relabel, else the candidate with the highest pooled judge_conf.
    frame = frame.assign(_first=frame["source"] == "relabel")
    frame = frame.sort_values(["row_idx", "_first", "judge_conf"], ascending=[True, False, False], kind="stable")
    frame = frame.drop_duplicates("row_idx").drop(columns="_first").reset_index(drop=True)
    # Stored judge_conf: the pooled verdict on the acceptance rule's scale (its threshold at eta); a relabel is
    # confident by the confident-learning rule, so at least eta.
    conf = rescale(frame["judge_conf"].to_numpy(), config.eta if threshold is None else threshold, config.eta)
    conf = np.where(frame["source"] == "relabel", np.maximum(conf, config.eta), conf)
    return frame.assign(judge_conf=conf, confident=conf >= config.eta)
