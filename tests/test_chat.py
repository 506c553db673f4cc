"""clear_core.chat: the few-shot chat in both example layouts and the two flattenings, each against the rule it
replaces (the in-context likelihood's turns, Auto-Correct's flattened examples, the stored display text)."""

from __future__ import annotations

from clear_core import chat

SYS = {"role": "system", "content": "Be brief."}
ROW = (SYS, {"role": "user", "content": "Capital of Peru?"})
LONG = [(({"role": "system", "content": "other"}, {"role": "user", "content": "Capital of Chile?"}), "Santiago"),
        (({"role": "user", "content": "a" * 30 + "b" * 30}, {"role": "assistant", "content": "mid"},
          {"role": "user", "content": "last " + "z" * 40}), "c" * 30 + "d" * 30)]


def test_turns_layout_keeps_example_turns_cut_with_an_ellipsis():
    msgs = chat.few_shot(ROW, LONG, max_chars=40)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user", "assistant",
                                         "user"]
    assert msgs[0] == SYS and msgs[1]["content"] == "Capital of Chile?" and msgs[2]["content"] == "Santiago"
    assert msgs[3]["content"] == "a" * 30 + "b" * 10 + chat.ELLIPSIS  # the start kept
    assert msgs[4]["content"] == "mid"  # an example's own assistant turn stays a turn
    assert msgs[6]["content"] == "c" * 30 + "d" * 10 + chat.ELLIPSIS
    assert msgs[-1] == ROW[1]
    assert chat.few_shot(ROW, [], 40) == list(ROW)


def test_flattened_layout_gives_each_example_one_user_turn_cut_from_the_left():
    msgs = chat.few_shot(ROW, LONG, max_chars=40, flatten_examples=True)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[1]["content"] == "Capital of Chile?"  # the example's system turn is left out
    flat = chat.model_text(LONG[1][0])
    assert flat.startswith("user: aaa") and "\nassistant: mid\nuser: last" in flat
    assert msgs[3]["content"] == flat[-40:] and msgs[3]["content"].endswith("z" * 40)  # the end kept
    assert msgs[4]["content"] == "c" * 30 + "d" * 10  # the response's start, no ellipsis
    assert msgs[-1] == ROW[1] and msgs[-1] is not ROW[1]  # copies: the row's prompt is not changed


def test_display_text_and_model_text_differ_where_their_uses_need():
    assert chat.display_text(ROW[1:]) == "Capital of Peru?" == chat.model_text(ROW)  # one turn: its text alone
    assert chat.display_text(ROW) == "System: Be brief.\n\nUser: Capital of Peru?"  # the stored prompt_text
    turns = ROW + ({"role": "assistant", "content": "Lima"}, {"role": "user", "content": "Sure?"})
    assert chat.model_text(turns) == "user: Capital of Peru?\nassistant: Lima\nuser: Sure?"
    assert chat.display_text("plain prompt") == "plain prompt"
    assert chat.cut("abc", 3) == "abc" and chat.cut("abcd", 3) == "abc" + chat.ELLIPSIS
