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
    ("gpt_only", {"conversations": [{"from": "gpt", "value": "b"}]}, "conversations", "prompt is empty"),
    ("blank_human", {"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": "b"}]},
     "conversations", "prompt is empty"),
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
    # an empty prompt is refused at reading in every format, as scoring would refuse it later
    ("assistant_only", {"messages": [{"role": "assistant", "content": "b"}]}, "messages", "prompt is empty"),
    ("blank_user", {"messages": [{"role": "user", "content": " \n"}, {"role": "assistant", "content": "b"}]},
     "messages", "prompt is empty"),
    ("system_only", {"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "b"}]},
     "messages", "prompt is empty"),
]
PROMPT_COMPLETION_BAD = [
    ("missing_completion", {"prompt": "a"}, "completion", "missing required field"),
    ("completion_number", {"prompt": "a", "completion": 5}, "completion", "string or a list of messages"),
    ("prompt_object", {"prompt": {"a": 1}, "completion": "b"}, "prompt", "string or a list of messages"),
    ("completion_no_assistant", {"prompt": "a", "completion": [{"role": "user", "content": "b"}]}, "completion",
     "no assistant turn"),
    ("empty_completion", {"prompt": "a", "completion": "  "}, "completion", "empty"),
    ("empty_prompt", {"prompt": " ", "completion": "b"}, "prompt", "prompt is empty"),
    ("system_only_prompt", {"prompt": [{"role": "system", "content": "s"}], "completion": "b"}, "prompt",
     "prompt is empty"),
    ("empty_list_prompt", {"prompt": [], "completion": [{"role": "assistant", "content": "b"}]}, "prompt",
     "prompt is empty"),
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


# --- CSV quotes: an unbalanced quote must not swallow the rows after it -----------------------------------------

HEADER = "prompt,response\n"
SWALLOWED = [  # (name, text after the header, (line, field) of the error, lines of the rows read when skipping)
    ("never_closed", 'a,b\nc,"d\ne,f\ng,h\n', (3, "response"), [2, 4, 5]),
    ("closed_by_a_later_cell", 'a,b\nc,"d\ne,f\ng,"h"\ni,j\n', (3, "response"), [2, 4, 5, 6]),
    ("in_the_first_column", '"a,b\nc,d\ne,f\ng,h\n', (2, "prompt"), [3, 4, 5]),
    ("wrong_field_count", '"a,b\nc,d\ne,f"\ng,h\n', (2, "prompt"), [3, 4, 5]),
    ("two_stray_quotes", 'a,b\nc,"d\ne,f\ng,h"\ni,j\n', (3, "response"), [2, 6]),  # lines 3-5 read as one row
]


@pytest.mark.parametrize("name,body,where,kept", SWALLOWED, ids=[c[0] for c in SWALLOWED])
def test_csv_unbalanced_quote_is_an_error_not_lost_rows(tmp_path, name, body, where, kept):
    path = tmp_path / "q.csv"
    path.write_text(HEADER + body, encoding="utf-8", newline="")
    error = single_error(path)
    assert (error.line, error.field) == where
    assert "unbalanced quote" in error.message and '""' in error.message
    result = read_dataset(path, skip_bad_rows=True)
    assert [r.line for r in result.records] == kept


def test_csv_legit_multi_line_cells_still_read(tmp_path):
    rows = [("a", "Sure,\nhere it is, enjoy"), ("def f(a,b):\n    return g(a,b)", "code"),
            ("x\ny", "z"), ("c", "line one\r\nline two\r\nline three"), ("q", 'he said ""hi"", twice\nok')]
    body = "".join(",".join('"' + cell + '"' for cell in row) + "\n" for row in rows)
    path = tmp_path / "multi.csv"
    path.write_text(HEADER + body, encoding="utf-8", newline="")
    records = read_dataset(path).records
    assert [(r.prompt[0]["content"], r.response) for r in records] == [
        (p, r.replace('""', '"')) for p, r in rows]
    assert [r.line for r in records] == [2, 4, 6, 8, 11]
    out = tmp_path / "back.csv"  # what our own writer writes reads back unchanged
    write_dataset(out, read_dataset(path).spec, [r.original for r in records])
    assert [(r.prompt, r.response) for r in read_dataset(out).records] == [(r.prompt, r.response) for r in records]


def test_csv_malformed_quote_on_one_line_names_line_and_field(tmp_path):
    path = tmp_path / "inner.csv"
    path.write_text(HEADER + 'a,b\nc,"he said "hi" ok"\ne,f\n', encoding="utf-8")
    error = single_error(path)
    assert (error.line, error.field) == (3, "response") and "malformed quotes" in error.message
    assert [r.line for r in read_dataset(path, skip_bad_rows=True).records] == [2, 4]
    header = tmp_path / "header.csv"
    header.write_text('"prompt,response\na,b\n', encoding="utf-8")
    with pytest.raises(InputError, match="unbalanced quote") as e:
        read_dataset(header)
    assert e.value.line == 1


# --- detection by majority: one stray row cannot decide the format ----------------------------------------------

MSG = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


@pytest.mark.parametrize("stray_at", [1, 500, 1001])
def test_one_stray_row_does_not_decide_the_format(tmp_path, stray_at):
    rows = [{**GOOD, "output": f"Paris {i}"} for i in range(1000)]
    rows.insert(stray_at - 1, MSG)
    path = jsonl(tmp_path / "mixed.jsonl", *rows)
    error = single_error(path)
    assert (error.line, error.field) == (stray_at, "instruction")
    assert "messages format" in error.message and "rows are alpaca" in error.message
    result = read_dataset(path, skip_bad_rows=True)
    assert result.spec.format == "alpaca" and len(result.records) == 1000
    assert result.spec.columns == ("instruction", "input", "output")  # the majority's keys, not the stray row's


def test_one_stray_alpaca_row_among_messages_rows(tmp_path):
    path = jsonl(tmp_path / "m.jsonl", *([MSG] * 30 + [GOOD] + [MSG] * 30))
    error = single_error(path)
    assert (error.line, error.field) == (31, "messages") and "alpaca format" in error.message
    assert len(read_dataset(path, skip_bad_rows=True).records) == 60


def test_most_rows_of_the_file_decide_even_past_the_first_rows(tmp_path):
    path = jsonl(tmp_path / "late.jsonl", *([MSG] * 50 + [GOOD] * 200))
    result = read_dataset(path, skip_bad_rows=True)
    assert result.spec.format == "alpaca" and len(result.records) == 200
    assert [e.line for e in result.errors] == list(range(1, 51))


def test_a_file_mixing_formats_evenly_is_refused_naming_lines(tmp_path):
    path = jsonl(tmp_path / "even.jsonl", GOOD, MSG, GOOD, MSG)
    with pytest.raises(InputError, match="mix dataset formats") as e:
        read_dataset(path, skip_bad_rows=True)
    assert "2 alpaca rows (first at line 1)" in str(e.value) and "2 messages rows (first at line 2)" in str(e.value)
    assert len(read_dataset(path, format="messages", skip_bad_rows=True).records) == 2


# --- encodings, line endings and paths that are not files -------------------------------------------------------

ROW_TEXT = json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "output": "Lyon"}) + "\n"
WIDE = [("utf-16", "UTF-16 with a byte-order mark"), ("utf-16-be", "UTF-16BE without a byte-order mark"),
        ("utf-16-le", "UTF-16LE without a byte-order mark"), ("utf-32", "UTF-32 with a byte-order mark"),
        ("utf-32-le", "UTF-32LE without a byte-order mark")]


