"""`arithmetic`: a worked answer whose own arithmetic is wrong, or whose final answer contradicts it; in [0, 1],
higher = more trustworthy.

Every "expression = number" in the response (GSM8K style: "$20/hour * 3 hours = $60", "200 – 96 = 104",
"80,000 * 140% = 112,000") is parsed after dropping units, currency and thousands separators, evaluated safely (+,
-, *, /, x, ×, ÷, %, parentheses; no names), and compared with the number written after "=". A stated final answer
("The answer is 42", "#### 42", "\\boxed{42}") must equal the last computed result. A stated conversion between
two units of one system whose ratio is fixed by definition ("7 days is 168 hours", "there are 60 minutes in an
hour", "a foot has 12 inches": time from seconds to weeks, metric length, mass and volume, imperial length and
mass) must hold too; conversions across systems (miles to kilometres) are often rounded on purpose and are not
checked. Rounding to the written precision is allowed. A row with no checkable statement scores 1.0; one with a
contradiction scores 0.05 (the last checked statement or the final answer) or 0.15 (an earlier step).
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Sequence

import numpy as np

NAME = "arithmetic"
FINAL_WRONG = 0.05
STEP_WRONG = 0.15
NUM = r"\d+(?:[, ]\d{3}(?!\d))*(?:\.\d+)?"  # thousands written 1,000 or 1 000
EQUATION = re.compile(rf"([\d$(][^=\n]*?)=\s*\$?\s*(-?{NUM})(?![\d,.]?\d)(?!\s*[-+*/×÷x]\s*\$?\d)")
FINAL = re.compile(rf"(?:####|answer is:?|\\boxed\{{)\s*\$?\s*(-?{NUM})", re.I)
# Units whose ratios are definitions: name -> (system and quantity, size in the quantity's base unit). Months and
# years (28-31 and 365-366 days), cups and gallons (US or imperial) and tons have no single size and are left out.
_UNIT_SIZES = {
    "time": {"second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600, "hr": 3600, "day": 86400,
             "week": 604800},
    "metric length": {"millimeter": 1e-3, "millimetre": 1e-3, "mm": 1e-3, "centimeter": 1e-2, "centimetre": 1e-2,
                      "cm": 1e-2, "meter": 1, "metre": 1, "kilometer": 1e3, "kilometre": 1e3, "km": 1e3},
    "metric mass": {"milligram": 1e-3, "mg": 1e-3, "gram": 1, "kilogram": 1e3, "kg": 1e3},
    "metric volume": {"milliliter": 1e-3, "millilitre": 1e-3, "ml": 1e-3, "liter": 1, "litre": 1},
    "imperial length": {"inch": 1, "inches": 1, "foot": 12, "feet": 12, "yard": 36, "mile": 63360},
    "imperial mass": {"ounce": 1, "oz": 1, "pound": 16, "lb": 16, "lbs": 16},
}
UNITS = {name: (system, size) for system, sizes in _UNIT_SIZES.items() for name, size in sizes.items()}
_UNIT_HINTS = tuple(sorted({name[:3] for name in UNITS}))  # a text holding none of these names no unit: skipped fast
_UNIT = "(" + "|".join(sorted(UNITS, key=len, reverse=True)) + r")(?:e?s)?\b"
_COUNT = rf"(?<![\w.,/$])({NUM}|an?|one)\s+"
_IS = r"\s+(?:is|are|equals?|makes?|(?:is|are) equal to|=)\s+(?:about\s+|exactly\s+)?"
CONVERSIONS = (  # (pattern, group of the given amount, its unit, group of the stated amount, its unit)
    (re.compile(rf"{_COUNT}{_UNIT}{_IS}({NUM})\s+{_UNIT}", re.I), 1, 2, 3, 4),        # "7 days is 168 hours"
    (re.compile(rf"\bthere\s+(?:are|is)\s+({NUM})\s+{_UNIT}\s+in\s+(?:an?|one|({NUM}))\s+{_UNIT}", re.I),
     3, 4, 1, 2),                                                                    # "there are 60 minutes in an hour"
    (re.compile(rf"{_COUNT}{_UNIT}\s+(?:has|have|contains?)\s+({NUM})\s+{_UNIT}", re.I),
     1, 2, 3, 4),                                                                    # "a foot has 12 inches"
)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


TOKEN = re.compile(r"\d+(?:\.\d+)?|\.\d+|[-+*/()%]|[A-Za-z'][A-Za-z'-]*")
ENGLISH_LETTERS = {"a", "A", "I"}


def _tokens(expr: str) -> str | None:
    """The arithmetic that ends the text left of "=", as Python, units and currency dropped; None when there is
    none, or when it holds a variable ("2x + 3", "n - 1": algebra, not arithmetic)."""
    s = expr.replace("×", "*").replace("÷", "/").replace("–", "-").replace("−", "-").replace("$", "")
    s = re.sub(r"(?<=\d)[, ](?=\d{3}(?!\d))", "", s)
    s = re.sub(r"(?<=\d)\s*[xX]\s*(?=[\d.(])", "*", s)
    s = re.sub(r"/\s*[A-Za-z]+", " ", s)          # "$20/hour" -> "20": a per-unit rate, not a division
    toks = TOKEN.findall(s)
    kept: list[str] = []
    i = len(toks) - 1
    while i >= 0:                               # walk back from "=" while the tokens are arithmetic or units
        t = toks[i]
        if t[0].isalpha() or t[0] == "'":
            j = i - 1
            while j >= 0 and (toks[j][0].isalpha() or toks[j][0] == "'"):
                j -= 1
            if j < 0 or not (toks[j][0].isdigit() or toks[j][0] == "." or toks[j] in "%)"):
                break                           # prose before the expression
            if any(len(w) == 1 and w not in ENGLISH_LETTERS for w in toks[j + 1:i + 1]):
                return None
            i = j
            continue
        kept.insert(0, t)
        i -= 1
    for k in range(len(kept) - 1, 0, -1):       # two operands side by side: the expression starts after them
        if (kept[k - 1][0].isdigit() or kept[k - 1] in ")%" or kept[k - 1][0] == ".") and \
                (kept[k][0].isdigit() or kept[k] in "(." or kept[k][0] == "."):
            kept = kept[k:]
            break
    while kept and kept[0] in "+*/%)":
        kept.pop(0)
    if kept.count("/") > 1 and "(" not in kept:
        return None                             # "7/12 / 1/12": fractions divided, order ambiguous
    text = " ".join(kept).replace(" %", "%")
    text = re.sub(r"(\d+(?:\.\d+)?|\.\d+)%", r"(\1/100)", text)
    if "%" in text or text.count("(") != text.count(")") or not re.search(r"[\d)]\s*[-+*/]\s*[\d(.]", text):
        return None
    return text


def _eval(node):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand)
    raise ValueError("not arithmetic")


def evaluate(expr: str) -> float | None:
    """The value of an arithmetic expression in the response's notation, or None."""
    s = _tokens(expr[-300:])
    if s is None:
        return None
    try:
        return _eval(ast.parse(s, mode="eval"))
    except (ValueError, SyntaxError, ZeroDivisionError, RecursionError):
        return None


