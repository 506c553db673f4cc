"""Telling an unbalanced quote in a CSV file from a quoted cell that rightly spans lines.

A cell that opens with a quote runs on, newlines included, to the next quote. When that quote is missing, the
cell takes in the rows after it: a 4-row file reads as 2 rows, with no error. The reader runs the csv module in
strict mode, so a cell that never closes, or closes on a quote followed by more text, is an error; but two stray
quotes can pair up and close cleanly. Both cases are told apart from a legit multi-line cell by the lines the cell
took in: lines that parse on their own as a full row (as many fields as the header, none starting with a space,
which prose after a comma does and a CSV writer never writes) are rows, not text.
"""

from __future__ import annotations

import csv

from ..errors import InputError

DOUBLING = 'a quote inside a cell is written as two ("")'


def check(path: str, header: list[str], lines: list[str], row: list[str], failure: str | None,
          start: int) -> tuple[InputError | None, bool]:
    """The error of a CSV record spanning `lines` (from line `start`) or one the csv module failed on, and whether
    to read on from the line after `start` (the lines it took in are rows) rather than after the record.

    (None, False) means the record is fine as far as quoting goes (a legit multi-line cell; a wrong field count
    is the caller's to report)."""
    n, end = len(header), start + len(lines) - 1
    if failure is None and len(row) == n:
        # Closed cleanly: flagged only when every line between the first and the closing one is a row (two stray
        # quotes that paired up). The closing line tells nothing: in a legit cell of the first column it reads
        # `text",next cell`, a row's shape too.
        middle = [line for line in lines[1:-1] if line.strip()]
        if not (n >= 2 and middle and all(looks_like_row(line, n) for line in middle)):
            return None, False
        message = (f"unbalanced quotes: the quoted cell that opens here closes only on line {end}, and the lines "
                   f"in between look like rows of their own (lines {start}-{end} make this one bad row)")
        return InputError(path, start, _quote_field(header, lines), f"{message}; {DOUBLING}"), False
    rows = [looks_like_row(line, n) for line in lines[1:] if line.strip()] if n >= 2 else []
    if not any(rows):
        if failure is None:  # a wrong field count, with nothing that looks swallowed
            return None, False
        span = f" in the cell that opens here and runs on to line {end}" if end > start else ""
        message = f"malformed quotes{span} ({failure})"
        return InputError(path, start, _quote_field(header, lines), f"{message}; {DOUBLING}"), False
    closed = "is never closed" if failure == "unexpected end of data" else f"runs on to line {end}"
    message = (f"unbalanced quote: the quoted cell that opens here {closed} and takes in {sum(rows)} line(s) that "
               "look like rows of their own; close it, or")
    return InputError(path, start, _quote_field(header, lines), f"{message} {DOUBLING}"), True


def looks_like_row(line: str, n: int) -> bool:
    """Whether one line, read alone, is a record of `n` fields as a CSV writer writes them."""
    fields = next(csv.reader([line]), [])
    return len(fields) == n and not any(f[:1].isspace() for f in fields)


def _quote_field(header: list[str], lines: list[str]) -> str:
    """The column of the quote at fault, from the record's first line: the cell still open at the line's end when
    the record spans lines, else the first cell left holding a quote."""
    fields = next(csv.reader([lines[0]]), [""])
    col = len(fields) - 1 if len(lines) > 1 else next((i for i, f in enumerate(fields) if '"' in f), len(fields) - 1)
    return header[min(col, len(header) - 1)]
