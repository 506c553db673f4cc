"""`appended`: the response carries a second, appended instruction (merged rows), in [0, 1], higher = more
trustworthy.

Merged rows are a known defect of generated SFT sets: after the answer, the text goes on with "##", "### Instruction:",
"Instruction: ... Output: ..." or a numbered next task ("2. Write a poem about ...") and its answer. Each marker
class is dataset-relative (textrules.rarity_value): a dataset whose responses use markdown headings or role labels
throughout is not penalised for them. A numbered line counts only when it does not continue a list (no item
N - 1 before it), so ordinary numbered lists never fire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .textrules import rarity_value, shares, without_code

NAME = "appended"
MARKERS = (
    ("hashes", re.compile(r"\n\s*#{2,}\s*(\n|$)|\n\s*#{2,}\s*\d+[.)]")),
    ("template", re.compile(r"#{2,}\s*(instruction|input|response|question|answer)\s*:?", re.I)),
    ("role_label", re.compile(r"\n\s*(instruction|input|output|question|human|user|prompt)\s*:\s*\S", re.I)),
)
NUMBERED = re.compile(r"\n\s*\n\s*(\d{1,2})[.)]\s+\S")


@dataclass(frozen=True)
class AppendedModel:
    share: np.ndarray  # share of the dataset's responses showing each marker class (MARKERS + numbered)


def markers(response: str) -> list[bool]:
    """Which marker classes the response shows (MARKERS in order, then a numbered line that starts a new task)."""
    text = "\n" + without_code(str(response))
    out = [bool(rx.search(text)) for _, rx in MARKERS]
    out.append(_new_numbered_task(text))
    return out


def _new_numbered_task(text: str) -> bool:
    """A blank line, then "N." with N >= 2 where no "N-1." item came before: a new task, not a list."""
    for m in NUMBERED.finditer(text):
        n = int(m.group(1))
        if n >= 2 and not re.search(rf"(^|\n)\s*{n - 1}[.)]\s", text[:m.start()]):
            return True
    return False


def _matrix(responses: Sequence[str]) -> np.ndarray:
    return np.array([markers(r) for r in responses], dtype=bool).reshape(len(responses), len(MARKERS) + 1)


def fit(prompts: Sequence, responses: Sequence[str]) -> AppendedModel:
    return AppendedModel(shares(_matrix(responses)))


def score(model: AppendedModel, prompts: Sequence, responses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw): raw = number of marker classes found in the response."""
    fired = _matrix(responses)
    return rarity_value(fired, model.share), fired.sum(axis=1).astype(float)


def fit_rows(rows):
    """The registry entry (kind "dataset"): fitted on the dataset's text, queries scored with the same model."""
    from .dataset import text_signal

    return text_signal(fit, score, rows)
