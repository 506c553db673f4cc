"""Detect a dataset's format, read it into Records, replace a target response, write rows back out."""

from __future__ import annotations

import gc
import hashlib
import json
from collections import Counter
from itertools import repeat
from typing import Callable, Iterable, NamedTuple, Sequence

from ..errors import InputError, InputErrors, UnknownNameError
from ..names import INGEST_FORMATS
from . import alpaca, columns, messages, sharegpt, writers
from .files import Loaded, load
from .spec import (FILE_TYPES, FORMATS, SURROGATE, FormatSpec, ReadResult, Record, RowError, dump_json,
                   prompt_text, type_name)


class Format(NamedTuple):
    matches: Callable[[set], bool]
    parse: Callable[[dict, dict | None], tuple[tuple[dict, ...], str]]
    replace: Callable[[dict, dict | None, str], dict]
    needs: str  # what the rows must hold, for error messages


REGISTRY: dict[str, Format] = {
    "alpaca": Format(alpaca.matches, alpaca.parse, alpaca.replace, "'instruction' and 'output'"),
    "sharegpt": Format(sharegpt.matches, sharegpt.parse, sharegpt.replace, "'conversations'"),
    "messages": Format(messages.matches_messages, messages.parse_messages, messages.replace_messages, "'messages'"),
    "prompt_completion": Format(messages.matches_prompt_completion, messages.parse_prompt_completion,
                                messages.replace_prompt_completion, "'prompt' and 'completion'"),
    "columns": Format(lambda keys: True, columns.parse, columns.replace, "the mapped columns"),
}
assert tuple(REGISTRY) == FORMATS
DETECT_ORDER = ("messages", "sharegpt", "alpaca", "prompt_completion")
# Fields that hold message lists; a CSV export writes them as JSON text, which reading the CSV parses back.
NESTED = {"sharegpt": ("conversations",), "messages": ("messages",), "prompt_completion": ("prompt", "completion")}
DETECT_ROWS = 50  # rows detect() reads: enough to get past a few bad lines at the top of a file


def detect(path: str, format: str = "auto", mapping: dict | None = None) -> FormatSpec:
    """The FormatSpec of a file, read from its first rows; raises InputError naming the file when undetectable."""
    loaded = load(str(path), limit=DETECT_ROWS)
    return _spec(str(path), loaded, format, mapping)


def _spec(path: str, loaded: Loaded, format: str, mapping: dict | None,
          window: int | None = DETECT_ROWS) -> FormatSpec:
    """The spec of the loaded rows, from the first `window` of them (all when None, or when none of those is an
    object)."""
    if format not in FORMATS and format != "auto":
        raise UnknownNameError("format", format, INGEST_FORMATS)
    dicts = [(line, obj) for line, obj in zip(loaded.lines[:window], loaded.objs[:window]) if isinstance(obj, dict)]
    if not dicts and window is not None:
        dicts = [next(((line, obj) for line, obj in zip(loaded.lines, loaded.objs) if isinstance(obj, dict)), None)]
        dicts = [d for d in dicts if d is not None]
    if not dicts:
        errors = loaded.errors + [InputError(path, line, None, f"expected a JSON object, got {type_name(obj)}")
                                  for line, obj in zip(loaded.lines, loaded.objs)]
        if errors:
            raise InputErrors(sorted(errors, key=lambda e: e.line or 0))
        raise InputError(path, None, None, "the file has no rows")
    # The keys of the first rows together: one row missing a field should not hide the format of the file.
    keys = set().union(*(o for _, o in dicts))
    if format == "auto":
        format = "columns" if mapping else _guess(path, dicts, keys, loaded.columns or tuple(dicts[0][1]))
    elif format != "columns" and not REGISTRY[format].matches(keys):
        raise InputError(path, dicts[0][0], None, f"rows of format '{format}' need {REGISTRY[format].needs}; "
                         f"the rows have {sorted(keys)}")
    # JSON(L) rows have no header: the column order is that of the first row of the file's format
    line, obj = next(((l, o) for l, o in dicts if row_format(o) == format), dicts[0])
    cols = loaded.columns if loaded.file_type in ("csv", "parquet") else tuple(obj)
    if format == "columns":
        mapping = mapping or columns.auto_mapping(cols)
        if mapping is None:
            raise InputError(path, line, None, f"cannot tell the dataset format from the columns {list(cols)}; "
                             "expected alpaca, sharegpt, messages or prompt/completion rows, or a column mapping "
                             "like {\"prompt\": \"question\", \"response\": \"answer\"}")
        try:
            columns.check_mapping(mapping, cols)
        except RowError as e:
            raise InputError(path, None, e.field, e.message) from None
        return FormatSpec(loaded.file_type, "columns", dict(mapping), tuple(cols))
    return FormatSpec(loaded.file_type, format, None, tuple(cols))


