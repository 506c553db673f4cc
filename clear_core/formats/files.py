"""Reading JSONL, JSON, CSV and Parquet files into plain rows (dicts), with every problem located by line.

Nothing here knows about dataset formats: a loader returns the parsed objects, where they came from (line or row
number), the exact source line for JSONL, and an InputError for every line it could not read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import stat
import sys
from dataclasses import dataclass, field
from json.decoder import JSONDecodeError, JSONDecoder
from json.scanner import make_scanner

from ..errors import InputError
from . import quotes
from .text import ESCAPED_BYTE, bad_bytes, check_encoding, decode

EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet",
              ".pq": "parquet"}
NOT_FILES = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket"))
# The wrapping keys accepted around a JSON array of rows: {"data": [...]}.
JSON_WRAPPERS = ("data", "rows", "examples", "records", "train")

# One C scanner call per line: json.loads would add two regex passes and a few Python frames per row, which is a
# large share of the time on a million short rows.
_scan = make_scanner(JSONDecoder())


@dataclass
class Loaded:
    """Rows of one file as parallel lists (cheaper than a tuple per row on millions of rows)."""

    file_type: str
    lines: list[int] = field(default_factory=list)  # 1-based line (JSONL, CSV) or row (JSON, Parquet)
    objs: list[object] = field(default_factory=list)  # parsed rows; the dataset layer checks they are objects
    texts: list[str] | None = None  # JSONL only: the exact source line of each row
    columns: tuple[str, ...] = ()
    errors: list[InputError] = field(default_factory=list)
    sha256: str = ""


def file_type_of(path: str) -> str:
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in EXTENSIONS:
        raise InputError(path, None, None,
                         f"unsupported file type '{ext or path}'; use .jsonl, .json, .csv or .parquet")
    return EXTENSIONS[ext]


def check_file(path: str) -> None:
    """Raise InputError unless `path` is an existing regular file (a folder or a device is named as such)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(path, None, None, "cannot read the file: no such file") from None
    except OSError as e:
        raise InputError(path, None, None, f"cannot read the file: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in NOT_FILES if test(mode)), "not a regular file")
        raise InputError(path, None, None, f"cannot read the file: it is {kind}, not a dataset file")


def load(path: str, limit: int | None = None) -> Loaded:
    """Read a whole file (or its first `limit` rows, for detection). File-level problems raise InputError."""
    file_type = file_type_of(path)
    check_file(path)
    try:
        data = _read_head(path, limit) if file_type == "jsonl" and limit else open(path, "rb").read()
    except OSError as e:
        raise InputError(path, None, None, f"cannot read the file: {e.strerror or e}") from None
    if not data.strip():
        raise InputError(path, None, None, "the file is empty")
    if file_type != "parquet" and data.startswith(b"PAR1"):
        raise InputError(path, None, None, f"this is a Parquet file, not {file_type.upper()}; rename it to .parquet")
    if file_type != "parquet":
        check_encoding(path, data)
    loaded = {"jsonl": _jsonl, "json": _json, "csv": _csv, "parquet": _parquet}[file_type](path, data, limit)
    if limit is None:
        loaded.sha256 = hashlib.sha256(data).hexdigest()
    return loaded


def _read_head(path: str, limit: int) -> bytes:
    """The first `limit` non-blank lines of a text file, without reading the rest."""
    out, n = [], 0
    with open(path, "rb") as f:
        for raw in f:
            out.append(raw)
            n += bool(raw.strip())
            if n >= limit:
                break
    return b"".join(out)


def _jsonl(path: str, data: bytes, limit: int | None) -> Loaded:
    text, hint = decode(data)
    out = Loaded("jsonl", texts=[])
    lines, objs, texts, errors = out.lines, out.objs, out.texts, out.errors
    # Lines end in \n (a \r before it stays with the line and is written back); a file with CR-only line ends
    # (old Mac tools) is split on \r. JSON text cannot hold a raw CR, so this never splits a row.
    for i, line in enumerate(text.split("\n" if "\n" in text or "\r" not in text else "\r"), 1):
        if not line:
            continue
        if hint is not None and ESCAPED_BYTE.search(line):
            errors.append(bad_bytes(path, i, line, hint))
            continue
        try:
            obj, end = _scan(line, 0)
            if end != len(line) and line[end:].strip():
                raise ValueError("extra data")
        except (StopIteration, ValueError, RecursionError):
            if not line.strip():
                continue
            try:  # the slow path gives json's own message (and accepts leading whitespace)
                obj = json.loads(line)
            except JSONDecodeError as e:
                errors.append(InputError(path, i, None, f"malformed JSON: {e.msg} (column {e.colno})"))
                continue
            except RecursionError:
                errors.append(InputError(path, i, None, "the JSON is nested too deeply to read"))
                continue
        lines.append(i)
        objs.append(obj)
        texts.append(line)
    first = text.split("\n", 1)[0]
    if (not objs and errors and errors[0].line == 1 and errors[0].message.startswith("malformed JSON")
            and "," in first and not first.lstrip().startswith(("{", "["))):
        errors[0] = InputError(path, 1, None, errors[0].message + "; the file looks like CSV, not JSON Lines")
    out.columns = _first_keys(objs)
    return out


def _json(path: str, data: bytes, limit: int | None) -> Loaded:
    text, hint = decode(data)
    if hint is not None:
        line = next(i for i, t in enumerate(text.split("\n"), 1) if ESCAPED_BYTE.search(t))
        raise bad_bytes(path, line, text.split("\n")[line - 1], hint)
    try:
        top = json.loads(text)
    except JSONDecodeError as e:
        first = text.lstrip().split("\n", 1)[0]
        if e.msg == "Extra data" and first.startswith("{"):  # a ".json" file that holds JSON Lines
            return _jsonl(path, data, limit)
        hint = "; the file looks like CSV" if "," in first and not first.startswith(("{", "[")) else ""
        raise InputError(path, e.lineno, None, f"not valid JSON: {e.msg} (column {e.colno}){hint}") from None
    except RecursionError:
        raise InputError(path, None, None, "the JSON is nested too deeply to read") from None
    if isinstance(top, dict):
        wrapped = [k for k in JSON_WRAPPERS if isinstance(top.get(k), list)]
        if not wrapped:
            raise InputError(path, None, None, "expected a JSON array of rows (or {\"data\": [...]}), got an object "
                             f"with keys {list(top)[:8]}")
        top = top[wrapped[0]]
    if not isinstance(top, list):
        raise InputError(path, None, None, f"expected a JSON array of rows, got {type(top).__name__}")
    if not top:
        raise InputError(path, None, None, "the file has no rows (an empty JSON array)")
    rows = top[:limit] if limit else top
    return Loaded("json", lines=list(range(1, len(rows) + 1)), objs=rows, columns=_first_keys(rows))


def _csv(path: str, data: bytes, limit: int | None) -> Loaded:
    text, hint = decode(data)
    # A single field may hold a multi-megabyte response; the csv module refuses fields over 128 KiB by default.
    csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))
    # strict: a quote that does not close a cell is an error instead of being read on, so an unbalanced quote
    # cannot run silently to the end of the file
    source = iter(io.StringIO(text, newline=""))
    reader = csv.reader(source, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise InputError(path, 1, None, f"unreadable CSV header ({e}): an unbalanced quote?") from None
    if not header or not any(h.strip() for h in header):
        raise InputError(path, 1, None, "the CSV file has no header row")
    if reader.line_num > 1:
        raise InputError(path, 1, None, f"the header row runs on to line {reader.line_num}: an unbalanced quote?")
    if hint is not None and ESCAPED_BYTE.search(",".join(header)):
        raise bad_bytes(path, 1, ",".join(header), hint)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(path, 1, dupes[0], "duplicate column name in the header")
    if header[0].lstrip().startswith(("{", "[")):
        raise InputError(path, 1, None, "the file looks like JSON, not CSV; rename it to .json or .jsonl")
    out = Loaded("csv", columns=tuple(header))
    _csv_rows(path, text, hint, header, source, limit, out)
    return out


def _csv_rows(path: str, text: str, hint: str | None, header: list[str], source, limit: int | None,
              out: Loaded) -> None:
    """The data rows of a CSV file into `out`, read from `source` (the file's lines after the header); a row
    spanning several lines, or one the csv module refuses, is checked for rows swallowed by a quote."""
    reader = csv.reader(source, strict=True)
    n, good_lines, objs = len(header), out.lines, out.objs
    lines = None  # the file's lines, split only once a row spans several (the split matches the reader's)
    base, prev = 1, 0  # line numbers: base + the reader's own count
    while True:
        failure = None
        try:
            for row in reader:
                start, end, prev = base + prev + 1, base + reader.line_num, reader.line_num
                if end > start:
                    break
                if not row:
                    continue
                if hint is None and len(row) == n:  # the common case, inline: a million rows pay per call
                    good_lines.append(start)
                    objs.append(dict(zip(header, row)))
                else:
                    _csv_row(path, hint, header, row, start, out)
                if limit and len(objs) >= limit:
                    return
            else:
                return
        except csv.Error as e:  # the reader goes on with the next line
            start, end, prev, failure, row = base + prev + 1, base + reader.line_num, reader.line_num, str(e), []
        if lines is None:
            lines = io.StringIO(text, newline="").readlines()
        error, again = quotes.check(path, header, lines[start - 1:end], row, failure, start)
        if error is not None:
            out.errors.append(error)
        elif row:
            _csv_row(path, hint, header, row, start, out)
        if again:  # the lines it took in are rows: read them again, from the line after its first
            source = itertools.chain(lines[start:end], source)
            reader, base, prev = csv.reader(source, strict=True), start, 0
        if limit and len(out.objs) >= limit:
            return


def _csv_row(path: str, hint: str | None, header: list[str], row: list[str], start: int, out: Loaded) -> None:
    if hint is not None and any(ESCAPED_BYTE.search(v) for v in row):
        out.errors.append(bad_bytes(path, start, ",".join(row), hint))
    elif len(row) != len(header):
        out.errors.append(InputError(path, start, None, f"the row has {len(row)} fields, the header has "
                                     f"{len(header)}"))
    else:
        out.lines.append(start)
        out.objs.append(dict(zip(header, row)))


def _parquet(path: str, data: bytes, limit: int | None) -> Loaded:
    import pyarrow as pa  # imported here: JSONL users never pay for it
    import pyarrow.parquet as pq

    if not (data.startswith(b"PAR1") and data.endswith(b"PAR1")):
        kind = " (it is text)" if _looks_like_text(data) else ""
        raise InputError(path, None, None, f"not a Parquet file{kind}; check the file extension")
    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
        columns = tuple(pf.schema_arrow.names)
        if limit:
            batch = next(pf.iter_batches(batch_size=limit), None)
            rows = batch.to_pylist() if batch is not None else []
        else:
            rows = pf.read().to_pylist()
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InputError(path, None, None, f"unreadable Parquet file: {e}") from None
    if not rows:
        raise InputError(path, None, None, "the Parquet file has no rows")
    return Loaded("parquet", lines=list(range(1, len(rows) + 1)), objs=rows, columns=columns)


def _looks_like_text(data: bytes) -> bool:
    try:
        data[:4096].decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _first_keys(objs: list) -> tuple[str, ...]:
    for obj in objs:
        if isinstance(obj, dict):
            return tuple(obj)
    return ()
