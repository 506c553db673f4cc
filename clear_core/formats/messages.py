"""OpenAI / TRL chat layouts.

- "messages": {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}; the target is the last
  assistant message, the prompt every message before it.
- "prompt_completion": {"prompt": ..., "completion": ...}, each a string or a list of messages (TRL's
  conversational prompt-completion). A string prompt is one user turn; in a list completion the target is its last
  assistant message and the messages before it join the prompt.
"""

from __future__ import annotations

from .sharegpt import last_assistant
from .spec import ROLES, RowError, message, require_prompt, require_response, type_name

MESSAGES = "messages"
PROMPT_COMPLETION = "prompt_completion"


def matches_messages(keys: set[str]) -> bool:
    return MESSAGES in keys


def matches_prompt_completion(keys: set[str]) -> bool:
    return "prompt" in keys and "completion" in keys


def message_list(value: object, name: str) -> list[dict]:
    """Validate a list of role/content messages; raises RowError naming the bad message and field."""
    if not isinstance(value, list):
        raise RowError(name, f"expected a list of messages, got {type_name(value)}")
    out = []
    for i, m in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(m, dict):
            raise RowError(where, f"expected an object with 'role' and 'content', got {type_name(m)}")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            shown = "missing" if "role" not in m else f"unknown role {role!r}"
            raise RowError(f"{where}.role", f"{shown}; valid: {', '.join(ROLES)}")
        if not isinstance(content, str):
            what = "missing required field" if "content" not in m else f"expected a string, got {type_name(content)}"
            raise RowError(f"{where}.content", what)
        out.append(message(role, content))
    return out


def parse_messages(obj: dict, mapping: dict | None = None) -> tuple[tuple[dict, ...], str]:
    if MESSAGES not in obj:
        raise RowError(MESSAGES, "missing required field")
    msgs = message_list(obj[MESSAGES], MESSAGES)
    target = last_assistant(msgs, MESSAGES)
    response = require_response(msgs[target]["content"], f"{MESSAGES}[{target}].content")
    return require_prompt(msgs[:target], MESSAGES), response


def replace_messages(obj: dict, mapping: dict | None, text: str) -> dict:
    target = last_assistant(message_list(obj[MESSAGES], MESSAGES), MESSAGES)
    obj[MESSAGES][target]["content"] = text
    return obj


def parse_prompt_completion(obj: dict, mapping: dict | None = None) -> tuple[tuple[dict, ...], str]:
    for key in ("prompt", "completion"):
        if key not in obj:
            raise RowError(key, "missing required field")
    prompt, completion = obj["prompt"], obj["completion"]
    if isinstance(prompt, str):
        msgs = [message("user", prompt)]
    elif isinstance(prompt, list):
        msgs = message_list(prompt, "prompt")
    else:
        raise RowError("prompt", f"expected a string or a list of messages, got {type_name(prompt)}")
    if isinstance(completion, str):
        return require_prompt(msgs, "prompt"), require_response(completion, "completion")
    if not isinstance(completion, list):
        raise RowError("completion", f"expected a string or a list of messages, got {type_name(completion)}")
    done = message_list(completion, "completion")
    target = last_assistant(done, "completion")
    response = require_response(done[target]["content"], f"completion[{target}].content")
    return require_prompt(msgs + done[:target], "prompt"), response


def replace_prompt_completion(obj: dict, mapping: dict | None, text: str) -> dict:
    if isinstance(obj["completion"], str):
        obj["completion"] = text
    else:
        target = last_assistant(message_list(obj["completion"], "completion"), "completion")
        obj["completion"][target]["content"] = text
    return obj
