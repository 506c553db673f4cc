"""consistency: BSDetector's observed consistency between sampled answers and the row's response.

The model answers the prompt k times at temperature 1.0 with BSDetector's chain-of-thought template (an explanation,
then "answer: ..."). Each sample's answer is compared with the response:
    similarity = alpha * semantic agreement + (1 - alpha) * exact match (after normalisation), alpha = 0.8,
where semantic agreement is the same model's P(Yes) to "Do these two answers say the same thing?" (renormalised
over Yes/No, read from next-token probabilities), or token F1 when agreement == "f1".
value = mean similarity over the k samples, in [0, 1], higher = more trustworthy; raw = the mean exact-match rate.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

import numpy as np

from ..chat import last_user_text, with_last_user

COT_TEMPLATE = ("Please strictly use the following template to provide answer: explanation: [insert step-by-step "
                "analysis], answer: [provide your answer]\nQuestion: {question}")
AGREE_TEMPLATE = ("Question: {question}\nAnswer 1: {a}\nAnswer 2: {b}\n"
                  "Do these two answers say the same thing? Answer Yes or No.")
YES_NO = ("Yes", "No")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ANSWER = re.compile(r"answer\s*:", re.IGNORECASE)


def cot_prompt(prompt: Sequence[dict]) -> list[dict]:
    """The conversation with its last user turn wrapped in the chain-of-thought template."""
    return with_last_user(prompt, COT_TEMPLATE.format(question=last_user_text(prompt)))


def extract_answer(text: str) -> str:
    """The text after the last "answer:" (the whole text when there is none)."""
    parts = _ANSWER.split(text)
    return parts[-1].strip() if len(parts) > 1 else text.strip()


def normalise(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(a: str, b: str) -> float:
    return float(normalise(a) == normalise(b))


def token_f1(a: str, b: str) -> float:
    """F1 of the normalised tokens' multiset overlap (1.0 when both are empty)."""
    ta, tb = normalise(a).split(), normalise(b).split()
    if not ta or not tb:
        return float(ta == tb)
    common = sum((Counter(ta) & Counter(tb)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(ta), common / len(tb)
    return 2 * precision * recall / (precision + recall)


def score(agreement: np.ndarray, exact: np.ndarray, alpha: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw) from (n, k) agreement and exact-match matrices."""
    agreement, exact = np.asarray(agreement, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    similarity = alpha * agreement + (1.0 - alpha) * exact
    return similarity.mean(axis=1), exact.mean(axis=1)


def compute(backend, prompts: Sequence[Sequence[dict]], responses: Sequence[str], k: int, alpha: float = 0.8,
            agreement: str = "llm", temperature: float = 1.0, max_new_tokens: int = 48, seed: int = 0,
            batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """(values, raw, samples) for a batch of rows: k sampled answers per row, batched generation and judging."""
    samples = backend.generate([cot_prompt(p) for p in prompts], n=k, max_new_tokens=max_new_tokens,
                               temperature=temperature, seed=seed)
    answers = [[extract_answer(s) for s in row] for row in samples]
    targets = [extract_answer(r) for r in responses]
    exact = np.array([[exact_match(a, t) for a in row] for row, t in zip(answers, targets)]).reshape(len(prompts), k)
    if agreement == "f1":
        agree = np.array([[token_f1(a, t) for a in row] for row, t in zip(answers, targets)]).reshape(len(prompts), k)
    elif agreement == "llm":
        questions = [last_user_text(p) for p in prompts]
        judge = [AGREE_TEMPLATE.format(question=q, a=a, b=t)
                 for row, t, q in zip(answers, targets, questions) for a in row]
        p_yes = np.concatenate([backend.next_token_probs(judge[i:i + batch_size], YES_NO)[:, 0]
                                for i in range(0, len(judge), batch_size)]) if judge else np.zeros(0)
        agree = p_yes.reshape(len(prompts), k)
    else:
        raise ValueError(f"agreement must be 'llm' or 'f1', got {agreement!r}")
    values, raw = score(agree, exact, alpha)
    return values, raw, samples


def sampled(backend, rows, config, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`consistency` of a chunk of rows (a sampled signal's entry; rows have .prompt and .response), with the
    config's k_samples, alpha, agreement judge, temperature and max_new_tokens."""
    values, raw, _ = compute(backend, [r.prompt for r in rows], [r.response for r in rows], config.k_samples,
                             alpha=config.alpha, agreement=config.agreement, temperature=config.temperature,
                             max_new_tokens=config.max_new_tokens, seed=seed)
    return values, raw

