"""`clear-studio ingest | datasets | export` through cli.main, as a user runs them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clear_core.cli import main
from clear_core.formats import read_dataset
from clear_core.store import Workspace

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "sample_data" / "examples"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_reports_rows_and_format_and_is_idempotent(tmp_path, capsys):
    ws = tmp_path / "ws.duckdb"
    code, out, _ = run(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", ws)
    assert code == 0
    assert "imported 4 rows" in out and "'alpaca'" in out and "(alpaca, jsonl)" in out
    code, out, _ = run(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", ws)
    assert code == 0 and "nothing imported" in out
    with Workspace.open(ws) as w:
        assert [(d.name, d.n_rows) for d in w.list_datasets()] == [("alpaca", 4)]


@pytest.mark.parametrize("name, fmt", [("sharegpt.json", "sharegpt, json"), ("columns.csv", "columns, csv"),
                                       ("messages.jsonl", "messages, jsonl"), ("alpaca.parquet", "alpaca, parquet"),
                                       ("prompt_completion.jsonl", "prompt_completion, jsonl")])
def test_ingest_detects_each_sample_format(tmp_path, capsys, name, fmt):
    rows = len(read_dataset(str(EXAMPLES / name)).records)
    code, out, _ = run(capsys, "ingest", EXAMPLES / name, "--workspace", tmp_path / "ws.duckdb", "--name", "x")
    assert code == 0 and f"imported {rows} rows" in out and f"({fmt})" in out
    with Workspace.open(tmp_path / "ws.duckdb") as w:
        assert w.get_dataset("x").n_rows == rows > 0


def test_ingest_with_a_column_mapping(tmp_path, capsys):
    src = tmp_path / "qa.csv"
    src.write_text("q,a,extra\nWhat is 1+1?,2,x\nWhat is 2+2?,4,y\n", encoding="utf-8")
    code, out, _ = run(capsys, "ingest", src, "--prompt-col", "q", "--response-col", "a",
                       "--workspace", tmp_path / "ws.duckdb")
    assert code == 0 and "imported 2 rows" in out and "(columns, csv)" in out
    with Workspace.open(tmp_path / "ws.duckdb") as w:
        rows = w.examples(w.get_dataset("qa").id)
    assert rows["prompt_text"].tolist() == ["What is 1+1?", "What is 2+2?"] and rows["response"].tolist() == ["2", "4"]
    code, _, err = run(capsys, "ingest", src, "--prompt-col", "q", "--workspace", tmp_path / "ws.duckdb")
    assert code == 2 and "--response-col" in err


def test_a_broken_file_exits_2_with_one_line_and_imports_nothing(tmp_path, capsys):
    ws = tmp_path / "ws.duckdb"
    code, out, err = run(capsys, "ingest", EXAMPLES / "broken.jsonl", "--workspace", ws)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "broken.jsonl:2:" in err and "--skip-bad-rows" in err
    assert not ws.exists()  # no empty workspace is left behind
    run(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", ws)
    code, _, _ = run(capsys, "ingest", EXAMPLES / "broken.jsonl", "--workspace", ws)
    with Workspace.open(ws) as w:
        assert code == 2 and [d.name for d in w.list_datasets()] == ["alpaca"]


def test_skip_bad_rows_imports_the_good_rows_and_lists_each_bad_one(tmp_path, capsys):
    code, out, err = run(capsys, "ingest", EXAMPLES / "broken.jsonl", "--skip-bad-rows",
                         "--workspace", tmp_path / "ws.duckdb")
    assert code == 0 and "imported 2 rows" in out and "4 bad rows skipped" in out
    skipped = err.strip().splitlines()
    assert len(skipped) == 4
    assert "broken.jsonl:3: field 'output': missing required field" in skipped[1]
    assert all(line.startswith("skipped ") for line in skipped)


def test_missing_file_and_other_content_under_a_name(tmp_path, capsys):
    ws = tmp_path / "ws.duckdb"
    code, _, err = run(capsys, "ingest", tmp_path / "nope.jsonl", "--workspace", ws)
    assert code == 2 and "no such file" in err
    run(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", ws, "--name", "d")
    code, _, err = run(capsys, "ingest", EXAMPLES / "messages.jsonl", "--workspace", ws, "--name", "d")
    assert code == 2 and "--replace" in err
    code, out, _ = run(capsys, "ingest", EXAMPLES / "messages.jsonl", "--workspace", ws, "--name", "d", "--replace")
    assert code == 0 and "imported 2 rows" in out


def test_datasets_lists_a_table(tmp_path, capsys):
    ws = tmp_path / "ws.duckdb"
    code, _, err = run(capsys, "datasets", "--workspace", ws)
    assert code == 2 and "no workspace" in err and not ws.exists()
    run(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", ws)
    run(capsys, "ingest", EXAMPLES / "columns.csv", "--workspace", ws, "--name", "quiz")
    code, out, _ = run(capsys, "datasets", "--workspace", ws)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["name", "rows", "format", "file", "created"]
    assert lines[1].split()[:3] == ["alpaca", "4", "alpaca/jsonl"] and "alpaca.jsonl" in lines[1]
    assert lines[2].split()[:3] == ["quiz", "3", "columns/csv"]


def test_export_writes_the_curated_file_and_manifest(tmp_path, capsys):
    ws = tmp_path / "ws.duckdb"
    run(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", ws)
    with Workspace.open(ws) as w:
        w.record_decisions(w.get_dataset("alpaca").id, [0], "drop", "ann")
    out = tmp_path / "out.jsonl"
    code, printed, _ = run(capsys, "export", "alpaca", "--to", out, "--workspace", ws)
    assert code == 0 and "wrote 3 of 4 rows" in printed and "manifest" in printed
    source = (EXAMPLES / "alpaca.jsonl").read_text(encoding="utf-8").splitlines()
    assert out.read_text(encoding="utf-8").splitlines() == source[1:]
    assert json.loads(Path(str(out) + ".manifest.json").read_text())["counts"]["dropped"] == 1

    code, _, _ = run(capsys, "export", "alpaca", "--to", tmp_path / "all.csv", "--format", "csv", "--variant", "all",
                     "--workspace", ws)
    header = (tmp_path / "all.csv").read_text(encoding="utf-8").splitlines()[0]
    assert code == 0 and "clear_decision" in header and "clear_row_id" in header


def test_export_errors_exit_2(tmp_path, capsys):
    ws = tmp_path / "ws.duckdb"
    run(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", ws)
    code, _, err = run(capsys, "export", "nope", "--to", tmp_path / "o.jsonl", "--workspace", ws)
    assert code == 2 and "unknown dataset 'nope'; valid: alpaca" in err
    code, _, err = run(capsys, "export", "alpaca", "--to", tmp_path / "o.jsonl", "--drop-below", "0.5",
                       "--workspace", ws)
    assert code == 2 and "score" in err
    code, _, err = run(capsys, "export", "alpaca", "--to", tmp_path / "no" / "o.jsonl", "--workspace", ws)
    assert code == 2 and "does not exist" in err


def test_a_workspace_held_by_another_process_exits_2_with_the_lock_message(tmp_path, capsys):
    ws = tmp_path / "ws.duckdb"
    run(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", ws)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from clear_core.store import Workspace
        ws = Workspace.open({str(ws)!r})
        print("ready", flush=True)
        sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, _, err = run(capsys, "datasets", "--workspace", ws)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "is open in another process" in err and "--workspace" in err
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_ingest_of_a_csv_with_an_unbalanced_quote_names_file_line_and_field(tmp_path, capsys):
    src = tmp_path / "quote.csv"
    src.write_text('prompt,response\na,b\nc,"d\ne,f\ng,h\n', encoding="utf-8")  # 4 rows; row 2 never closes
    code, out, err = run(capsys, "ingest", src, "--workspace", tmp_path / "ws.duckdb")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"{src}:3: field 'response': unbalanced quote" in err
    code, out, err = run(capsys, "ingest", src, "--skip-bad-rows", "--workspace", tmp_path / "ws.duckdb")
    assert code == 0 and "imported 3 rows" in out and "1 bad rows skipped" in out
    assert err.startswith(f"skipped {src}:3:")


def test_skip_bad_rows_keeps_the_majority_format(tmp_path, capsys):
    src = tmp_path / "mixed.jsonl"
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    rows += [{"instruction": f"Question {i}", "input": "", "output": "yes"} for i in range(1000)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, out, err = run(capsys, "ingest", src, "--skip-bad-rows", "--workspace", tmp_path / "ws.duckdb")
    assert code == 0 and "imported 1000 rows" in out and "(alpaca, jsonl, 1 bad rows skipped)" in out
    assert err.strip().splitlines() == [(f"skipped {src}:1: field 'instruction': missing required field; the row is "
                                         "in the messages format, the file's rows are alpaca")]


def test_ingest_of_a_directory_or_a_device_says_so(tmp_path, capsys):
    ws = tmp_path / "ws.duckdb"
    code, _, err = run(capsys, "ingest", tmp_path, "--workspace", ws)
    assert code == 2 and "it is a directory" in err and "no such file" not in err
    code, _, err = run(capsys, "ingest", "/dev/null", "--workspace", ws)
    assert code == 2 and "it is a character device" in err and "no such file" not in err
    assert not ws.exists()


def test_export_to_a_directory_exits_2_with_one_line(tmp_path, capsys):
    ws = tmp_path / "ws.duckdb"
    run(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", ws)
    (tmp_path / "out").mkdir()
    code, out, err = run(capsys, "export", "alpaca", "--to", tmp_path / "out", "--workspace", ws)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: cannot write {tmp_path / 'out'}: it is a directory")
    assert os.listdir(tmp_path / "out") == []


def test_export_files_follow_the_umask(tmp_path, capsys):
    ws = tmp_path / "ws.duckdb"
    run(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", ws)
    old = os.umask(0o022)
    try:
        code, _, _ = run(capsys, "export", "alpaca", "--to", tmp_path / "o.csv", "--format", "csv", "--workspace", ws)
    finally:
        os.umask(old)
    assert code == 0
    for name in ("o.csv", "o.csv.manifest.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_the_parser_is_built_from_the_light_name_lists():
    # The CLI's choices come from clear_core.names alone: building the parser loads no data library and not the
    # formats package (whose readers need them).
    probe = textwrap.dedent("""
        import argparse, json, sys
        from clear_core.cli import build_parser
        from clear_core.names import EXPORT_FORMATS, INGEST_FORMATS

        commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
        choices = {name: list(arg.choices) for name, sub in commands.items() for arg in sub._actions
                   if arg.dest == "format" and arg.choices is not None}
        loaded = sorted(m for m in ("numpy", "pandas", "pyarrow", "duckdb", "clear_core.formats") if m in sys.modules)
        print(json.dumps({"loaded": loaded, "ok": choices == {"ingest": list(INGEST_FORMATS),
                                                             "export": list(EXPORT_FORMATS)}, "choices": choices}))
        """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["loaded"] == [] and got["ok"], got
    assert got["choices"]["export"] == ["same", "jsonl", "json", "csv", "parquet"]
