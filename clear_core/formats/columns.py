"""Plain prompt/response columns named by a mapping.

mapping = {"prompt": COL or a template such as "{question}\\nOptions: {options}", "response": COL,
"system": COL (optional), "id": COL (optional)}. Without a mapping, common column pairs are recognised.
"""

from __future__ import annotations

import json
import re

from .spec import RowError, message, require_response, require_str

NAME = "columns"
KEYS = ("prompt", "response", "system", "id")
# Recognised (prompt, response) pairs, in order of preference, when no mapping is given.
PAIRS = (("prompt", "response"), ("question", "answer"), ("instruction", "response"), ("query", "response"),
         ("question", "response"), ("prompt", "answer"), ("input", "output"), ("input", "target"),
         ("text", "label"))
PLACEHOLDER = re.compile(r"\{([^{}\n]+)\}")


def auto_mapping(keys: list[str] | tuple[str, ...]) -> dict | None:
    """The mapping for the first recognised column pair, with "system" when such a column exists."""
    present = set(keys)
    for prompt, response in PAIRS:
        if prompt in present and response in present:
            mapping = {"prompt": prompt, "response": response}
            if "system" in present:
                mapping["system"] = "system"
            return mapping
    return None


def placeholders(template: str) -> list[str]:
    return PLACEHOLDER.findall(template)


def is_template(value: str, keys: set[str]) -> bool:
    return value not in keys and bool(placeholders(value))


def check_mapping(mapping: object, keys: list[str] | tuple[str, ...]) -> None:
    """Raise RowError (field = the mapping key or column) when the mapping does not fit the columns."""
    if not isinstance(mapping, dict):
        raise RowError("mapping", "expected an object like {\"prompt\": COL, \"response\": COL}")
    unknown = [k for k in mapping if k not in KEYS]
    if unknown:
        raise RowError("mapping", f"unknown mapping key(s) {unknown}; valid: {', '.join(KEYS)}")
    for key in ("prompt", "response"):
        if not isinstance(mapping.get(key), str) or not mapping[key]:
            raise RowError("mapping", f"'{key}' must name a column")
    present = set(keys)
    for key, col in mapping.items():
        names = placeholders(col) if key == "prompt" and is_template(col, present) else [col]
        for name in names:
            if name not in present:
                raise RowError(name, f"mapped {key} column '{name}' is not in the file; columns: {', '.join(keys)}")


def _value_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _fill(template: str, obj: dict) -> str:
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in obj:
            raise RowError(name, "missing required field")
        return _value_text(obj[name])
    return PLACEHOLDER.sub(one, template)


def parse(obj: dict, mapping: dict) -> tuple[tuple[dict, ...], str]:
    source = mapping["prompt"]
    user = _fill(source, obj) if source not in obj and placeholders(source) else require_str(obj, source)
    if not user.strip():
        raise RowError(source, "the prompt is empty")
    column = mapping["response"]
    response = require_response(require_str(obj, column), column)
    system_col = mapping.get("system")
    system = require_str(obj, system_col) if system_col and obj.get(system_col) is not None else ""
    prompt = (message("system", system), message("user", user)) if system else (message("user", user),)
    return prompt, response


def replace(obj: dict, mapping: dict, text: str) -> dict:
    obj[mapping["response"]] = text
    return obj
