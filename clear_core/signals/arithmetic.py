"""`arithmetic`: a worked answer whose own arithmetic is wrong, or whose final answer contradicts it; in [0, 1],
higher = more trustworthy.

Every "expression = number" in the response (GSM8K style: "$20/hour * 3 hours = $60", "200 – 96 = 104",
"80,000 * 140% = 112,000") is parsed after dropping units, currency and thousands separators, evaluated safely (+,
-, *, /, x, ×, ÷, %, parentheses; no names), and compared with the number written after "=". A stated final answer
("The answer is 42", "#### 42", "\\boxed{42}") must equal the last computed result. Rounding to the written
precision is allowed. A row with no checkable equation scores 1.0; one with a contradiction scores 0.05 (the
final result or final answer) or 0.15 (an intermediate step).
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


def _matches(value: float, written: str) -> bool:
    written = written.replace(",", "").replace(" ", "")
    target = float(written)
    decimals = len(written.split(".")[1]) if "." in written else 0
    tol = max(0.5 * 10 ** -decimals, 1e-6 * abs(target)) + 1e-9
    # a written integer may be the value rounded or truncated ("33 per box" for 100 / 3), and percentages may be
    # written as 0.2 or 20
    return any(abs(v - target) <= tol or (decimals == 0 and abs(v - target) < 1) for v in (value, value * 100))


def check(response: str) -> tuple[float, int, int]:
    """(value, equations checked, contradictions)."""
    text = str(response)
    checked, wrong, last_wrong, last = 0, 0, False, None
    for m in EQUATION.finditer(text):
        value = evaluate(m.group(1))
        if value is None:
            continue
        checked += 1
        ok = _matches(value, m.group(2))
        wrong += not ok
        last_wrong, last = not ok, value
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
