"""Alpaca: {"instruction", "input", "output"} with optional "system" and "history" ([[user, assistant], ...]).

The prompt is the instruction, plus "\\n\\n" and the input when the input is not empty; the target is "output".
"""

from __future__ import annotations

from .spec import RowError, message, require_str, type_name

NAME = "alpaca"
TARGET = "output"


def matches(keys: set[str]) -> bool:
    return "instruction" in keys and "output" in keys


def parse(obj: dict, mapping: dict | None = None) -> tuple[tuple[dict, ...], str]:
    instruction, extra, response = obj.get("instruction"), obj.get("input"), obj.get(TARGET)
    if type(instruction) is not str or type(response) is not str or not (extra is None or type(extra) is str):
        _type_error(obj)
    if not response or response.isspace():
        raise RowError(TARGET, "the response is empty")
    user = instruction
    if extra and not extra.isspace():
        user = instruction + "\n\n" + extra if instruction else extra
    if not user or user.isspace():
        raise RowError("instruction", "the prompt is empty (no instruction and no input)")
    if "system" not in obj and "history" not in obj:  # the common case, kept cheap for million-row files
        return (message("user", user),), response
    return (*_system(obj.get("system")), *_history(obj.get("history")), message("user", user)), response


def _type_error(obj: dict) -> None:
    """Raise the RowError naming the first missing or mistyped field."""
    require_str(obj, "instruction")
    require_str(obj, TARGET)
    raise RowError("input", f"expected a string, got {type_name(obj['input'])}")


def _system(system: object) -> list[dict]:
    if system is None or system == "":
        return []
    if not isinstance(system, str):
        raise RowError("system", f"expected a string, got {type_name(system)}")
    return [message("system", system)]


def _history(history: object) -> list[dict]:
    """LLaMA-Factory's history: earlier [user, assistant] turns, oldest first."""
    if not history:
        return []
    if not isinstance(history, list):
        raise RowError("history", f"expected a list of [user, assistant] pairs, got {type_name(history)}")
    turns = []
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise RowError(f"history[{i}]", "expected a [user, assistant] pair of strings")
        turns += [message("user", pair[0]), message("assistant", pair[1])]
    return turns


def replace(obj: dict, mapping: dict | None, text: str) -> dict:
    obj[TARGET] = text
    return obj
