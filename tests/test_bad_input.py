"""Bad input: every problem becomes an InputError naming file, line (or row) and field; never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clear_core.errors import ClearError, InputError, InputErrors
from clear_core.formats import read_dataset, write_dataset

GOOD = {"instruction": "Capital of France?", "input": "", "output": "Paris"}


def jsonl(path: Path, *lines) -> Path:
    """A JSONL file from dicts (dumped) and strings (written as they are)."""
    text = "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def single_error(path: Path, **kwargs) -> InputError:
    """The one InputError a read raises; also checks skip_bad_rows keeps the good rows and reports the bad one."""
    with pytest.raises(InputErrors) as e:
        read_dataset(path, **kwargs)
    assert len(e.value.errors) == 1, [str(x) for x in e.value.errors]
    error = e.value.errors[0]
    assert error.file == str(path)
    assert str(path) in str(e.value)
    return error


# (name, bad row, field named in the error, words in the message); each sits on line 2 between two good rows
BAD_ROWS = [
    ("missing_output", {"instruction": "x", "input": ""}, "output", "missing required field"),
    ("missing_instruction", {"input": "", "output": "y"}, "instruction", "missing required field"),
    ("output_is_list", {"instruction": "x", "output": ["a", "b"]}, "output", "expected a string, got array"),
    ("output_is_number", {"instruction": "x", "output": 4}, "output", "expected a string, got number"),
    ("input_is_object", {"instruction": "x", "input": {"a": 1}, "output": "y"}, "input", "got object"),
    ("empty_output", {"instruction": "x", "output": ""}, "output", "empty"),
    ("whitespace_output", {"instruction": "x", "output": " \n\t "}, "output", "empty"),
    ("null_output", {"instruction": "x", "output": None}, "output", "got null"),
    ("empty_prompt", {"instruction": " ", "input": "", "output": "y"}, "instruction", "prompt is empty"),
    ("system_is_list", {"instruction": "x", "output": "y", "system": ["a"]}, "system", "expected a string"),
    ("bad_history", {"instruction": "x", "output": "y", "history": [["only one"]]}, "history[0]", "pair"),
    ("row_is_array", ["instruction", "output"], None, "expected a JSON object, got array"),
]


@pytest.mark.parametrize("name,row,field,words", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_bad_alpaca_row(tmp_path, name, row, field, words):
    path = jsonl(tmp_path / "d.jsonl", GOOD, row, {**GOOD, "output": "Paris!"})
    error = single_error(path)
    assert (error.line, error.field) == (2, field)
    assert words in error.message


SHAREGPT_BAD = [
    ("not_a_list", {"conversations": "hi"}, "conversations", "expected a list of turns, got string"),
    ("no_assistant", {"conversations": [{"from": "human", "value": "hi"}]}, "conversations", "no assistant turn"),
    ("unknown_speaker", {"conversations": [{"from": "bot", "value": "x"}]}, "conversations[0].from", "unknown speaker"),
    ("value_not_str", {"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": 3}]},
     "conversations[1].value", "expected a string"),
    ("empty_target", {"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": " "}]},
     "conversations[1].value", "empty"),
    ("turn_not_object", {"conversations": ["hi"]}, "conversations[0]", "expected an object"),
]
MESSAGES_BAD = [
    ("not_a_list", {"messages": {"role": "user"}}, "messages", "expected a list of messages, got object"),
    ("content_not_str", {"messages": [{"role": "user", "content": ["a"]}, {"role": "assistant", "content": "b"}]},
     "messages[0].content", "expected a string, got array"),
    ("missing_content", {"messages": [{"role": "user"}, {"role": "assistant", "content": "b"}]},
     "messages[0].content", "missing"),
    ("bad_role", {"messages": [{"role": "robot", "content": "a"}]}, "messages[0].role", "unknown role"),
    ("no_assistant", {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}]},
     "messages", "no assistant turn"),
    ("empty_target", {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]},
     "messages[1].content", "empty"),
]
PROMPT_COMPLETION_BAD = [
    ("missing_completion", {"prompt": "a"}, "completion", "missing required field"),
    ("completion_number", {"prompt": "a", "completion": 5}, "completion", "string or a list of messages"),
    ("prompt_object", {"prompt": {"a": 1}, "completion": "b"}, "prompt", "string or a list of messages"),
    ("completion_no_assistant", {"prompt": "a", "completion": [{"role": "user", "content": "b"}]}, "completion",
     "no assistant turn"),
    ("empty_completion", {"prompt": "a", "completion": "  "}, "completion", "empty"),
]
GOOD_OF = {"sharegpt": {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
           "messages": {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
           "prompt_completion": {"prompt": "a", "completion": "b"}}
CHAT_CASES = ([("sharegpt",) + c for c in SHAREGPT_BAD] + [("messages",) + c for c in MESSAGES_BAD]
              + [("prompt_completion",) + c for c in PROMPT_COMPLETION_BAD])


@pytest.mark.parametrize("fmt,name,row,field,words", CHAT_CASES, ids=[f"{c[0]}-{c[1]}" for c in CHAT_CASES])
def test_bad_chat_row(tmp_path, fmt, name, row, field, words):
    path = jsonl(tmp_path / "c.jsonl", GOOD_OF[fmt], row)
    error = single_error(path, format=fmt)
    assert (error.line, error.field) == (2, field)
    assert words in error.message


def test_malformed_json_line(tmp_path):
    path = jsonl(tmp_path / "m.jsonl", GOOD, '{"instruction": "x", "output": "y"', GOOD, '{"a": 1} trailing')
    with pytest.raises(InputErrors) as e:
        read_dataset(path)
    assert [(x.line, x.field) for x in e.value.errors] == [(2, None), (4, None)]
    assert all("malformed JSON" in x.message for x in e.value.errors)
    assert "and 1 more bad rows" in str(e.value)


def test_skip_bad_rows_keeps_good_rows_and_reports_every_bad_one(tmp_path):
    path = jsonl(tmp_path / "mix.jsonl", GOOD, "{oops", {"instruction": "x"}, {**GOOD, "output": "Lyon"},
                 {"instruction": "x", "output": []}, "", {**GOOD, "output": "Nice"})
    result = read_dataset(path, skip_bad_rows=True)
    assert [(r.line, r.response) for r in result.records] == [(1, "Paris"), (4, "Lyon"), (7, "Nice")]
    assert [(x.line, x.field) for x in result.errors] == [(2, None), (3, "output"), (5, "output")]
    assert all(x.file == str(path) for x in result.errors)


def test_all_rows_bad_raises_even_when_skipping(tmp_path):
    path = jsonl(tmp_path / "bad.jsonl", "{x", "{y")
    with pytest.raises(InputErrors) as e:
        read_dataset(path, skip_bad_rows=True)
    assert [x.line for x in e.value.errors] == [1, 2]


def test_invalid_utf8_is_reported_by_line(tmp_path):
    path = tmp_path / "u.jsonl"
    good = json.dumps(GOOD).encode()
    path.write_bytes(good + b"\n" + good + b"\n" + b'{"instruction": "caf\xe9", "output": "x"}\n' + good + b"\n")
    error = single_error(path)
    assert (error.line, error.field) == (3, None)
    assert "invalid UTF-8" in error.message and "0xe9" in error.message
    assert len(read_dataset(path, skip_bad_rows=True).records) == 3


def test_invalid_utf8_in_csv_and_json(tmp_path):
    csv_path = tmp_path / "u.csv"
    csv_path.write_bytes(b"prompt,response\nhi,there\nbad \xff\xfe,x\nok,fine\n")
    error = single_error(csv_path)
    assert error.line == 3 and "invalid UTF-8" in error.message
    json_path = tmp_path / "u.json"
    json_path.write_bytes(b'[\n{"prompt": "a", "completion": "b"},\n{"prompt": "\xc3", "completion": "b"}\n]')
    with pytest.raises(InputError) as e:
        read_dataset(json_path)
    assert (e.value.file, e.value.line) == (str(json_path), 3) and "invalid UTF-8" in e.value.message


@pytest.mark.parametrize("ext", ["jsonl", "json", "csv", "parquet"])
@pytest.mark.parametrize("content", [b"", b"  \n\n"], ids=["zero_bytes", "whitespace"])
def test_empty_file(tmp_path, ext, content):
    path = tmp_path / f"empty.{ext}"
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        read_dataset(path)
    assert (e.value.file, e.value.line) == (str(path), None) and "empty" in e.value.message


def test_empty_json_array_and_header_only_csv(tmp_path):
    (tmp_path / "a.json").write_text("[]")
    with pytest.raises(InputError, match="no rows"):
        read_dataset(tmp_path / "a.json")
    (tmp_path / "h.csv").write_text("prompt,response\n")
    with pytest.raises(InputError, match="the file has no rows"):
        read_dataset(tmp_path / "h.csv")
    (tmp_path / "n.jsonl").write_text("[1, 2]\n")
    with pytest.raises(InputErrors, match="n.jsonl:1: expected a JSON object, got array"):
        read_dataset(tmp_path / "n.jsonl")


def test_file_that_is_not_what_its_extension_says(tmp_path):
    text_parquet = tmp_path / "t.parquet"
    text_parquet.write_text("prompt,response\na,b\n")
    with pytest.raises(InputError, match="not a Parquet file") as e:
        read_dataset(text_parquet)
    assert e.value.file == str(text_parquet)
    csv_json = tmp_path / "c.json"
    csv_json.write_text("prompt,response\na,b\n")
    with pytest.raises(InputError, match="looks like CSV") as e:
        read_dataset(csv_json)
    assert e.value.line == 1
    csv_jsonl = tmp_path / "c.jsonl"
    csv_jsonl.write_text("prompt,response\na,b\n")
    with pytest.raises(InputErrors, match="looks like CSV"):
        read_dataset(csv_jsonl)
    real = tmp_path / "real.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD]), real)
    as_csv = tmp_path / "p.csv"
    as_csv.write_bytes(real.read_bytes())
    with pytest.raises(InputError, match="Parquet file"):
        read_dataset(as_csv)
    json_csv = tmp_path / "j.csv"
    json_csv.write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(InputError, match="looks like JSON"):
        read_dataset(json_csv)
    truncated = tmp_path / "cut.parquet"
    truncated.write_bytes(real.read_bytes()[:-20] + b"PAR1")
    with pytest.raises(InputError, match="Parquet"):
        read_dataset(truncated)


def test_unsupported_extension_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="unsupported file type '.txt'"):
        read_dataset(tmp_path / "x.txt")
    with pytest.raises(InputError, match="cannot read the file") as e:
        read_dataset(tmp_path / "missing.jsonl")
    assert e.value.file == str(tmp_path / "missing.jsonl")


def test_json_errors(tmp_path):
    broken = tmp_path / "b.json"
    broken.write_text('[\n{"instruction": "a", "output": "b"},\n{"instruction": "a" "output": "b"}\n]')
    with pytest.raises(InputError, match="not valid JSON") as e:
        read_dataset(broken)
    assert e.value.line == 3
    scalar = tmp_path / "s.json"
    scalar.write_text('"just a string"')
    with pytest.raises(InputError, match="JSON array"):
        read_dataset(scalar)
    mixed = tmp_path / "m.json"
    mixed.write_text(json.dumps([GOOD, 5, GOOD]))
    error = single_error(mixed)
    assert (error.line, error.field) == (2, None) and "got number" in error.message


def test_csv_errors_name_the_file_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('prompt,response\na,b\n"two\nlines",\nc,d,extra\ne,f\n', encoding="utf-8")
    with pytest.raises(InputErrors) as e:
        read_dataset(path)
    assert [(x.line, x.field) for x in e.value.errors] == [(3, "response"), (5, None)]
    assert "3 fields, the header has 2" in e.value.errors[1].message
    dup = tmp_path / "dup.csv"
    dup.write_text("prompt,response,prompt\na,b,c\n")
    with pytest.raises(InputError, match="duplicate column") as e2:
        read_dataset(dup)
    assert (e2.value.line, e2.value.field) == (1, "prompt")


def test_message_list_cells_in_csv(tmp_path):
    path = tmp_path / "conv.csv"
    path.write_text('id,conversations\n'
                    'a,"[{""from"": ""human"", ""value"": ""hi""}, {""from"": ""gpt"", ""value"": ""yo""}]"\n'
                    'b,"[{""from"": ""human"", ""value"": ""hi""}]"\n'
                    'c,just text\n'
                    'd,"[not json"\n', encoding="utf-8")
    with pytest.raises(InputErrors) as e:
        read_dataset(path, format="sharegpt")
    assert [(x.line, x.field) for x in e.value.errors] == [(3, "conversations"), (4, "conversations"),
                                                          (5, "conversations")]
    assert "no assistant turn" in e.value.errors[0].message and "got string" in e.value.errors[1].message
    good = read_dataset(path, format="sharegpt", skip_bad_rows=True).records
    assert [(r.row_id, r.response) for r in good] == [("a", "yo")]


def test_mapping_errors(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nq,a\nq2,\n")
    with pytest.raises(InputError) as e:
        read_dataset(path, mapping={"prompt": "{question} {context}", "response": "answer"})
    assert e.value.field == "context" and e.value.line is None
    with pytest.raises(InputError, match="unknown mapping key"):
        read_dataset(path, mapping={"prompt": "question", "answer": "answer"})
    error = single_error(path, mapping={"prompt": "question", "response": "answer"})
    assert (error.line, error.field) == (3, "answer") and "empty" in error.message


def test_alpaca_input_without_instruction(tmp_path):
    path = jsonl(tmp_path / "i.jsonl", {"instruction": "", "input": "Translate: hola", "output": "hello"})
    assert read_dataset(path).records[0].prompt == ({"role": "user", "content": "Translate: hola"},)


def test_huge_row_reads(tmp_path):
    big = "word " * 1_000_000  # 5 MB response
    path = jsonl(tmp_path / "big.jsonl", GOOD, {"instruction": "Repeat", "output": big})
    records = read_dataset(path).records
    assert records[1].response == big
    csv_path = tmp_path / "big.csv"
    write_dataset(csv_path, "csv", [r.original for r in records])
    assert read_dataset(csv_path).records[1].response == big


def test_odd_unicode(tmp_path):
    odd = "emoji 😀 rtl \u05e9\u05dc\u05d5\u05dd zero\u200bwidth nul\u0000 bom\ufeff"
    line2 = '{"instruction": "lone \\ud800 surrogate", "output": "ok \\udfff end"}'
    line3 = '{"instruction": "pair \\ud83d\\ude00", "output": "fine"}'
    path = jsonl(tmp_path / "u.jsonl", {"instruction": odd, "output": odd}, line2, line3)
    result = read_dataset(path)
    assert result.records[0].response == odd
    assert result.records[1].prompt[0]["content"] == "lone \ufffd surrogate"  # scrubbed for display and storage
    assert result.records[1].response == "ok \ufffd end"
    assert result.records[1].original == line2  # the source line itself is untouched
    assert result.records[2].prompt[0]["content"] == "pair 😀"
    out = tmp_path / "back.jsonl"
    write_dataset(out, result.spec, [r.original for r in result.records])
    assert out.read_bytes() == path.read_bytes()
    for ft in ("csv", "json", "parquet"):  # other file types write the scrubbed or escaped text, never crash
        write_dataset(tmp_path / f"o.{ft}", ft, [r.original for r in result.records])
        assert read_dataset(tmp_path / f"o.{ft}").records[0].response == odd


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    deep = '{"instruction": "x", "output": "y", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = jsonl(tmp_path / "deep.jsonl", GOOD, deep)
    error = single_error(path)
    assert error.line == 2 and "nested too deeply" in error.message
    (tmp_path / "deep.json").write_text("[" + deep + "]")
    with pytest.raises(InputError, match="nested too deeply"):
        read_dataset(tmp_path / "deep.json")


def test_raw_control_character_in_a_line_is_a_clear_error(tmp_path):
    path = tmp_path / "nul.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"instruction": "a\x00b", "output": "c"}\n')
    error = single_error(path)
    assert error.line == 2 and "Invalid control character" in error.message


def test_errors_are_clear_errors_with_one_line_messages(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", {"instruction": "x"})
    with pytest.raises(ClearError) as e:
        read_dataset(path)
    assert "\n" not in str(e.value)
    assert e.value.errors[0].as_dict() == {"file": str(path), "line": 1, "field": "output",
                                           "message": "missing required field"}
