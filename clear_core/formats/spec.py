"""The data types of the formats package: what a dataset file is (FormatSpec) and what one row became (Record)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import InputError
from ..names import FILE_TYPES, FORMATS  # noqa: F401 (the formats package's names; the lists live in names.py)

ROLES = ("system", "user", "assistant")

# Lone UTF-16 surrogates: JSON may carry them escaped ("\ud800"), but they cannot be encoded as UTF-8, so the
# parsed text shown and stored is scrubbed (the original row is kept as it was).
SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class FormatSpec:
    """Everything export needs to write a dataset back; stored as JSON with the dataset."""

    file_type: str  # "jsonl" | "json" | "csv" | "parquet"
    format: str  # one of FORMATS
    mapping: dict | None = None  # columns: {"prompt": COL or "{col} template", "response": COL, "system"?, "id"?}
    columns: tuple[str, ...] = ()  # the source's column / key order (first record's keys for JSON(L))

    def to_json(self) -> str:
        return json.dumps({"file_type": self.file_type, "format": self.format, "mapping": self.mapping,
                           "columns": list(self.columns)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, s: str) -> "FormatSpec":
        d = json.loads(s)
        return cls(d["file_type"], d["format"], d.get("mapping"), tuple(d.get("columns") or ()))


@dataclass(frozen=True)
class Record:
    """One good row: the prompt messages, the target response (last assistant turn) and the row as it came in."""

    line: int  # 1-based line of a JSONL/CSV file (CSV: file line incl. header), 1-based row otherwise
    row_id: str  # the row's own "id" when present and unique in the file, else a short content hash
    prompt: tuple[dict, ...]  # messages before the target: ({"role": ..., "content": str}, ...)
    response: str  # the target: the last assistant turn
    original: str  # JSONL: the exact source line; otherwise canonical JSON of the record


@dataclass
class ReadResult:
    """A read dataset: the good records plus one InputError per bad row (empty unless skip_bad_rows)."""

    path: str
    spec: FormatSpec
    records: list[Record]
    errors: list[InputError] = field(default_factory=list)
    sha256: str = ""


class RowError(Exception):
    """A problem inside one row, raised by the format modules; the reader adds the file and line."""

    def __init__(self, field: str | None, message: str):
        self.field, self.message = field, message
        super().__init__(message)


def type_name(value: object) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number"}.get(type(value), type(value).__name__)


def require_str(obj: dict, key: str, where: str | None = None) -> str:
    """obj[key] as a string, or a RowError naming the field (`where` is the name shown, default `key`)."""
    name = where or key
    if key not in obj:
        raise RowError(name, "missing required field")
    value = obj[key]
    if not isinstance(value, str):
        raise RowError(name, f"expected a string, got {type_name(value)}")
    return value


def require_response(text: str, name: str) -> str:
    """The target response must say something: empty or whitespace-only targets are invalid input."""
    if not text.strip():
        raise RowError(name, "the response is empty")
    return text


def require_prompt(prompt: Sequence[dict], name: str) -> tuple[dict, ...]:
    """The prompt must hold a user turn that says something: the score asks how good the response is to it.
    Every format applies this rule at reading, so a row is never accepted and then refused by scoring."""
    if not any(m["role"] == "user" and m["content"].strip() for m in prompt):
        raise RowError(name, "the prompt is empty (no user turn with text before the response)")
    return tuple(prompt)


def message(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def prompt_text(prompt: Sequence[dict]) -> str:
    """A readable flattening of prompt messages, for display and search.

    A single user turn is shown as its text alone; longer conversations get "Role: text" blocks.
    """
    if len(prompt) == 1 and prompt[0]["role"] == "user":
        return prompt[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def plain(value: object) -> object:
    """JSON fallback for values json cannot write: numpy scalars become Python numbers, anything else (dates,
    decimals, bytes from Parquet) its text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


# Made once: json.dumps with keyword arguments builds a new encoder on every call.
_encode = json.JSONEncoder(ensure_ascii=False, default=plain).encode
_encode_ascii = json.JSONEncoder(ensure_ascii=True, default=plain).encode


def dump_json(obj: object) -> str:
    """Canonical JSON of a record (non-ASCII kept as is); lone surrogates are escaped so the text stays UTF-8 safe."""
    text = _encode(obj)
    return _encode_ascii(obj) if SURROGATE.search(text) else text
