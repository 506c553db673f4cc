"""`unseen_input`: the prompt's input is something a text-only model cannot see (an attachment marker, a bare
link) while the response answers as if it had seen it; in [0, 1], higher = more trustworthy.

Generated SFT sets hold rows such as "Summarize this article: https://..." or "Describe the picture. <Picture
Attached>" with a fluent, invented answer. The signal fires only when the response neither acknowledges that it
cannot see the input nor uses the link (a tool call or a quoted URL, as tool-use data legitimately does), and, for
links, only when the link is most of what the prompt gives: a long prompt that mentions a URL in passing is fine.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..chat import display_text

NAME = "unseen_input"
MARKER = re.compile(r"<\s*(picture|image|img|photo|video|audio|file|attachment)[^<>]{0,40}>|\[\s*(attached|"
                    r"attachment|image|picture|photo|video)[^\]]{0,60}\]|\(\s*(picture|image|photo) attached\s*\)",
                    re.I)
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')]+", re.I)
ACKNOWLEDGE = re.compile(r"(can(no|')t|unable to|not able to|don'?t have (access|the ability)|no access)\s+(to\s+)?"
                         r"(see|view|access|open|browse|read|watch|listen|display|load)|as a text[- ]based|"
                         r"(image|picture|link|url|file|video|attachment)s? (is|was)n?'?t? (not )?(provided|"
                         r"attached|included|visible)", re.I)
TOOL_CALL = re.compile(r"\b[a-z_][\w.]*\(\s*['\"]", re.I)
MARKER_VALUE = 0.05
URL_VALUE = 0.15
SHORT_WORDS = 25   # prompt words (links removed) at or below which a link is "most of the input"


def check(prompt: str, response: str) -> float:
    """The row's value (1.0 = nothing unseen, or the response copes with it)."""
    prompt, response = str(prompt), str(response)
    if not response.strip() or ACKNOWLEDGE.search(response):
        return 1.0
    if MARKER.search(prompt) and not MARKER.search(response):
        return MARKER_VALUE
    links = URL.findall(prompt)
    if not links:
        return 1.0
    hosts = {re.sub(r"^(https?://)?(www\.)?", "", u.lower()).split("/")[0] for u in links}
    if TOOL_CALL.search(response) or any(h and h in response.lower() for h in hosts):
        return 1.0
    rest = len(URL.sub(" ", prompt).split())
    return URL_VALUE if rest <= SHORT_WORDS else 1.0


def fit(prompts: Sequence, responses: Sequence[str]) -> None:
    return None


def score(model, prompts: Sequence, responses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw): raw = 1 where the row fired."""
    values = np.array([check(display_text(p), r) for p, r in zip(prompts, responses)], dtype=float)
    return values, (values < 1.0).astype(float)


def fit_rows(rows):
    """The registry entry (kind "dataset"): fitted on the dataset's text, queries scored with the same model."""
    from .dataset import text_signal

    return text_signal(fit, score, rows)
