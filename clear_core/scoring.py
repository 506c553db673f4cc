"""Score one batch of rows with the fused forward passes: the row signals and the prompt/response embeddings.

Every signal value is in [0, 1], higher = more trustworthy; raw values are kept beside them. For each row, one
teacher-forced forward over chat_template(prompt) + response gives the token log-probs, the embeddings and the KV
cache on which the row signals' follow-up questions run (reflection's); `score_batch` then calls each wanted row
signal of the registry on that `RowBatch` (a signal may run more forwards: ifd's response-only one) and, when
config.k_samples > 0, each sampled signal (consistency). `score_context` is the in-context pass, which serves every
context signal. Rows are sorted by length and grouped into forwards of at most `config.forward_tokens` padded
tokens, so short rows are not padded to the longest row of the batch. A row that fails (e.g. tokenisation) is
reported in `errors` and gets NaN values; the other rows go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .backends.base import Backend, ScoreItem
from .chat import few_shot
from .config import ScoreConfig
from .signals import context, get_signal, of_kind

MIN_PROMPT_TOKENS = 16  # a response longer than max_tokens is cut so that this much prompt context stays
# The fixed cost of one more forward, in padded-token equivalents (per-op dispatch, small-matmul inefficiency):
# below it, padding a row is cheaper than giving it its own forward.
FORWARD_OVERHEAD = 64


@dataclass(frozen=True)
class Row:
    row_idx: int
    prompt: Sequence[dict]      # the messages before the response
    response: str


@dataclass(frozen=True)
class BatchResult:
    """Arrays aligned with the input rows; rows in `errors` hold NaN."""

    row_idx: np.ndarray
    values: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    prompt_emb: np.ndarray | None    # (n, d) float32 (None from score_context)
    response_emb: np.ndarray | None  # (n, d) float32
    n_tokens: int               # tokens run through the model's forwards (padding excluded)
    errors: dict[int, str] = field(default_factory=dict)
    matmul_flops: float = 0.0   # matmul FLOPs of those forwards (padding and attention included)


def prepare_item(backend: Backend, prompt, response: str, max_tokens: int) -> ScoreItem:
    """Render a row; when longer than max_tokens, cut the prompt from the left (the response is kept whole unless
    it alone leaves less than MIN_PROMPT_TOKENS of prompt, then its end is cut too)."""
    ids, start = backend.render(prompt, response)
    if len(ids) <= max_tokens:
        return ScoreItem(tuple(ids), start)
    n_response = len(ids) - start
    keep_response = max(1, min(n_response, max_tokens - min(start, MIN_PROMPT_TOKENS)))
    keep_prompt = max_tokens - keep_response
    ids = ids[start - keep_prompt:start] + ids[start:start + keep_response]
    return ScoreItem(tuple(ids), keep_prompt, ends_turn=keep_response == n_response)


@dataclass
class RowBatch:
    """A batch of rows after its fused forward, as a row signal reads it (`signals`, kind "row").

    out[i] = (the response's token log-probs, the end-of-turn token's last when the turn ends; prompt embedding;
    response embedding; the follow-up questions' letter probabilities) or None for a row that failed; `errors`
    collects failing rows ({row_idx: message}); n_tokens / flops count every forward of the batch."""

    backend: Backend
    rows: list[Row]
    items: list[ScoreItem | None]
    config: ScoreConfig
    errors: dict[int, str]
    suffixes: tuple[str, ...] = ()   # the follow-up questions asked on each response's KV cache
    candidates: tuple[str, ...] = ()  # the answer letters read after each question
    out: list = field(default_factory=list)
    n_tokens: int = 0
    flops: float = 0.0

    def token_logprobs(self, include_end: bool = True) -> list[np.ndarray]:
        """Each row's response-token log-probs (empty for a failed row), the end-of-turn token dropped unless
        include_end."""
        return [_likelihood_tokens(out[0], self.items[i], include_end) if out else np.zeros(0)
                for i, out in enumerate(self.out)]

    def end_logprobs(self) -> list[float]:
        """Each row's end-of-turn token log-prob; NaN for a failed row or one whose response was cut."""
        return [float(out[0][-1]) if out and self.items[i].ends_turn and len(out[0]) else np.nan
                for i, out in enumerate(self.out)]

    def suffix_probs(self, questions: Sequence[str]) -> np.ndarray:
        """(n, len(questions), candidates) letter probabilities of `questions` (asked in this batch's forward);
        NaN for a failed row."""
        q = tuple(questions)
        at = next(i for i in range(len(self.suffixes)) if self.suffixes[i:i + len(q)] == q)
        width = len(self.candidates)
        return np.stack([out[3][at:at + len(q)] if out else np.full((len(q), width), np.nan)
                         for out in self.out]).reshape(len(self.out), len(q), width)

    def logprobs_after(self, prompt) -> list[np.ndarray]:
        """Each row's response-token log-probs after `prompt` instead of its own (one more forward per row; empty
        for a row that failed, here or in the fused forward)."""
        items = [_guard(lambda r=r: prepare_item(self.backend, prompt, r.response, self.config.max_tokens), r,
                        self.errors) if self.out[i] else None for i, r in enumerate(self.rows)]
        extra = _run_fused(self.backend, self.rows, items, (), (), self.config, self.errors)
        self.n_tokens += extra["n_tokens"]
        self.flops += extra["flops"]
        return [o[0] if o else np.zeros(0) for o in extra["out"]]


def score_batch(backend: Backend, rows: Sequence[Row | tuple], config: ScoreConfig) -> BatchResult:
    """The row and sampled signals of config.signals (registry order) and the embeddings for a batch of rows."""
    batch = forward_batch(backend, rows, config)
    rows, errors, n = batch.rows, batch.errors, len(batch.rows)
    values, raw = {}, {}
    for name in of_kind("row", config.signals):
        values[name], raw[name] = get_signal(name).compute(batch)
    if config.k_samples > 0:
        for name in of_kind("sampled", config.signals):
            values[name], raw[name] = _sampled(get_signal(name), backend, rows, batch.out, config, errors)

    failed = np.array([r.row_idx in errors for r in rows], dtype=bool)
    for d in (values, raw):
        for name in d:
            d[name] = np.where(failed, np.nan, d[name]).astype(np.float64)
    dim = next((out[1].shape[0] for out in batch.out if out), 0)
    emb = {k: np.full((n, dim), np.nan, dtype=np.float32) for k in (1, 2)}
    for i, out in enumerate(batch.out):
        if out and not failed[i]:
            emb[1][i], emb[2][i] = out[1], out[2]
    return BatchResult(row_idx=np.array([r.row_idx for r in rows], dtype=np.int64), values=values, raw=raw,
                       prompt_emb=emb[1], response_emb=emb[2], n_tokens=batch.n_tokens, errors=errors,
                       matmul_flops=batch.flops)


def forward_batch(backend: Backend, rows: Sequence[Row | tuple], config: ScoreConfig) -> RowBatch:
    """The batch's fused forward (with the follow-up questions of config's row signals), as row signals read it;
    a row that fails is in the batch's `errors`."""
    rows = [r if isinstance(r, Row) else Row(*r) for r in rows]
    errors: dict[int, str] = {}
    items = [_guard(lambda r=r: prepare_item(backend, r.prompt, r.response, config.max_tokens), r, errors)
             for r in rows]
    suffixes, candidates = _questions([get_signal(s) for s in of_kind("row", config.signals)])
    fused = _run_fused(backend, rows, items, suffixes, candidates, config, errors)
    return RowBatch(backend, rows, items, config, errors, suffixes, candidates, fused["out"], fused["n_tokens"],
                    fused["flops"])


def _questions(row_signals) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The follow-up questions of the wanted row signals' modules (each module once) and the answer letters read
    after them, which every asking module must share (one forward reads one set of letters)."""
    modules = list({s.module: s.load() for s in row_signals}.values())
    asking = [m for m in modules if getattr(m, "QUESTIONS", ())]
    letters = {tuple(m.CANDIDATES) for m in asking}
    if len(letters) > 1:
        raise ValueError(f"row signals ask their questions with different answer letters: {sorted(letters)}")
    return tuple(q for m in asking for q in m.QUESTIONS), next(iter(letters), ())


def _sampled(signal, backend, rows, fused_out, config, errors) -> tuple[np.ndarray, np.ndarray]:
    """A sampled signal over the rows that passed the fused forward, config.batch_size rows at a time; a chunk
    that raises is reported row by row and the others go on."""
    values, raw = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    ok = [i for i in range(len(rows)) if fused_out[i]]
    step = max(1, config.batch_size)
    for lo in range(0, len(ok), step):
        chunk = ok[lo:lo + step]
        try:
            v, rw = signal.compute(backend, [rows[i] for i in chunk], config,
                                   config.seed * 1_000_003 + int(rows[chunk[0]].row_idx))
            values[chunk], raw[chunk] = v, rw
        except Exception as exc:  # noqa: BLE001 - the rows are reported, the batch goes on
            for i in chunk:
                errors.setdefault(rows[i].row_idx, f"{signal.name}: {type(exc).__name__}: {exc}")
    return values, raw


def score_context(backend: Backend, rows: Sequence[Row | tuple], source_rows: Sequence[int],
                  index: context.ContextIndex, lookup: Callable, config: ScoreConfig) -> BatchResult:
    """The context signals (every one: they share the pass) for a batch: row i is scored after the dataset rows
    nearest to dataset row source_rows[i] (its own row, or the one a synthetic row was made from) as earlier turns of
    its chat (`chat.few_shot`); lookup(row ids) -> {row id: (prompt, response)} gives their text. One
    teacher-forced forward per row and no embeddings."""
    from .backends.base import as_messages

    rows = [r if isinstance(r, Row) else Row(*r) for r in rows]
    chosen = index.examples_for(source_rows, config.context_examples)
    texts = lookup(sorted({int(d) for d in chosen.ravel() if d >= 0}))
    errors: dict[int, str] = {}
    items = [_guard(lambda r=r, ex=ex: prepare_item(
        backend, few_shot(as_messages(r.prompt), [texts[int(d)] for d in ex if d >= 0], context.MAX_EXAMPLE_CHARS),
        r.response, config.max_tokens), r, errors) for r, ex in zip(rows, chosen)]
    fused = _run_fused(backend, rows, items, (), (), config, errors, embed_layers=())
    lps = [out[0] if out else np.zeros(0) for out in fused["out"]]
    failed = np.array([r.row_idx in errors for r in rows], dtype=bool)
    values, raw = {}, {}
    ends = [it is not None and it.ends_turn for it in items]
    for name in of_kind("context"):  # one pass serves every in-context signal
        v, rw = get_signal(name).compute(lps, ends)
        values[name], raw[name] = np.where(failed, np.nan, v), np.where(failed, np.nan, rw)
    return BatchResult(row_idx=np.array([r.row_idx for r in rows], dtype=np.int64), values=values, raw=raw,
                       prompt_emb=None, response_emb=None, n_tokens=fused["n_tokens"], errors=errors,
                       matmul_flops=fused["flops"])


def plan_batches(lengths: Sequence[int], budget: int, overhead: int = FORWARD_OVERHEAD) -> list[list[int]]:
    """Indices sorted by length, cut into groups (one forward each) of minimal total cost.

    A group of rows costs rows x its longest row (the padded tokens it computes) + `overhead` (the fixed cost of a
    forward, in tokens); rows x longest row stays <= budget unless the group is a single row. Contiguous groups of
    the sorted order are optimal for this cost, so a dynamic programme over cut points finds the best plan in
    O(n^2): short rows are not padded to a long one when a separate forward is cheaper.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ls = [lengths[i] for i in order]
    best, cut = [0.0] + [float("inf")] * len(ls), [0] * (len(ls) + 1)
    for j in range(1, len(ls) + 1):          # the last group is order[i:j]; its longest row is ls[j - 1]
        for i in range(j - 1, -1, -1):
            if j - i > 1 and (j - i) * ls[j - 1] > budget:
                break
            cost = best[i] + (j - i) * ls[j - 1] + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(ls)
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


def _run_fused(backend, rows, items, suffixes, candidates, config, errors, embed_layers=None) -> dict:
    """forward_scores over micro-batches; out[i] = (logprobs, prompt_emb, response_emb, suffix_probs) or None.
    A micro-batch that raises is retried row by row, so only the offending rows are reported."""
    out: list = [None] * len(items)
    total = {"out": out, "n_tokens": 0, "flops": 0.0}
    live = [i for i, it in enumerate(items) if it is not None]
    layers = config.embed_layers if embed_layers is None else embed_layers
    embed = (layers, config.prompt_tail_tokens)
    for group in plan_batches([len(items[i].ids) for i in live], config.forward_tokens):
        group = [live[g] for g in group]
        try:
            _fill(backend, items, group, suffixes, candidates, embed, out, total)
        except Exception:  # noqa: BLE001 - isolate the failing rows below
            for i in group:
                _guard(lambda i=i: _fill(backend, items, [i], suffixes, candidates, embed, out, total), rows[i],
                       errors)
    return total


def _fill(backend, items, group, suffixes, candidates, embed, out, total) -> None:
    """embed: (hidden-state layers, prompt tail tokens) of the embeddings."""
    res = backend.forward_scores([items[i] for i in group], suffixes, candidates, embed_layers=embed[0],
                                 prompt_tail=embed[1])
    for j, i in enumerate(group):
        out[i] = (res.response_logprobs[j], res.prompt_emb[j], res.response_emb[j], res.suffix_probs[j])
    total["n_tokens"] += res.n_tokens
    total["flops"] += res.matmul_flops


def _likelihood_tokens(logprobs: np.ndarray, item: ScoreItem, include_end: bool) -> np.ndarray:
    """The response tokens' log-probs, the end-of-turn token (the last one, when the turn ends) dropped unless
    include_end."""
    if include_end or not item.ends_turn or len(logprobs) <= 1:
        return logprobs
    return logprobs[:-1]


def _guard(fn, row: Row, errors: dict):
    """fn() or, when it raises, None with the row's error recorded."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a bad row is reported, never fatal to the batch
        errors.setdefault(row.row_idx, f"{type(exc).__name__}: {exc}")
        return None