def row_format(obj: dict) -> str | None:
    """The format one row's keys say, or None when they fit none."""
    keys = obj.keys()
    found = next((f for f in DETECT_ORDER if REGISTRY[f].matches(keys)), None)
    return found or ("columns" if columns.auto_mapping(tuple(keys)) else None)


def _guess(path: str, dicts: list[tuple[int, dict]], keys: set[str], cols: tuple[str, ...]) -> str:
    """The format most of the first rows have, so that one stray row cannot decide it (the others then report
    their lines as bad rows); a tie is refused. When no row fits any format: one whose main key is there (so
    that the rows then report the field they lack), else "columns"."""
    votes = Counter(f for f in map(row_format, (o for _, o in dicts)) if f)
    ranked = votes.most_common(2)
    if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
        shown = ", ".join(f"{n} {f} rows (first at line {next(l for l, o in dicts if row_format(o) == f)})"
                          for f, n in ranked)
        raise InputError(path, None, None, f"the first {len(dicts)} rows mix dataset formats as often: {shown}; "
                         "choose one with --format")
    if ranked:
        return ranked[0][0]
    found = next((f for f in DETECT_ORDER if REGISTRY[f].matches(keys)), None)
    if found is None and columns.auto_mapping(cols) is None:
        found = "alpaca" if "instruction" in keys else "prompt_completion" if "prompt" in keys else None
    return found or "columns"


def read_dataset(path: str, format: str = "auto", mapping: dict | None = None,
                 skip_bad_rows: bool = False) -> ReadResult:
    """Read every row of a dataset file.

    Each bad row becomes an InputError(file, line, field, message); all of them are collected, and InputErrors is
    raised unless skip_bad_rows, in which case the good rows come back with every error in ReadResult.errors.
    """
    path = str(path)
    # Building millions of small containers triggers the cyclic collector over and over (it looks for cycles
    # that these rows cannot form); pausing it halves the read time of a large file.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        loaded = load(path)
        spec = _spec(path, loaded, format, mapping)
        records, errors, others = _records(path, loaded, spec)
        other, n = (others.most_common(1) or [(None, 0)])[0]
        if format == "auto" and mapping is None and n > len(records):
            # most rows of the file are of another format than most of its first rows: the file decides
            spec = _spec(path, loaded, other, None, window=None)
            records, errors, _ = _records(path, loaded, spec)
    finally:
        if was_enabled:
            gc.enable()
    errors = sorted(loaded.errors + errors, key=lambda e: e.line or 0)
    if errors and not skip_bad_rows:
        raise InputErrors(errors)
    if not records:
        raise InputErrors(errors) if errors else InputError(path, None, None, "the file has no rows")
    return ReadResult(path, spec, records, errors, loaded.sha256)


def _records(path: str, loaded: Loaded, spec: FormatSpec) -> tuple[list[Record], list[InputError], Counter]:
    """The good rows as Records, an InputError per bad row, and how many bad rows are of which other format."""
    parse, mapping = REGISTRY[spec.format].parse, spec.mapping
    nested = NESTED.get(spec.format, ()) if spec.file_type == "csv" else ()
    id_key = (mapping or {}).get("id", "id")
    lines, own_ids, prompts, responses, originals, errors, others = [], [], [], [], [], [], Counter()
    texts = loaded.texts if loaded.texts is not None else repeat(None)
    for line, obj, text in zip(loaded.lines, loaded.objs, texts):
        if type(obj) is not dict:
            errors.append(InputError(path, line, None, f"expected a JSON object, got {type_name(obj)}"))
            continue
        try:
            prompt, response = parse(_json_cells(obj, nested)[0] if nested else obj, mapping)
        except RowError as e:
            other = row_format(obj)
            note = ""
            if other != spec.format and other in DETECT_ORDER:
                others[other] += 1
                note = f"; the row is in the {other} format, the file's rows are {spec.format}"
            errors.append(InputError(path, line, e.field, e.message + note))
            continue
        if text is None:
            text = dump_json(obj)
        if "\\u" in text:  # only escaped JSON can carry lone surrogates into the parsed text
            prompt, response = _scrub(prompt, response)
        own = obj.get(id_key)
        lines.append(line)
        # a non-blank string id (the common case) is taken as is; _own_id decides every other value
        own_ids.append(own if type(own) is str and own.strip() else None if own is None else _own_id(own))
        prompts.append(prompt)
        responses.append(response)
        originals.append(text)
    ids = _row_ids(own_ids, originals)
    return list(map(Record, lines, ids, prompts, responses, originals)), errors, others


