"""`artifacts`: stray control characters, literal escapes, HTML entities or mojibake that the dataset's other
responses do not have; in [0, 1], higher = more trustworthy.

Scraped and converted data leaves "&amp;", "\\n" written out as two characters, vertical tabs, zero-width spaces
and UTF-8 read as Latin-1 ("Ã©", "â€™") in responses. Each class is dataset-relative (textrules.rarity_value):
a dataset of code or HTML answers, where escapes and entities are normal, is not penalised; code spans are left
out before looking; and a class the row's own prompt shows (the response copies the input's text) does not count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..chat import display_text
from .textrules import rarity_value, shares, without_code

NAME = "artifacts"
CLASSES = (
    ("entity", re.compile(r"&(?:[a-z]{2,8}|#\d{2,5}|#x[0-9a-f]{2,4});", re.I)),
    ("escape", re.compile(r"\\[ntr\"']|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}")),
    ("control", re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\ufffd]")),
    ("mojibake", re.compile(r"Ã[\x80-\xbf©¨§¡¢£¤¥¦ª«¬®¯°±²³´µ¶·¸¹º»¼½¾¿]|â€[™œ\x9d˜“”¦]|Â[ \xa0°·]")),
)


@dataclass(frozen=True)
class ArtifactsModel:
    share: np.ndarray  # share of the dataset's responses showing each class (CLASSES order)


def found(prompt: str, response: str) -> list[bool]:
    """Which classes the response shows outside code and its prompt does not."""
    resp, prom = without_code(str(response)), without_code(str(prompt))
    return [bool(rx.search(resp)) and not rx.search(prom) for _, rx in CLASSES]


def _matrix(prompts: Sequence, responses: Sequence[str]) -> np.ndarray:
    rows = [found(display_text(p), r) for p, r in zip(prompts, responses)]
    return np.array(rows, dtype=bool).reshape(len(rows), len(CLASSES))


def fit(prompts: Sequence, responses: Sequence[str]) -> ArtifactsModel:
    return ArtifactsModel(shares(_matrix(prompts, responses)))


def score(model: ArtifactsModel, prompts: Sequence, responses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw): raw = number of classes found."""
    fired = _matrix(prompts, responses)
    return rarity_value(fired, model.share), fired.sum(axis=1).astype(float)


def fit_rows(rows):
    """The registry entry (kind "dataset"): fitted on the dataset's text, queries scored with the same model."""
    from .dataset import text_signal

    return text_signal(fit, score, rows)
