"""What the engine test modules share: the sample rows, the tolerances, and the agreement figures between an engine
and the transformers backend on the same rows.

Tolerances. Both engines run the same fp32 weights on the CPU, so they differ only by kernels: vLLM's attention and
fused RMSNorm/SiLU kernels sum in another order than transformers' SDPA and eager ops, rounding-level differences
compounded over 30 layers, orders of magnitude below 1e-3 nats per token (the measured figures are in README).
LOGPROB_TOL = 5e-3 per token (and for a row's mean) leaves room for a token whose logit margin amplifies that noise
and for other CPUs' kernels, while staying far below the tenths of a nat that separate the rows' likelihoods. Letter
probabilities are normalised over three letters and move less than the log-probs: PROB_TOL = 5e-3. (A bf16 engine
against fp32 transformers would need ~0.1 nats: bf16 keeps 8 bits of mantissa.) Greedy generation is compared as
text: both take the argmax of the same logits, so the texts agree unless two top tokens are within that noise.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "demo.jsonl"
N_ROWS = 10
LOGPROB_TOL = 5e-3
PROB_TOL = 5e-3
ROW_SIGNALS = ("likelihood", "likelihood_min", "likelihood_end", "reflection")


def sample_rows(n: int = N_ROWS) -> list[tuple[int, list[dict], str]]:
    """The first n rows of the sample data as (row_idx, messages, response)."""
    import sys

    sys.path.insert(0, str(ROOT))
    from bench.throughput import load_rows

    return load_rows(SAMPLE, n)


def fused_diffs(ref, other, rows) -> dict[str, float]:
    """Max abs differences between two backends' fused passes over the same rendered rows (reflection's questions
    on): per response token log-prob, per row mean log-prob, letter probability, embeddings."""
    from clear_core.scoring import prepare_item
    from clear_core.signals import reflection

    items = [prepare_item(ref, p, r, 1024) for _, p, r in rows]
    assert [prepare_item(other, p, r, 1024) for _, p, r in rows] == items   # the same token ids go in
    a = ref.forward_scores(items, reflection.QUESTIONS, reflection.CANDIDATES, embed_layers=(12, -1))
    b = other.forward_scores(items, reflection.QUESTIONS, reflection.CANDIDATES, embed_layers=(12, -1))
    assert [len(x) for x in a.response_logprobs] == [len(x) for x in b.response_logprobs]
    assert a.suffix_probs.shape == b.suffix_probs.shape == (len(rows), 2, 3)
    assert np.allclose(b.suffix_probs.sum(-1), 1.0)
    return {
        "token_logprob": max(float(np.max(np.abs(x - y))) for x, y in zip(a.response_logprobs, b.response_logprobs)),
        "mean_logprob": max(abs(float(x.mean() - y.mean())) for x, y in zip(a.response_logprobs, b.response_logprobs)),
        "letter_prob": float(np.max(np.abs(a.suffix_probs - b.suffix_probs))),
        "prompt_emb": float(np.max(np.abs(a.prompt_emb - b.prompt_emb))),
        "response_emb": float(np.max(np.abs(a.response_emb - b.response_emb))),
        "n_tokens": (a.n_tokens, b.n_tokens),
    }


def timed_scores(backend, rows) -> tuple[object, float]:
    """score_batch over the rows with the row signals of `fast`: (BatchResult, rows/s)."""
    from clear_core.config import preset_config
    from clear_core.scoring import score_batch

    config = preset_config("fast", signals=ROW_SIGNALS, batch_size=len(rows))
    t = time.perf_counter()
    res = score_batch(backend, rows, config)
    return res, len(rows) / (time.perf_counter() - t)


def signal_diffs(ref_result, other_result) -> dict[str, float]:
    """Max abs difference of each row signal's value between two BatchResults of the same rows."""
    assert ref_result.errors == {} and other_result.errors == {}, (ref_result.errors, other_result.errors)
    return {s: float(np.nanmax(np.abs(ref_result.values[s] - other_result.values[s]))) for s in ROW_SIGNALS}


def greedy_pairs(ref, other, rows, max_new_tokens: int = 24) -> list[tuple[str, str]]:
    """Greedy answers of both backends to the rows' prompts."""
    prompts = [p for _, p, _ in rows]
    return list(zip([a[0] for a in ref.generate(prompts, max_new_tokens=max_new_tokens)],
                    [b[0] for b in other.generate(prompts, max_new_tokens=max_new_tokens)]))


def report(title: str, figures: dict) -> str:
    return title + ": " + ", ".join(f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
