"""`placeholder`: the response is empty, a placeholder or a refusal, in [0, 1], higher = more trustworthy.

Public SFT sets carry outputs such as "", "N/A", "<No Output>", "[Your answer here]" or "TBD", and refusals ("As an
AI language model, I cannot ..."). An empty or placeholder response scores 0.02; a refusal 0.2 (a refusal can be
right, for a harmful prompt, so it is a weaker verdict); anything else 1.0. A short text that is one of the
dataset's common answers ("None" in a multiple-choice set) is a label, not a placeholder.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

NAME = "placeholder"
EMPTY = 0.02
REFUSAL = 0.2
PLACEHOLDER = re.compile(
    r"""^\W*(n/?a|none|null|nil|nan|tbd|todo|tba|empty|blank|placeholder|lorem ipsum.*|no\s+(output|answer|response)
    |(output|answer|response)\s+(not\s+available|unavailable|missing|here)|(insert|your|add)\s+(the\s+)?
    (answer|output|response|text)(\s+here)?|<\s*no\s*output\s*>|<\s*nooutput\s*>|\.{3,}|-+|\?+)\W*$""",
    re.I | re.X | re.S)
TEMPLATE = re.compile(r"^\s*[\[{<]\s*(insert|your|answer|output|response)[^\]}>]*[\]}>]\s*$", re.I)
REFUSAL_RX = re.compile(r"^\W*(as an ai( language)? model|i'?m sorry,? but i (can(no|')t|am unable)|i (can(no|')t|am "
                        r"unable to) (help|assist|answer|provide|comply))", re.I)


def kind(response: str) -> str:
    """"empty", "placeholder", "refusal" or "" (none)."""
    text = str(response).strip()
    if not text:
        return "empty"
    if len(text) <= 80 and (PLACEHOLDER.match(text) or TEMPLATE.match(text)):
        return "placeholder"
    if REFUSAL_RX.match(text):
        return "refusal"
    return ""


LABEL_SHARE = 0.02  # a non-empty response text this common in the dataset is one of its labels ("None" as an
LABEL_MIN_ROWS = 5  # answer of a multiple-choice set), not a placeholder


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def fit(prompts: Sequence, responses: Sequence[str]) -> frozenset[str]:
    """The dataset's label-like response texts (normalised), which never count as placeholders."""
    from collections import Counter

    counts = Counter(_norm(r) for r in responses if str(r).strip())
    need = max(LABEL_MIN_ROWS, LABEL_SHARE * len(responses))
    return frozenset(t for t, c in counts.items() if c >= need)


def score(model: frozenset[str] | None, prompts: Sequence, responses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw): raw 2 = empty or placeholder, 1 = refusal, 0 = none."""
    labels = model or frozenset()
    kinds = ["" if _norm(r) in labels else kind(r) for r in responses]
    values = np.array([EMPTY if k in ("empty", "placeholder") else REFUSAL if k == "refusal" else 1.0 for k in kinds])
    raw = np.array([2.0 if k in ("empty", "placeholder") else 1.0 if k == "refusal" else 0.0 for k in kinds])
    return values, raw


def fit_rows(rows):
    """The registry entry (kind "dataset"): fitted on the dataset's text, queries scored with the same model."""
    from .dataset import text_signal

    return text_signal(fit, score, rows)