def _json_cells(obj: dict, keys: tuple[str, ...]) -> tuple[dict, list[str]]:
    """A copy of a CSV row with its message-list cells (JSON text of a list of objects) parsed, and which keys."""
    out, done = obj, []
    for key in keys:
        cell = obj.get(key)
        if isinstance(cell, str) and cell.lstrip().startswith("["):
            try:
                value = json.loads(cell)
            except (ValueError, RecursionError):
                continue
            if isinstance(value, list) and all(isinstance(m, dict) for m in value):
                out = dict(out) if out is obj else out
                out[key] = value
                done.append(key)
    return out, done


def _scrub(prompt: tuple[dict, ...], response: str) -> tuple[tuple[dict, ...], str]:
    """Lone surrogates become U+FFFD in the parsed text so it can be stored and tokenised as UTF-8."""
    if any(SURROGATE.search(m["content"]) for m in prompt):
        prompt = tuple({**m, "content": SURROGATE.sub("\ufffd", m["content"])} for m in prompt)
    return prompt, SURROGATE.sub("\ufffd", response)


def _own_id(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _row_ids(own_ids: list[str | None], originals: list[str]) -> list[str]:
    """The row's own id where it is unique in the file, else a 12-hex content hash ("-2", "-3" on repeats)."""
    distinct = set(own_ids)
    if len(distinct) == len(own_ids) and None not in distinct:  # every row has its own id, all different
        return own_ids
    blake2b = hashlib.blake2b  # originals are valid UTF-8 text (lone surrogates are escaped), so encode() is safe
    counts = Counter(own_ids)
    counts.pop(None, None)
    if counts:
        ids = [own if own is not None and counts[own] == 1 else blake2b(text.encode(), digest_size=6).hexdigest()
               for own, text in zip(own_ids, originals)]
    else:
        ids = [blake2b(text.encode(), digest_size=6).hexdigest() for text in originals]
    return ids if len(set(ids)) == len(ids) else _suffix_repeats(ids)


def _suffix_repeats(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for rid in ids:
        if rid in seen:
            n = 2
            while f"{rid}-{n}" in seen:
                n += 1
            rid = f"{rid}-{n}"
        seen.add(rid)
        out.append(rid)
    return out


def apply_response(original: str, spec: FormatSpec, new_response: str) -> str:
    """The row's text with only its target response replaced (same kind of text as `original`)."""
    if not isinstance(new_response, str):
        raise TypeError(f"new_response must be a string, got {type(new_response).__name__}")
    obj = json.loads(original)
    obj, cells = _json_cells(obj, NESTED.get(spec.format, ())) if spec.file_type == "csv" else (obj, [])
    obj = REGISTRY[spec.format].replace(obj, spec.mapping, new_response)
    for key in cells:  # back to the JSON text the CSV cell held
        obj[key] = writers.cell(obj[key])
    return dump_json(obj)


def write_dataset(path: str, spec_or_file_type: FormatSpec | str, originals: Iterable[str],
                  extra_columns: dict[str, list] | None = None) -> None:
    """Write rows atomically. With the input's own FormatSpec, untouched originals come out exactly as they came in
    (JSONL byte for byte; other types value for value, same columns in the same order); with another file type each
    row is converted (nested values become JSON text in CSV). extra_columns adds columns (one value per row)."""
    if isinstance(spec_or_file_type, FormatSpec):
        file_type, cols = spec_or_file_type.file_type, spec_or_file_type.columns
    else:
        file_type, cols = str(spec_or_file_type), ()
    if file_type not in FILE_TYPES:
        raise UnknownNameError("file type", file_type, FILE_TYPES)
    rows = originals if isinstance(originals, list) else list(originals)
    if file_type == "jsonl":
        writers.write_jsonl(str(path), rows, extra_columns)
    elif file_type == "json":
        writers.write_json(str(path), rows, extra_columns)
    elif file_type == "csv":
        writers.write_csv(str(path), rows, extra_columns, cols)
    else:
        writers.write_parquet(str(path), rows, extra_columns, cols)


def record_columns(records: Sequence[Record]) -> dict[str, list]:
    """The records as column lists for a bulk insert: row_id, line, prompt (JSON text), prompt_text, response,
    original. One user turn (the common case) skips json.dumps of the whole message list."""
    quote = json.encoder.encode_basestring  # JSON string literal, non-ASCII kept as is
    prompt_json, prompt_flat = [], []
    for r in records:
        p = r.prompt
        if len(p) == 1 and p[0]["role"] == "user":
            prompt_json.append('[{"role": "user", "content": ' + quote(p[0]["content"]) + "}]")
            prompt_flat.append(p[0]["content"])
        else:
            prompt_json.append(json.dumps(list(p), ensure_ascii=False))
            prompt_flat.append(prompt_text(p))
    return {"row_id": [r.row_id for r in records], "line": [r.line for r in records], "prompt": prompt_json,
            "prompt_text": prompt_flat, "response": [r.response for r in records],
            "original": [r.original for r in records]}
