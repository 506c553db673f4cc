"""Writing rows back out as JSONL, JSON, CSV or Parquet, atomically (clear_core.atomic: a temp file in the same
folder, renamed over the target once complete).

Rows arrive as their `original` text (a JSONL line or canonical JSON of the record). JSONL and JSON writes pass
the text through untouched, so an untouched JSONL row comes out byte for byte as it came in; CSV and Parquet parse
each row and keep the source's column order.
"""

from __future__ import annotations

import csv
import json
import re
from typing import Iterable, Sequence

from ..atomic import atomic_open, atomic_path
from .spec import SURROGATE, dump_json, plain


def _write_text(path: str, chunks: Iterable[str]) -> None:
    # "replace" only matters for lone surrogates taken from escaped JSON into a CSV cell; UTF-8 cannot hold them.
    with atomic_open(path, errors="replace", newline="") as f:
        f.writelines(chunks)


def extra_values(n: int, extra_columns: dict[str, list] | None) -> dict[str, list]:
    """The extra columns as plain Python lists, checked to hold one value per row; NaN becomes None (JSON has no
    NaN, and a missing score is missing, not a number)."""
    out = {}
    for name, values in (extra_columns or {}).items():
        if len(values) != n:
            raise ValueError(f"extra column '{name}' has {len(values)} values for {n} rows")
        values = values.tolist() if hasattr(values, "tolist") else values
        out[name] = [None if isinstance(v, float) and v != v else v for v in values]
    return out


_quote = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept as is (C implementation)
_encode = json.JSONEncoder(ensure_ascii=False, default=plain).encode


def _json_texts(values: list) -> list[str]:
    """JSON text of each value; strings and numbers take a fast path (these columns have a million rows)."""
    out = []
    for v in values:
        t = type(v)
        if t is str:
            out.append(_quote(v))
        elif v is None:
            out.append("null")
        elif t is float:
            out.append(repr(v) if abs(v) != float("inf") else "null")
        elif t is int:
            out.append(str(v))
        else:
            out.append(_encode(v))
    return out


def _rows_with_extras(originals: Sequence[str], extra_columns: dict[str, list] | None) -> Sequence[str]:
    """Each row's JSON text with the extra keys appended before its closing brace; the row's own text is kept.

    The appended text is built column by column; a row that already has one of the keys is parsed and dumped
    instead, so that the key is overwritten rather than duplicated."""
    extras = extra_values(len(originals), extra_columns)
    if not extras:
        return originals
    quoted = [_quote(k) for k in extras]
    tails = [""] * len(originals)
    for i, (q, values) in enumerate(zip(quoted, extras.values())):
        prefix = ("" if i == 0 else ", ") + q + ": "
        tails = [t + prefix + v for t, v in zip(tails, _json_texts(values))]
    clash = re.compile("|".join(re.escape(q) for q in quoted))
    out = []
    for i, (original, tail) in enumerate(zip(originals, tails)):
        body = original.rstrip()
        if body.endswith("}") and not clash.search(body):
            body = body[:-1].rstrip()
            out.append(body + ("" if body.endswith("{") else ", ") + tail + "}")
        else:
            out.append(dump_json({**json.loads(original), **{k: v[i] for k, v in extras.items()}}))
    return out


def write_jsonl(path: str, originals: Sequence[str], extra_columns: dict[str, list] | None = None) -> None:
    rows = _rows_with_extras(originals, extra_columns)
    _write_text(path, (r + "\n" for r in rows))


def write_json(path: str, originals: Sequence[str], extra_columns: dict[str, list] | None = None) -> None:
    rows = [r.strip() for r in _rows_with_extras(originals, extra_columns)]
    _write_text(path, ["[\n", ",\n".join(rows), "\n]\n" if rows else "]\n"])


def table_columns(originals: Sequence[str], extra_columns: dict[str, list] | None,
                  columns: Sequence[str] = ()) -> dict[str, list]:
    """Every original parsed, as one list per column: the source's columns first, then keys only some rows have,
    then the extra columns (an extra column of the same name replaces the row's value)."""
    extras = extra_values(len(originals), extra_columns)
    rows = [json.loads(o) for o in originals]
    order = dict.fromkeys(columns)
    for r in rows:
        if not r.keys() <= order.keys():
            order.update(dict.fromkeys(r))
    data = {n: [r.get(n) for r in rows] for n in order if n not in extras}
    data.update(extras)
    return data


def cell(value: object) -> str:
    """CSV text of a value: strings as they are, missing as empty, anything else (numbers, nested) as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return _encode(value)


def write_csv(path: str, originals: Sequence[str], extra_columns: dict[str, list] | None = None,
              columns: Sequence[str] = ()) -> None:
    data = table_columns(originals, extra_columns, columns)
    cells = [[v if type(v) is str else cell(v) for v in values] for values in data.values()]
    with atomic_open(path, errors="replace", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(data))
        writer.writerows(zip(*cells))


def write_parquet(path: str, originals: Sequence[str], extra_columns: dict[str, list] | None = None,
                  columns: Sequence[str] = ()) -> None:
    import pyarrow as pa  # imported here: JSONL users never pay for it
    import pyarrow.parquet as pq

    data = table_columns(originals, extra_columns, columns)
    try:
        table = pa.table(data)
    except (pa.ArrowException, UnicodeEncodeError):
        # Mixed types in one column (e.g. numbers and strings from a loose JSON source) or lone surrogates: keep
        # the values as text rather than fail the whole export.
        table = pa.table({n: [None if v is None else SURROGATE.sub("\ufffd", cell(v)) for v in vals]
                          for n, vals in data.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
