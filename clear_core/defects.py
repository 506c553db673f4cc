"""Synthetic text defects for the label-free calibration: the errors real SFT data carries that the text signals
(appended, placeholder, unseen_input, artifacts, arithmetic) look for.

`text_defect(prompt, response, other, rng)` returns one defective (prompt, response, kind) made from a dataset row,
or None when no kind applies: an answer with a second instruction and its answer appended ("append"), an empty or
placeholder answer ("placeholder"), the prompt's input replaced by a link or an attachment marker the answer
cannot have read ("unseen"), stray entities, escapes or control characters ("artifact"), and a worked answer with
one result changed ("arith", only where the answer has arithmetic the arithmetic signal can check). The fitted
weights then give each text signal the say its separation earns, as for the model's signals.

`changed_fact(response, names, rng)` makes the error no text rule sees, a wrong fact ("fact"): one number of the
answer shifted, or one capitalised name (not a sentence's first word) replaced by a name other answers of the
dataset use, so that calibration learns what the model's signals (the least likely token above all) say of it.
"""

from __future__ import annotations

from typing import Any

import re

import numpy as np

from .chat import last_user_text, with_last_user

KINDS = ("append", "placeholder", "unseen", "artifact", "arith")
SEPARATORS = ("\n\n##\n\n", "\n\n### Instruction:\n", "\nInstruction: ", "\n\n2. ")
PLACEHOLDERS = ("", "N/A", "<No Output>", "No output.", "[Answer here]")
UNSEEN = ("Summarize the page at https://example.org/item/{i}", "Describe the attached picture. <image>",
          "What does the attached file say? [Attached: notes.pdf]", "Sum up the video: https://example.org/v/{i}")
ARTIFACTS = ("&amp;", "&quot;", "\\n", "\\t", "\x0b", "\u200b")
FACT_KIND = "fact"
NUMBER = re.compile(r"(?<![\w.,])\d+(?:\.\d+)?(?![\w,]|\.\d)")
# A capitalised word or run of them after a lower-case word or a comma: a name, not a sentence's first word.
NAME = re.compile(r"(?<=[a-z,] )[A-Z][a-z]{2,}(?: [A-Z][a-z]{2,})*")


def _changed_result(response: str, rng: np.random.Generator) -> str | None:
    """The response with the written result of one checkable equation changed, or None."""
    from .signals import arithmetic

    found = [m for m in arithmetic.EQUATION.finditer(response) if arithmetic.evaluate(m.group(1)) is not None]
    if not found:
        return None
    m = found[int(rng.integers(len(found)))]
    value = float(m.group(2).replace(",", "").replace(" ", ""))
    new = value + float(rng.choice([-1, 1])) * max(1.0, round(abs(value) * float(rng.uniform(0.1, 0.4))))
    text = f"{new:.2f}" if "." in m.group(2) else str(int(new))
    return response[:m.start(2)] + text + response[m.end(2):]


def text_defect(prompt: Any, response: str, other: tuple[Any, str], i: int,
                rng: np.random.Generator) -> tuple[Any, str, str] | None:
    """(prompt, response, kind) with one defect drawn among the kinds that apply to the row; `other` is another
    row's (prompt, response), for "append"; i names the row in made-up links."""
    response = str(response)
    kinds = list(KINDS)
    arith = _changed_result(response, rng)
    if arith is None:
        kinds.remove("arith")
    if len(response.split()) < 2:
        kinds.remove("artifact")
    kind = str(rng.choice(kinds))
    if kind == "append":
        sep = str(rng.choice(SEPARATORS))
        return prompt, f"{response}{sep}{last_user_text(other[0])[:300]}\n{str(other[1])[:300]}", kind
    if kind == "placeholder":
        return prompt, str(rng.choice(PLACEHOLDERS)), kind
    if kind == "unseen":
        return with_last_user(prompt, str(rng.choice(UNSEEN)).format(i=i)), response, kind
    if kind == "artifact":
        words = response.split(" ")
        for _ in range(2):
            k = int(rng.integers(len(words)))
            words[k] += str(rng.choice(ARTIFACTS))
        return prompt, " ".join(words), kind
    return prompt, arith, kind


def names(responses) -> list[str]:
    """The distinct capitalised names (NAME) of the responses, in first-seen order: the pool wrong names come from."""
    return list(dict.fromkeys(m.group(0) for r in responses for m in NAME.finditer(str(r))))


def changed_fact(response: str, pool: list[str], rng: np.random.Generator) -> str | None:
    """The response with one number shifted (same form, still non-negative) or one name swapped for another name
    of `pool`; None when the response has neither (or no other name is in the pool)."""
    response = str(response)
    spots = [("number", m) for m in NUMBER.finditer(response)]
    spots += [("name", m) for m in NAME.finditer(response) if any(p != m.group(0) for p in pool)]
    if not spots:
        return None
    what, m = spots[int(rng.integers(len(spots)))]
    if what == "name":
        others = [p for p in pool if p != m.group(0)]
        new = others[int(rng.integers(len(others)))]
    else:
        value = float(m.group(0))
        step = max(1.0, round(abs(value) * float(rng.uniform(0.1, 0.5))))
        shifted = value + step if value < step or rng.random() < 0.5 else value - step
        new = f"{shifted:.{len(m.group(0).partition('.')[2])}f}" if "." in m.group(0) else str(int(shifted))
    return response[:m.start()] + new + response[m.end():]