def _plain(written: str) -> str:
    """A written number without its thousands separators ("1,000", "1 000" -> "1000")."""
    return written.replace(",", "").replace(" ", "")


def _matches(value: float, written: str) -> bool:
    written = _plain(written)
    target = float(written)
    decimals = len(written.split(".")[1]) if "." in written else 0
    tol = max(0.5 * 10 ** -decimals, 1e-6 * abs(target)) + 1e-9
    # a written integer may be the value rounded or truncated ("33 per box" for 100 / 3), and percentages may be
    # written as 0.2 or 20
    return any(abs(v - target) <= tol or (decimals == 0 and abs(v - target) < 1) for v in (value, value * 100))


def _amount(written: str | None) -> float:
    return 1.0 if written is None or written.lower() in ("a", "an", "one") else float(_plain(written))


def _inside_a_rate(before: str, amount: str | None) -> bool:
    """The amount ends a product ("60 min/week * 2 weeks = ...") or, as "a"/"an", a rate ("1 hour a day = ...")."""
    before = before.rstrip()
    if before[-1:] in tuple("*×x/+-–÷("):
        return True
    word = re.search(r"(\w+)$", before)
    return bool(amount and amount.lower() in ("a", "an") and word
                and re.fullmatch(_UNIT + "|" + NUM, word.group(1), re.I))


def conversions(text: str) -> list[tuple[int, bool]]:
    """(position, holds) of each checkable unit conversion the text states (see the module docstring)."""
    lower = text.lower()
    if not any(hint in lower for hint in _UNIT_HINTS):
        return []
    out = {}
    for pattern, given, given_unit, stated, stated_unit in CONVERSIONS:
        for m in pattern.finditer(text):
            a, b = UNITS[m.group(given_unit).lower()], UNITS[m.group(stated_unit).lower()]
            if a[0] != b[0] or a[1] == b[1] or _inside_a_rate(text[:m.start()], m.group(given)):
                continue  # not two different units of one system, or no conversion
            out.setdefault(m.start(), _matches(_amount(m.group(given)) * a[1] / b[1], m.group(stated)))
    return sorted(out.items())


def check(response: str) -> tuple[float, int, int]:
    """(value, statements checked, contradictions)."""
    text = str(response)
    last = None
    steps = []  # (position, holds) of every equation and conversion checked
    for m in EQUATION.finditer(text):
        value = evaluate(m.group(1))
        if value is None:
            continue
        steps.append((m.start(), _matches(value, m.group(2))))
        last = value
    steps = sorted(steps + conversions(text))
    checked, wrong = len(steps), sum(not ok for _, ok in steps)
    last_wrong = bool(steps) and not steps[-1][1]
    final = FINAL.findall(text)
    if final and last is not None and not _matches(last, final[-1]):
        return FINAL_WRONG, checked, wrong + 1
    if not wrong:
        return 1.0, checked, 0
    return (FINAL_WRONG if last_wrong else STEP_WRONG), checked, wrong


def fit(prompts: Sequence, responses: Sequence[str]) -> None:
    return None


def score(model, prompts: Sequence, responses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values, raw): raw = contradictions found."""
    out = [check(r) for r in responses]
    return np.array([o[0] for o in out], dtype=float), np.array([o[2] for o in out], dtype=float)


def fit_rows(rows):
    """The registry entry (kind "dataset"): fitted on the dataset's text, queries scored with the same model."""
    from .dataset import text_signal

    return text_signal(fit, score, rows)
