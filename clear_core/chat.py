"""Chats built from dataset rows: the few-shot chat, and chat messages flattened to text.

A prompt is a sequence of chat messages ({"role", "content"}). Three things are made of it:
* `few_shot(prompt, examples, max_chars, flatten_examples)`: the row's chat with worked examples ((prompt,
  response) pairs of other rows) as earlier turns. The in-context likelihood (`signals.context`) keeps each
  example's turns as they are, each cut to max_chars; Auto-Correct (`correct`) gives each example's prompt as one
  user turn (`model_text`, its end kept) so that any example reads as one question and its answer.
* `display_text(prompt)`: the text people read and search (the stored `prompt_text` column, the app's previews) and
  in which `form` looks for a response that copies its prompt;
* `model_text(prompt)`: the text a model reads inside another prompt (the pairwise judge's, a flattened example).
`last_user_text` and `with_last_user` read and replace the prompt's last user turn (the question a template wraps,
the input a synthetic defect replaces).
Only these two flattenings exist because their bytes are stored (display) or fed to the model (model), so each
must stay exactly as it is.
"""

from __future__ import annotations

from typing import Sequence

ELLIPSIS = " …"  # marks an example turn cut by few_shot (turns layout)


def display_text(prompt: Sequence[dict] | str) -> str:
    """The prompt as people read it: a single user turn as its text alone, longer conversations as "Role: text"
    blocks (system included) separated by blank lines; a string is returned as it is."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1 and prompt[0]["role"] == "user":
        return prompt[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def model_text(prompt: Sequence[dict]) -> str:
    """The conversation as a model reads it inside another prompt: system turns left out, a lone turn as its text,
    several as "role: text" lines."""
    msgs = [m for m in prompt if m.get("role") != "system"]
    if len(msgs) == 1:
        return str(msgs[0].get("content", ""))
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in msgs)


def cut(text: str, max_chars: int) -> str:
    """text, or its first max_chars characters followed by ELLIPSIS when it is longer."""
    return text if len(text) <= max_chars else text[:max_chars] + ELLIPSIS


def few_shot(prompt: Sequence[dict], examples: Sequence[tuple[Sequence[dict], str]], max_chars: int,
             flatten_examples: bool = False) -> list[dict]:
    """The row's chat with `examples` ((prompt messages, response) pairs) as earlier turns.

    The row's own first system message comes first (the examples' system messages are left out), then each
    example, then the row's own other turns. Each example is either
    * flatten_examples=False: its user / assistant turns as they are and its response as the assistant's, each cut
      to max_chars with `cut` (the start kept, ELLIPSIS appended), or
    * flatten_examples=True: one user turn, `model_text` of its prompt cut to its last max_chars characters (the
      question usually ends a long prompt), and its response cut to its first max_chars characters.
    The result is new dicts; `prompt` is not changed.
    """
    own = [dict(m) for m in prompt]
    turns = [m for m in own if m.get("role") == "system"][:1]
    for ex_prompt, ex_response in examples:
        if flatten_examples:
            turns.append({"role": "user", "content": model_text(ex_prompt)[-max_chars:]})
            turns.append({"role": "assistant", "content": str(ex_response)[:max_chars]})
        else:
            turns += [{"role": m["role"], "content": cut(str(m["content"]), max_chars)} for m in ex_prompt
                      if m.get("role") != "system"]
            turns.append({"role": "assistant", "content": cut(str(ex_response), max_chars)})
    return turns + [m for m in own if m.get("role") != "system"]


def last_user_text(prompt: Sequence[dict] | str) -> str:
    """The text of the last user turn ("" when there is none); a string prompt is its own user turn."""
    if isinstance(prompt, str):
        return prompt
    users = [str(m.get("content", "")) for m in prompt if m.get("role") == "user"]
    return users[-1] if users else ""


def with_last_user(prompt: Sequence[dict] | str, text: str) -> list[dict] | str:
    """The prompt with its last user turn's text replaced (a user turn appended when there is none); a string
    prompt becomes `text`."""
    if isinstance(prompt, str):
        return text
    messages = [dict(m) for m in prompt]
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last is None:
        return messages + [{"role": "user", "content": text}]
    messages[last]["content"] = text
    return messages
