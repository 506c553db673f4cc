"""ShareGPT: {"conversations": [{"from": "human"|"gpt"|"system"|"user"|"assistant", "value": str}, ...]}.

An optional top-level "system" string (LLaMA-Factory's layout) opens the prompt. The target is the last gpt turn;
the prompt is every turn before it.
"""

from __future__ import annotations

from .spec import RowError, message, require_prompt, require_response, require_str, type_name

NAME = "sharegpt"
KEY = "conversations"
SPEAKERS = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def matches(keys: set[str]) -> bool:
    return KEY in keys


def turns(obj: dict) -> list[dict]:
    """The conversation as role/content messages, validated; raises RowError naming the bad turn."""
    conv = obj.get(KEY)
    if KEY not in obj:
        raise RowError(KEY, "missing required field")
    if not isinstance(conv, list):
        raise RowError(KEY, f"expected a list of turns, got {type_name(conv)}")
    out = []
    for i, turn in enumerate(conv):
        where = f"{KEY}[{i}]"
        if not isinstance(turn, dict):
            raise RowError(where, f"expected an object with 'from' and 'value', got {type_name(turn)}")
        speaker = require_str(turn, "from", f"{where}.from")
        if speaker not in SPEAKERS:
            raise RowError(f"{where}.from", f"unknown speaker '{speaker}'; valid: {', '.join(SPEAKERS)}")
        out.append(message(SPEAKERS[speaker], require_str(turn, "value", f"{where}.value")))
    return out


def last_assistant(messages: list[dict], name: str) -> int:
    """Index of the target turn (the last assistant turn), or a RowError when there is none."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "assistant":
            return i
    raise RowError(name, "the conversation has no assistant turn to use as the response")


def parse(obj: dict, mapping: dict | None = None) -> tuple[tuple[dict, ...], str]:
    messages = turns(obj)
    target = last_assistant(messages, KEY)
    response = require_response(messages[target]["content"], f"{KEY}[{target}].value")
    prompt = messages[:target]
    system = obj.get("system")
    if isinstance(system, str) and system:
        prompt.insert(0, message("system", system))
    elif system is not None and not isinstance(system, str):
        raise RowError("system", f"expected a string, got {type_name(system)}")
    return require_prompt(prompt, KEY), response


def replace(obj: dict, mapping: dict | None, text: str) -> dict:
    target = last_assistant(turns(obj), KEY)
    obj[KEY][target]["value"] = text
    return obj