@pytest.mark.parametrize("ext", ["jsonl", "json", "csv"])
@pytest.mark.parametrize("encoding,named", WIDE, ids=[w[0] for w in WIDE])
def test_utf16_and_utf32_files_are_named(tmp_path, ext, encoding, named):
    text = {"jsonl": ROW_TEXT, "json": json.dumps([GOOD, GOOD]), "csv": "prompt,response\na,b\nc,d\n"}[ext]
    path = tmp_path / f"wide.{ext}"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(InputError) as e:
        read_dataset(path)
    assert e.value.file == str(path) and f"the file is {named}, not UTF-8" in e.value.message
    assert "convert it to UTF-8" in e.value.message and "CSV" not in e.value.message


def test_latin1_file_says_not_utf8_by_line_and_not_csv(tmp_path):
    path = tmp_path / "latin.jsonl"
    lines = [{"instruction": "Café, crème?", "output": "Oui"}, GOOD, {"instruction": "Zürich", "output": "ja"}]
    path.write_bytes("\n".join(json.dumps(x, ensure_ascii=False) for x in lines).encode("latin-1") + b"\n")
    with pytest.raises(InputErrors) as e:
        read_dataset(path)
    assert [x.line for x in e.value.errors] == [1, 3]
    assert all("not UTF-8" in x.message and "Latin-1" in x.message for x in e.value.errors)
    assert "CSV" not in str(e.value)


@pytest.mark.parametrize("ext", ["jsonl", "csv"])
def test_cr_only_line_endings(tmp_path, ext):
    path = tmp_path / f"mac.{ext}"
    rows = [json.dumps(GOOD), json.dumps({**GOOD, "output": "Lyon"}), json.dumps({**GOOD, "output": "Nice"})]
    if ext == "csv":
        rows = ["instruction,input,output", "a,,Paris", "b,,Lyon", "c,,Nice"]
    path.write_bytes("\r".join(rows).encode() + b"\r")
    records = read_dataset(path).records
    assert [r.response for r in records] == ["Paris", "Lyon", "Nice"]
    assert [r.line for r in records] == ([1, 2, 3] if ext == "jsonl" else [2, 3, 4])


def test_a_directory_or_a_device_is_named_as_such(tmp_path):
    folder = tmp_path / "data.jsonl"
    folder.mkdir()
    with pytest.raises(InputError, match="it is a directory, not a dataset file"):
        read_dataset(folder)
    from clear_core.formats.files import check_file

    with pytest.raises(InputError, match="it is a character device"):
        check_file("/dev/null")
    with pytest.raises(InputError, match="no such file"):
        check_file(str(tmp_path / "missing.csv"))
