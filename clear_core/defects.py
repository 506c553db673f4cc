"""Synthetic text defects for the label-free calibration: the errors real SFT data carries that the text signals
(appended, placeholder, unseen_input, artifacts, arithmetic) look for.

`text_defect(prompt, response, other, rng)` returns one defective (prompt, response, kind) made from a dataset row,
or None when no kind applies: an answer with a second instruction and its answer appended ("append"), an empty or
placeholder answer ("placeholder"), the prompt's input replaced by a link or an attachment marker the answer
cannot have read ("unseen"), stray entities, escapes or control characters ("artifact"), and a worked answer with
one result changed ("arith", only where the answer has arithmetic the arithmetic signal can check). The fitted
weights then give each text signal the say its separation earns, as for the model's signals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .chat import last_user_text, with_last_user

KINDS = ("append", "placeholder", "unseen", "artifact", "arith")
SEPARATORS = ("\n\n##\n\n", "\n\n### Instruction:\n", "\nInstruction: ", "\n\n2. ")
PLACEHOLDERS = ("", "N/A", "<No Output>", "No output.", "[Answer here]")
UNSEEN = ("Summarize the page at https://example.org/item/{i}", "Describe the attached picture. <image>",
          "What does the attached file say? [Attached: notes.pdf]", "Sum up the video: https://example.org/v/{i}")
ARTIFACTS = ("&amp;", "&quot;", "\\n", "\\t", "\x0b", "\u200b")


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
