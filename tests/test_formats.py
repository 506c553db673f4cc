"""Formats: detect, read, write back and replace the target, for every dataset format x file type; sample data."""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clear_core.errors import ClearError, InputError, InputErrors, UnknownNameError
from clear_core.formats import (FormatSpec, apply_response, detect, prompt_text, read_dataset, record_columns,
                                write_dataset)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"

SYS = {"role": "system", "content": "Be brief."}


def user(text):
    return {"role": "user", "content": text}


def bot(text):
    return {"role": "assistant", "content": text}


# Each case: rows as they sit in the file, the expected (prompt, response) of each row, the mapping (columns only),
# the file types it is tested in, and how to reach the target in a row. In CSV, message lists are cells of JSON
# text (what a CSV export writes); Alpaca's history has no such reading and stays out of CSV.
CASES = {
    "alpaca": dict(
        format="alpaca", mapping=None, types=("jsonl", "json", "csv", "parquet"),
        rows=[{"id": "r1", "instruction": "Capital of France?", "input": "", "output": "Paris", "note": "keep"},
              {"id": "r2", "instruction": "Translate", "input": "hola", "output": "hello", "note": "ünï 😀"}],
        expected=[((user("Capital of France?"),), "Paris"), ((user("Translate\n\nhola"),), "hello")],
        target=lambda row: ("output",)),
    "alpaca_system": dict(
        format="alpaca", mapping=None, types=("jsonl", "json", "parquet"),
        rows=[{"instruction": "Next?", "input": "", "output": "Three", "system": "Be brief.",
               "history": [["Count: one?", "One"], ["Then?", "Two"]]}],
        expected=[((SYS, user("Count: one?"), bot("One"), user("Then?"), bot("Two"), user("Next?")), "Three")],
        target=lambda row: ("output",)),
    "sharegpt": dict(
        format="sharegpt", mapping=None, types=("jsonl", "json", "csv", "parquet"),
        rows=[{"id": "s1", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
              {"id": "s2", "conversations": [{"from": "system", "value": "Be brief."},
                                             {"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"},
                                             {"from": "user", "value": "3+3?"}, {"from": "assistant", "value": "6"}]}],
        expected=[((user("Hi"),), "Hello"), ((SYS, user("2+2?"), bot("4"), user("3+3?")), "6")],
        target=lambda row: ("conversations", len(row["conversations"]) - 1, "value")),
    "messages": dict(
        format="messages", mapping=None, types=("jsonl", "json", "csv", "parquet"),
        rows=[{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
              {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                            {"role": "assistant", "content": "4"}, {"role": "user", "content": "3+3?"},
                            {"role": "assistant", "content": "6"}, {"role": "user", "content": "thanks"}]}],
        expected=[((user("Hi"),), "Hello"), ((SYS, user("2+2?"), bot("4"), user("3+3?")), "6")],
        target=lambda row: ("messages", 4 if len(row["messages"]) > 2 else 1, "content")),
    "prompt_completion": dict(
        format="prompt_completion", mapping=None, types=("jsonl", "json", "csv", "parquet"),
        rows=[{"prompt": "Capital of Peru?", "completion": "Lima"}, {"prompt": "2+2?", "completion": "4"}],
        expected=[((user("Capital of Peru?"),), "Lima"), ((user("2+2?"),), "4")],
        target=lambda row: ("completion",)),
    "prompt_completion_lists": dict(
        format="prompt_completion", mapping=None, types=("jsonl", "json", "csv", "parquet"),
        rows=[{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
               "completion": [{"role": "assistant", "content": "4"}]},
              {"prompt": [{"role": "user", "content": "Count"}],
               "completion": [{"role": "assistant", "content": "one"}, {"role": "user", "content": "more"},
                              {"role": "assistant", "content": "two"}]}],
        expected=[((SYS, user("2+2?")), "4"), ((user("Count"), bot("one"), user("more")), "two")],
        target=lambda row: ("completion", len(row["completion"]) - 1, "content")),
    "columns": dict(
        format="columns", mapping={"prompt": "{question}\nOptions: {options}", "response": "answer"},
        types=("jsonl", "json", "csv", "parquet"),
        rows=[{"question": "Red planet?", "options": "Mars; Venus", "answer": "Mars", "source": "quiz"},
              {"question": "Gold symbol?", "options": "Ag; Au", "answer": "Au", "source": ""}],
        expected=[((user("Red planet?\nOptions: Mars; Venus"),), "Mars"),
                  ((user("Gold symbol?\nOptions: Ag; Au"),), "Au")],
        target=lambda row: ("answer",)),
}
MATRIX = [(case, ft) for case, c in CASES.items() for ft in c["types"]]


def write_source(path: Path, file_type: str, rows: list[dict]) -> Path:
    """The fixture file; JSONL deliberately mixes compact and escaped styles so byte identity means something."""
    if file_type == "jsonl":
        lines = [json.dumps(r, separators=(",", ":")) if i % 2 else json.dumps(r, ensure_ascii=False)
                 for i, r in enumerate(rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif file_type == "json":
        path.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    elif file_type == "csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in r.items()}
                             for r in rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def raw_rows(path: Path, file_type: str) -> tuple[list[str], list[dict]]:
    """(columns, rows) of a file, read without the formats package."""
    if file_type == "jsonl":
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        return list(rows[0]), rows
    if file_type == "json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        return list(rows[0]), rows
    if file_type == "csv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames), list(reader)
    table = pq.read_table(path)
    return table.column_names, table.to_pylist()


@pytest.fixture(params=MATRIX, ids=[f"{c}-{t}" for c, t in MATRIX])
def source(request, tmp_path):
    case, file_type = request.param
    c = CASES[case]
    path = write_source(tmp_path / f"{case}.{file_type}", file_type, c["rows"])
    return c, file_type, path


def test_detect(source):
    c, file_type, path = source
    spec = detect(path, mapping=c["mapping"])
    assert (spec.file_type, spec.format, spec.mapping) == (file_type, c["format"], c["mapping"])
    assert spec.columns == tuple(raw_rows(path, file_type)[0])


def test_read_prompt_and_response(source):
    c, file_type, path = source
    result = read_dataset(path, mapping=c["mapping"])
    assert [(r.prompt, r.response) for r in result.records] == c["expected"]
    assert result.errors == []
    assert len(result.sha256) == 64
    _, rows = raw_rows(path, file_type)
    assert [json.loads(r.original) for r in result.records] == rows
    line0 = 2 if file_type == "csv" else 1  # CSV lines count the header
    assert [r.line for r in result.records] == list(range(line0, line0 + len(rows)))


def test_write_back_identical(source, tmp_path):
    c, file_type, path = source
    result = read_dataset(path, mapping=c["mapping"])
    out = tmp_path / f"out.{file_type}"
    write_dataset(out, result.spec, [r.original for r in result.records])
    if file_type == "jsonl":
        assert out.read_bytes() == path.read_bytes()
    assert raw_rows(out, file_type) == raw_rows(path, file_type)
    again = read_dataset(out, mapping=c["mapping"])
    assert [(r.row_id, r.prompt, r.response) for r in again.records] == \
        [(r.row_id, r.prompt, r.response) for r in result.records]


def json_cells(row: dict) -> dict:
    """A CSV row with its JSON-text cells (message lists) parsed, to compare with the nested layouts."""
    return {k: json.loads(v) if isinstance(v, str) and v.startswith("[") else v for k, v in row.items()}


def _set(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def test_apply_response_changes_only_the_target(source, tmp_path):
    c, file_type, path = source
    result = read_dataset(path, mapping=c["mapping"])
    last = result.records[-1]
    new = apply_response(last.original, result.spec, "REPLACED ✓")
    expected = json_cells(copy.deepcopy(json.loads(last.original)))
    _set(expected, c["target"](expected), "REPLACED ✓")
    assert json_cells(json.loads(new)) == expected
    assert list(json.loads(new)) == list(expected)  # key order kept
    out = tmp_path / f"fixed.{file_type}"
    write_dataset(out, result.spec, [r.original for r in result.records[:-1]] + [new])
    fixed = read_dataset(out, mapping=c["mapping"])
    assert fixed.records[-1].response == "REPLACED ✓"
    assert fixed.records[-1].prompt == last.prompt
    assert [r.original for r in fixed.records[:-1]] == [r.original for r in result.records[:-1]]
    if file_type == "jsonl":  # untouched lines stay byte-identical next to the changed one
        assert out.read_bytes().split(b"\n")[:-2] == path.read_bytes().split(b"\n")[:-2]


def test_spec_json_round_trip(source):
    c, _, path = source
    spec = detect(path, mapping=c["mapping"])
    assert FormatSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("target", ["jsonl", "json", "csv", "parquet"])
def test_convert_between_file_types(tmp_path, target):
    src = write_source(tmp_path / "src.jsonl", "jsonl", CASES["alpaca"]["rows"])
    result = read_dataset(src)
    out = tmp_path / f"out.{target}"
    write_dataset(out, target, [r.original for r in result.records])
    assert raw_rows(out, target) == (list(CASES["alpaca"]["rows"][0]), CASES["alpaca"]["rows"])
    again = read_dataset(out)
    assert [(r.prompt, r.response, r.row_id) for r in again.records] == \
        [(r.prompt, r.response, r.row_id) for r in result.records]


def test_nested_values_become_json_text_in_csv(tmp_path):
    src = write_source(tmp_path / "m.jsonl", "jsonl", CASES["messages"]["rows"] + [{"messages": [
        {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "score": 3, "flag": None}])
    result = read_dataset(src)
    out = tmp_path / "m.csv"
    write_dataset(out, "csv", [r.original for r in result.records])
    header, rows = raw_rows(out, "csv")
    assert header == ["messages", "score", "flag"]
    assert json.loads(rows[1]["messages"]) == CASES["messages"]["rows"][1]["messages"]
    assert (rows[0]["score"], rows[2]["score"], rows[2]["flag"]) == ("", "3", "")
    again = read_dataset(out)  # the CSV export of a chat dataset reads back as the same conversations
    assert again.spec.format == "messages"
    assert [(r.prompt, r.response) for r in again.records] == [(r.prompt, r.response) for r in result.records]


@pytest.mark.parametrize("file_type", ["jsonl", "json", "csv", "parquet"])
def test_extra_columns(tmp_path, file_type):
    src = write_source(tmp_path / f"a.{file_type}", file_type, CASES["alpaca"]["rows"])
    result = read_dataset(src)
    out = tmp_path / f"scored.{file_type}"
    extras = {"score": [0.25, 0.75], "decision": ["drop", "keep"]}
    write_dataset(out, result.spec, [r.original for r in result.records], extra_columns=extras)
    header, rows = raw_rows(out, file_type)
    assert header == list(CASES["alpaca"]["rows"][0]) + ["score", "decision"]
    scores = [float(r["score"]) for r in rows]
    assert scores == [0.25, 0.75] and [r["decision"] for r in rows] == ["drop", "keep"]
    assert [{k: r[k] for k in CASES["alpaca"]["rows"][0]} for r in rows] == raw_rows(src, file_type)[1]
    if file_type == "jsonl":  # the source text of each row is kept, the new keys appended before its last brace
        for line, r in zip(out.read_text(encoding="utf-8").splitlines(), result.records):
            assert line.startswith(r.original[:-1])


def test_extra_column_overwrites_existing_key_and_checks_length(tmp_path):
    src = write_source(tmp_path / "a.jsonl", "jsonl", CASES["alpaca"]["rows"])
    result = read_dataset(src)
    out = tmp_path / "o.jsonl"
    write_dataset(out, result.spec, [r.original for r in result.records], extra_columns={"note": ["a", "b"]})
    assert [json.loads(x)["note"] for x in out.read_text(encoding="utf-8").splitlines()] == ["a", "b"]
    assert all(x.count('"note"') == 1 for x in out.read_text(encoding="utf-8").splitlines())
    with pytest.raises(ValueError, match="extra column 'score' has 1 values for 2 rows"):
        write_dataset(out, result.spec, [r.original for r in result.records], extra_columns={"score": [1.0]})


@pytest.mark.parametrize("file_type", ["jsonl", "csv", "parquet"])
def test_extra_columns_nan_and_numpy_values(tmp_path, file_type):
    import numpy as np

    src = write_source(tmp_path / "a.jsonl", "jsonl", CASES["alpaca"]["rows"])
    result = read_dataset(src)
    out = tmp_path / f"o.{file_type}"
    extras = {"score": np.array([np.nan, 0.5], dtype=np.float32), "n": [np.int64(3), None]}
    write_dataset(out, file_type, [r.original for r in result.records], extra_columns=extras)
    _, rows = raw_rows(out, file_type)
    if file_type == "csv":
        assert [(r["score"], r["n"]) for r in rows] == [("", "3"), ("0.5", "")]
    else:
        assert [(r["score"], r["n"]) for r in rows] == [(None, 3), (0.5, None)]
    if file_type == "jsonl":
        assert "NaN" not in out.read_text(encoding="utf-8")


def test_write_is_atomic(tmp_path):
    out = tmp_path / "keep.jsonl"
    out.write_text("old content\n", encoding="utf-8")
    with pytest.raises(TypeError):
        write_dataset(out, "jsonl", ['{"a": 1}', None])
    assert out.read_text(encoding="utf-8") == "old content\n"
    assert os.listdir(tmp_path) == ["keep.jsonl"]  # no temp file left behind
    with pytest.raises(UnknownNameError, match="valid: jsonl, json, csv, parquet"):
        write_dataset(out, "xlsx", ['{"a": 1}'])


def test_a_temp_left_by_a_killed_write_is_removed_by_the_next_write(tmp_path):
    out = tmp_path / "out.jsonl"
    # A write killed by SIGKILL mid-file: no cleanup runs, its temp stays behind.
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from clear_core.formats import write_dataset

        class Row(str):  # the process is killed while the rows are being written
            def __add__(self, other):
                os.kill(os.getpid(), signal.SIGKILL)

        write_dataset({str(out)!r}, "jsonl", ['{{"a": 1}}', Row('{{"a": 2}}')])
        """)], check=False, cwd=ROOT)
    assert killed.returncode == -signal.SIGKILL
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".out.jsonl.") and not out.exists()
    live = tmp_path / f".out.jsonl.{os.getpid()}.00ff.tmp"  # a write under way in a live process is left alone
    live.write_text("")
    write_dataset(out, "jsonl", ['{"a": 1}'])
    assert out.read_text(encoding="utf-8") == '{"a": 1}\n'
    assert sorted(os.listdir(tmp_path)) == sorted(["out.jsonl", live.name])


@pytest.mark.parametrize("file_type", ["jsonl", "json", "csv", "parquet"])
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"])
def test_written_files_follow_the_umask(tmp_path, file_type, umask, mode):
    old = os.umask(umask)
    try:
        write_dataset(tmp_path / f"o.{file_type}", file_type, ['{"a": 1}'])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / f"o.{file_type}").st_mode) == mode


def test_writing_to_a_directory_or_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ClearError, match="it is a directory"):
        write_dataset(tmp_path, "jsonl", ['{"a": 1}'])
    with pytest.raises(ClearError, match="does not exist"):
        write_dataset(tmp_path / "no" / "o.jsonl", "jsonl", ['{"a": 1}'])
    assert os.listdir(tmp_path) == []


def test_row_ids(tmp_path):
    rows = [{"id": "x", "instruction": "a", "output": "1"}, {"id": "x", "instruction": "b", "output": "2"},
            {"id": 7, "instruction": "c", "output": "3"}, {"instruction": "d", "output": "4"},
            {"instruction": "d", "output": "4"}, {"instruction": "d", "output": "4"}]
    path = tmp_path / "ids.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    ids = [r.row_id for r in read_dataset(path).records]
    assert ids[2] == "7"
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids[:2] + ids[3:4])  # duplicated own id -> content hash
    assert ids[0] != ids[1]
    assert ids[4:] == [ids[3] + "-2", ids[3] + "-3"]  # exact duplicates get a suffix
    assert len(set(ids)) == len(ids)
    # the hash is of the content: the same row in another file (other position) gets the same id
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"instruction": "z", "output": "9"}) + "\n" + json.dumps(rows[3]) + "\n")
    assert read_dataset(other).records[1].row_id == ids[3]


def test_own_ids_that_are_blank_or_not_text_get_a_content_hash(tmp_path):
    rows = [{"id": "a", "instruction": "a", "output": "1"}, {"id": " \t", "instruction": "b", "output": "2"},
            {"id": True, "instruction": "c", "output": "3"}, {"id": 12, "instruction": "d", "output": "4"},
            {"id": "", "instruction": "e", "output": "5"}]
    path = tmp_path / "ids.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    ids = [r.row_id for r in read_dataset(path).records]
    assert ids[0] == "a" and ids[3] == "12"
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in (ids[1], ids[2], ids[4]))


def test_columns_auto_mapping_and_id_column(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("key,question,answer,system\nk1,What is 2+2?,4,Be brief.\nk2,Capital of Peru?,Lima,\n",
                    encoding="utf-8")
    spec = detect(path)
    assert spec.format == "columns" and spec.mapping == {"prompt": "question", "response": "answer", "system": "system"}
    records = read_dataset(path, format="columns", mapping={"prompt": "question", "response": "answer",
                                                              "system": "system", "id": "key"}).records
    assert [r.row_id for r in records] == ["k1", "k2"]
    assert records[0].prompt == (SYS, user("What is 2+2?")) and records[1].prompt == (user("Capital of Peru?"),)


def test_csv_keeps_strings_and_na_like_values(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text('prompt,response,n\n"NA",N/A,007\n"multi\nline",null,1.50\n', encoding="utf-8")
    result = read_dataset(path)
    assert [(r.prompt[0]["content"], r.response) for r in result.records] == [("NA", "N/A"), ("multi\nline", "null")]
    assert [r.line for r in result.records] == [2, 3]
    out = tmp_path / "back.csv"
    write_dataset(out, result.spec, [r.original for r in result.records])
    assert raw_rows(out, "csv")[1] == [{"prompt": "NA", "response": "N/A", "n": "007"},
                                       {"prompt": "multi\nline", "response": "null", "n": "1.50"}]


def test_json_wrapped_in_data_key(tmp_path):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": CASES["alpaca"]["rows"]}), encoding="utf-8")
    assert [r.response for r in read_dataset(path).records] == ["Paris", "hello"]


def test_json_file_holding_json_lines(tmp_path):
    path = write_source(tmp_path / "lines.json", "jsonl", CASES["alpaca"]["rows"])
    result = read_dataset(path)
    assert result.spec.file_type == "jsonl" and len(result.records) == 2


def test_prompt_text_and_record_columns(tmp_path):
    assert prompt_text((user("Hi"),)) == "Hi"
    assert prompt_text((SYS, user("Hi"))) == "System: Be brief.\n\nUser: Hi"
    path = write_source(tmp_path / "s.jsonl", "jsonl", CASES["sharegpt"]["rows"])
    records = read_dataset(path).records
    cols = record_columns(records)
    assert list(cols) == ["row_id", "line", "prompt", "prompt_text", "response", "original"]
    assert [json.loads(p) for p in cols["prompt"]] == [list(r.prompt) for r in records]
    assert cols["prompt_text"] == [prompt_text(r.prompt) for r in records]
    assert cols["response"] == ["Hello", "6"] and cols["row_id"] == ["s1", "s2"] and cols["line"] == [1, 2]


def test_detect_errors(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"foo": "a", "bar": "b"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="cannot tell the dataset format") as e:
        detect(path)
    assert (e.value.file, e.value.line) == (str(path), 1)
    with pytest.raises(InputError) as e:
        detect(path, mapping={"prompt": "foo", "response": "answer"})
    assert e.value.field == "answer" and "not in the file" in e.value.message
    with pytest.raises(InputError, match="need 'conversations'"):
        detect(path, format="sharegpt")
    with pytest.raises(UnknownNameError, match="valid: auto, alpaca, sharegpt"):
        detect(path, format="dolly")


# --- the committed sample data -----------------------------------------------------------------------------------

def _make_samples():
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("samples")
    _make_samples().generate(str(out), seed=0, n_rows=400)
    return out


def test_generator_is_deterministic_and_matches_committed_files(generated, tmp_path):
    _make_samples().generate(str(tmp_path), seed=0, n_rows=400)
    names = ["demo.jsonl", "demo_labels.csv"] + [f"examples/{n}" for n in
                                                  ("alpaca.jsonl", "sharegpt.json", "messages.jsonl", "broken.jsonl",
                                                   "prompt_completion.jsonl", "columns.csv")]
    for name in names:
        assert (tmp_path / name).read_bytes() == (generated / name).read_bytes(), name
        assert (SAMPLES / name).read_bytes() == (generated / name).read_bytes(), f"{name} is stale: regenerate it"
    committed = pq.read_table(SAMPLES / "examples" / "alpaca.parquet")
    assert committed.equals(pq.read_table(generated / "examples" / "alpaca.parquet"))
    _make_samples().generate(str(tmp_path / "other"), seed=1, n_rows=400)
    assert (tmp_path / "other" / "demo.jsonl").read_bytes() != (generated / "demo.jsonl").read_bytes()


def _labels():
    with open(SAMPLES / "demo_labels.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_demo_noise_and_labels():
    records = read_dataset(SAMPLES / "demo.jsonl").records
    labels = _labels()
    assert 300 <= len(records) <= 600
    assert [r.row_id for r in records] == [lab["id"] for lab in labels]  # own ids, one label per row, same order
    share = sum(lab["noise"] != "clean" for lab in labels) / len(labels)
    assert 0.20 <= share <= 0.25
    assert {lab["noise"] for lab in labels} == {"clean", "wrong_fact", "swapped", "truncated", "empty_or_na",
                                               "malformed_json", "off_topic"}
    assert len({lab["kind"] for lab in labels}) == 8
    for r, lab in zip(records, labels):
        assert (r.response == lab["clean_response"]) == (lab["noise"] == "clean"), r.row_id
        if lab["noise"] == "malformed_json":
            assert lab["kind"] == "email_to_json"
            with pytest.raises(ValueError):
                json.loads(r.response)
        if lab["noise"] == "truncated":
            assert lab["clean_response"].startswith(r.response) and len(r.response) < len(lab["clean_response"])


def test_demo_clean_answers_are_right():
    """The arithmetic, conversions and email fields of the clean answers check out against their prompts."""
    records = {r.row_id: r for r in read_dataset(SAMPLES / "demo.jsonl").records}
    factors = {("kilometers", "meters"): 1000, ("meters", "centimeters"): 100, ("kilograms", "grams"): 1000,
               ("hours", "minutes"): 60, ("minutes", "seconds"): 60, ("liters", "milliliters"): 1000,
               ("feet", "inches"): 12, ("days", "hours"): 24, ("weeks", "days"): 7}
    checked = 0
    for lab in _labels():
        prompt, answer = records[lab["id"]].prompt[-1]["content"], lab["clean_response"]
        if lab["kind"] == "arithmetic":
            a, op, b, value = re.fullmatch(r"(\d+) ([+\-×]) (\d+) = (-?\d+)", answer).groups()
            assert int(value) == {"+": int(a) + int(b), "-": int(a) - int(b), "×": int(a) * int(b)}[op]
            assert prompt == f"What is {a} {op} {b}?"
        elif lab["kind"] == "unit_conversion":
            n, src, out, dst = re.fullmatch(r"(\d+) (\w+) is (\d+) (\w+)\.", answer).groups()
            assert int(out) == int(n) * factors[(src, dst)]
        elif lab["kind"] == "email_to_json":
            fields = json.loads(answer)
            assert all(v in prompt for v in fields.values()) and list(fields) == ["name", "date", "time"]
        else:
            continue
        checked += 1
    assert checked >= 120


def test_examples_read_as_documented():
    ex = SAMPLES / "examples"
    expected = {"alpaca.jsonl": "alpaca", "alpaca.parquet": "alpaca", "sharegpt.json": "sharegpt",
                "messages.jsonl": "messages", "prompt_completion.jsonl": "prompt_completion"}
    for name, fmt in expected.items():
        result = read_dataset(ex / name)
        assert result.spec.format == fmt and result.records, name
    multi = read_dataset(ex / "messages.jsonl").records[1]
    assert multi.prompt[0]["role"] == "system" and len(multi.prompt) == 4
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    mapping = json.loads(re.search(r'(\{"prompt": "\{question\}.*?\})\n', readme).group(1))
    cols = read_dataset(ex / "columns.csv", mapping=mapping)
    assert cols.records[0].prompt == (user("Which planet is known as the Red Planet?\nOptions: Mars; Venus; Jupiter"),)
    with pytest.raises(InputErrors) as e:
        read_dataset(ex / "broken.jsonl")
    assert [(x.line, x.field) for x in e.value.errors] == [(2, None), (3, "output"), (4, "output"), (5, "output")]
    assert len(read_dataset(ex / "broken.jsonl", skip_bad_rows=True).records) == 2
