"""The DuckDB workspace: schema and migrations, datasets, resumable run commits, app queries, the decision log."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from clear_core import filtering
from clear_core.cli import main
from clear_core.config import Thresholds
from clear_core.errors import ClearError, UnknownNameError, WorkspaceLockedError
from clear_core.formats import ReadResult, read_dataset
from clear_core.store import SCHEMA_VERSION, Workspace, long_scores
from clear_core.store.schema import TABLES, current_version, migrate
from clear_core.store.views import band_sql

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "sample_data" / "examples"


def write_alpaca(path: Path, n: int, tag: str = "") -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"r{i}", "instruction": f"Question {i}{tag}?", "input": "",
                                 "output": f"Answer {i}."}) + "\n")
    return path


@pytest.fixture
def ws(tmp_path):
    workspace = Workspace.open(tmp_path / "ws.duckdb")
    yield workspace
    workspace.close()


@pytest.fixture
def data(ws, tmp_path):
    """A 20-row dataset in `ws`."""
    return ws.add_dataset("d", read_dataset(str(write_alpaca(tmp_path / "d.jsonl", 20))))


def count(ws, table: str) -> int:
    assert table in TABLES
    return ws.cursor().execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


# schema --------------------------------------------------------------------------------------------------------

def test_fresh_workspace_has_every_table_and_the_current_version(ws):
    names = {r[0] for r in ws.cursor().execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(TABLES) <= names
    assert current_version(ws.cursor()) == SCHEMA_VERSION


def test_an_older_workspace_is_migrated_on_open_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    assert migrate(con.cursor(), str(path), upto=1) == 1  # a workspace as version 1 left it: runs had no `stage`
    con.execute("INSERT INTO datasets (name, source_path, spec, sha256, n_rows, created_at) "
                "VALUES ('old', 'x.jsonl', '{}', 'abc', 3, now())")
    con.execute("INSERT INTO runs (dataset_id, kind, config, status, n_total, created_at, updated_at) "
                "VALUES (1, 'score', '{}', 'done', 3, now(), now())")
    columns = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                         "WHERE table_name = 'runs'").fetchall()]
    assert "stage" not in columns
    con.close()

    with Workspace.open(path) as ws:
        assert current_version(ws.cursor()) == SCHEMA_VERSION
        run = ws.get_run(1)
        assert (run.status, run.stage) == ("done", None)
        assert ws.update_run(1, stage="rows").stage == "rows"
        assert ws.get_dataset("old").n_rows == 3


def test_a_workspace_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "new.duckdb"
    Workspace.open(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    con.close()
    with pytest.raises(ClearError, match="newer"):
        Workspace.open(path)


def test_read_only_open(tmp_path):
    with pytest.raises(ClearError, match="no workspace"):
        Workspace.open(tmp_path / "missing.duckdb", read_only=True)
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        ws.add_dataset("d", read_dataset(str(write_alpaca(tmp_path / "d.jsonl", 2))))
    with Workspace.open(tmp_path / "ws.duckdb", read_only=True) as ro:
        assert [d.name for d in ro.list_datasets()] == ["d"] and ro.read_only
        with pytest.raises(duckdb.Error):
            ro.record_decisions(1, [0], "keep", "ann")


def test_a_workspace_held_by_another_process_raises_a_one_line_lock_error(tmp_path):
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from clear_core.store import Workspace
            ws = Workspace.open({str(path)!r})
            print("ready", flush=True)
            sys.stdin.readline()
            """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WorkspaceLockedError) as err:
            Workspace.open(path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message and "another process" in message
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    Workspace.open(path).close()  # free again once the holder is gone


def cli(capsys, *argv) -> tuple[int, str, str]:
    """`clear-studio ARGV` as a user runs it: exit status, stdout, stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["alpaca.jsonl", "columns.csv", "alpaca.parquet", "sharegpt.json"])
def test_a_data_file_given_as_the_workspace_is_refused_and_left_alone(tmp_path, capsys, name):
    given = tmp_path / name
    given.write_bytes((EXAMPLES / name).read_bytes())
    for argv in (("ingest", EXAMPLES / "alpaca.jsonl"), ("datasets",)):
        code, out, err = cli(capsys, *argv, "--workspace", given)
        assert (code, out) == (2, "") and len(err.strip().splitlines()) == 1, err
        assert f"{given} is not a CLEAR Studio workspace" in err and f"clear-studio ingest {given}" in err
    assert given.read_bytes() == (EXAMPLES / name).read_bytes()


def test_a_new_path_is_a_new_workspace_and_a_folder_or_device_is_refused(tmp_path, capsys):
    code, out, _ = cli(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", tmp_path / "new.jsonl")
    assert code == 0 and "imported 4 rows" in out
    code, out, _ = cli(capsys, "datasets", "--workspace", tmp_path / "new.jsonl")
    assert code == 0 and "alpaca" in out
    for given, says in ((tmp_path, "is a folder"), ("/dev/null", "is not a regular file")):
        code, _, err = cli(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", given)
        assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err


def test_a_truncated_or_corrupt_workspace_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "ws.duckdb"
    assert cli(capsys, "ingest", EXAMPLES / "alpaca.jsonl", "--workspace", path)[0] == 0
    whole = path.read_bytes()
    damaged = {f"cut at {n}": whole[:n] for n in range(12, len(whole), 65536)}
    damaged["cut by one byte"] = whole[:-1]
    for at in (4096 + 16, len(whole) // 2):  # the database header (under its checksum); a block in the middle
        garbled = bytearray(whole)
        garbled[at:at + 64] = bytes(64)
        damaged[f"zeros at {at}"] = bytes(garbled)
    refused = 0
    for what, content in damaged.items():
        for argv in (("datasets",), ("ingest", EXAMPLES / "alpaca.jsonl", "--name", "again")):
            path.write_bytes(content)
            code, out, err = cli(capsys, *argv, "--workspace", path)  # an uncaught error would fail the test here
            assert code in (0, 2) and len(err.strip().splitlines()) == (code == 2), (what, argv, err)
            if code == 2:
                assert f"workspace {path} is damaged (truncated or corrupt" in err, (what, argv, err)
                refused += 1
    assert refused >= 2 * len(damaged) - 4  # a block the commands never read may be damaged unnoticed


# datasets ------------------------------------------------------------------------------------------------------

def test_ingest_stores_rows_spec_and_hash(ws, data, tmp_path):
    assert (data.name, data.n_rows, data.spec.format, data.spec.file_type) == ("d", 20, "alpaca", "jsonl")
    assert len(data.sha256) == 64 and data.source_path.endswith("d.jsonl")
    rows = ws.examples(data.id)
    assert rows["row_idx"].tolist() == list(range(20))
    assert rows["row_id"].tolist()[:2] == ["r0", "r1"]
    assert json.loads(rows["prompt"][3]) == [{"role": "user", "content": "Question 3?"}]
    assert rows["prompt_text"][3] == "Question 3?" and rows["response"][3] == "Answer 3."
    lines = (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()
    assert rows["original"].tolist() == lines
    assert ws.examples(data.id, row_idx=[5, 2], columns=("row_idx", "line"))["line"].tolist() == [3, 6]
    assert ws.examples(data.id, limit=3, offset=4)["row_idx"].tolist() == [4, 5, 6]


def test_rows_come_back_decoded_in_the_order_asked(ws, data, tmp_path):
    rows = ws.rows(data.id, row_idx=[5, 2, 5])
    assert [r.row_idx for r in rows] == [5, 2, 5] and rows[0] == rows[2]
    assert rows[1].prompt == ({"role": "user", "content": "Question 2?"},) and rows[1].response == "Answer 2."
    assert (rows[1].row_id, rows[1].line, rows[1].prompt_text) == ("r2", 3, "Question 2?")
    assert rows[1].original == (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()[2]
    assert [r.row_idx for r in ws.rows(data.id, limit=3, offset=4)] == [4, 5, 6] and len(ws.rows(data.id)) == 20
    with pytest.raises(ClearError, match="row 20 is not a row"):
        ws.rows(data.id, row_idx=[1, 20])


def test_scoring_rows_are_the_decoded_prompt_and_response_in_the_order_asked(ws, data):
    full = {r.row_idx: r for r in ws.rows(data.id)}
    for wanted in ([5, 2, 5], list(range(20)), [19, 0]):  # a subset with a repeat, every row in order, reversed
        got = ws.scoring_rows(data.id, wanted)
        assert [g["row_idx"] for g in got] == wanted
        assert all(g["prompt"] == full[g["row_idx"]].prompt and g["response"] == full[g["row_idx"]].response
                   for g in got)
        assert set(got[0]) == {"row_idx", "prompt", "response"}
    with pytest.raises(ClearError, match="row 20 is not a row"):
        ws.scoring_rows(data.id, [1, 20])


def test_ingesting_the_same_file_twice_is_a_no_op(ws, data, tmp_path):
    again = ws.add_dataset("d", read_dataset(str(tmp_path / "d.jsonl")))
    assert again == data
    assert count(ws, "examples") == 20 and len(ws.list_datasets()) == 1


def test_other_content_under_a_name_needs_replace(ws, data, tmp_path):
    other = read_dataset(str(write_alpaca(tmp_path / "d2.jsonl", 7, tag="!")))
    run = ws.create_run(data.id, "score", "{}", 20)
    ws.commit_batch(run, "rows", [0], scores=long_scores([0], {"confidence": [0.5]}))
    ws.record_decisions(data.id, [1], "drop", "ann")
    with pytest.raises(ClearError, match="--replace"):
        ws.add_dataset("d", other)
    assert ws.get_dataset("d") == data

    new = ws.add_dataset("d", other, replace=True)
    assert new.n_rows == 7 and new.sha256 == other.sha256
    assert count(ws, "examples") == 7
    assert count(ws, "runs") == count(ws, "scores") == count(ws, "row_status") == count(ws, "decisions") == 0


def test_a_failed_import_leaves_the_workspace_unchanged(ws, data, tmp_path):
    good = read_dataset(str(write_alpaca(tmp_path / "e.jsonl", 5, tag="?")))
    broken = ReadResult(good.path, good.spec, good.records[:4] + [replace(good.records[4], line="not a number")],
                        [], good.sha256)
    for name, kw in (("e", {}), ("d", {"replace": True})):
        with pytest.raises(Exception):
            ws.add_dataset(name, broken, **kw)
        assert [d.name for d in ws.list_datasets()] == ["d"]
        assert count(ws, "examples") == 20 and ws.get_dataset("d") == data


def test_unknown_dataset_lists_the_names(ws, data):
    with pytest.raises(UnknownNameError, match="valid: d"):
        ws.get_dataset("nope")
    assert ws.get_dataset(data.id) == data == ws.get_dataset(str(data.id))


# runs ----------------------------------------------------------------------------------------------------------

def test_commit_batch_marks_rows_done_and_pending_rows_is_the_rest(ws, data):
    run = ws.create_run(data.id, "score", {"preset": "fast"}, 10)  # a run over the first 10 rows
    assert ws.pending_rows(run, "rows").tolist() == list(range(10))
    ws.commit_batch(run, "rows", [0, 1, 2], scores=long_scores([0, 1, 2], {"likelihood": [0.1, 0.2, 0.3]},
                                                                  {"likelihood": [-2.3, -1.6, -1.2]}),
                    embeddings={"prompt": np.eye(3, 4), "response": np.ones((3, 4))}, errors={})
    ws.commit_batch(run, "rows", [5, 3], scores=long_scores([5], {"likelihood": [0.9]}), errors={3: "too long"})
    assert ws.pending_rows(run, "rows").tolist() == [4, 6, 7, 8, 9]
    assert ws.pending_rows(run, "dataset").tolist() == list(range(10))
    assert ws.pending_rows(run, "rows", rows=[9, 3, 4]).tolist() == [4, 9]
    info = ws.get_run(run)
    assert (info.n_done, info.n_failed, info.stage) == (4, 1, "rows")
    assert ws.row_errors(run).to_dict("records") == [{"stage": "rows", "row_idx": 3, "error": "too long"}]
    assert ws.done_rows(run, "rows", failed=False).tolist() == [0, 1, 2, 5]

    wide = ws.scores_wide(run)
    assert wide["row_idx"].tolist() == [0, 1, 2, 5]
    assert wide["likelihood"].tolist() == [0.1, 0.2, 0.3, 0.9]
    assert ws.scores_wide(run, raw=True)["likelihood"].tolist()[:3] == [-2.3, -1.6, -1.2]
    rows, matrix = ws.load_embeddings(run, "prompt")
    assert rows.tolist() == [0, 1, 2] and np.array_equal(matrix, np.eye(3, 4, dtype=np.float32))
    assert np.array_equal(ws.embeddings(run, "response", row_idx=[2, 0]), np.ones((2, 4), dtype=np.float32))


def test_embeddings_committed_out_of_order_come_back_in_row_order(ws, data, monkeypatch):
    from clear_core.store import runs as store_runs

    monkeypatch.setattr(store_runs, "EMBEDDING_BATCH", 2)  # several streamed batches over 6 rows
    run = ws.create_run(data.id, "score", {"preset": "fast"}, 10)
    vec = np.arange(40, dtype=np.float32).reshape(10, 4)
    for batch in ([7, 8, 9], [0, 1], [4]):  # as shards of several workers may land
        ws.commit_batch(run, "rows", batch, embeddings={"prompt": vec[batch], "response": -vec[batch]})
    rows, matrix = ws.load_embeddings(run, "prompt")
    assert rows.tolist() == [0, 1, 4, 7, 8, 9] and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, vec[[0, 1, 4, 7, 8, 9]])
    np.testing.assert_array_equal(ws.embeddings(run, "response", [9, 0]), -vec[[9, 0]])
    assert ws.load_embeddings(ws.create_run(data.id, "score", {"preset": "fast"}, 10), "prompt")[1].shape == (0, 0)


def test_a_row_is_never_committed_twice_and_a_failing_batch_writes_nothing(ws, data):
    run = ws.create_run(data.id, "score", "{}", 20)
    ws.commit_batch(run, "rows", [0, 1], scores=long_scores([0, 1], {"x": [0.5, 0.5]}))
    with pytest.raises(ClearError, match="already committed"):
        ws.commit_batch(run, "rows", [1, 2], scores=long_scores([1, 2], {"x": [0.5, 0.5]}))
    with pytest.raises(ValueError):  # embeddings of the wrong shape fail after the scores were inserted
        ws.commit_batch(run, "rows", [2, 3], scores=long_scores([2, 3], {"x": [0.5, 0.5]}),
                        embeddings={"prompt": np.zeros((5, 4))})
    with pytest.raises(ClearError, match=r"\[0, 1\]"):
        ws.commit_batch(run, "rows", [4], scores=long_scores([4], {"x": [1.5]}))
    assert ws.pending_rows(run, "rows").tolist() == list(range(2, 20))
    assert count(ws, "scores") == 2 and count(ws, "row_status") == 2 and count(ws, "embeddings") == 0
    assert ws.get_run(run).n_done == 2


def test_a_run_killed_with_sigkill_resumes_without_redoing_or_losing_rows(ws, data, tmp_path):
    run = ws.create_run(data.id, "score", "{}", 20)
    ws.close()
    script = textwrap.dedent(f"""
        import os, signal
        from clear_core.store import Workspace, long_scores
        ws = Workspace.open({str(tmp_path / 'ws.duckdb')!r})
        for n, start in enumerate(range(0, 20, 4)):
            if n == 3:
                os.kill(os.getpid(), signal.SIGKILL)  # dies between two batches, mid-run
            rows = ws.pending_rows({run}, "rows")[:4]
            ws.commit_batch({run}, "rows", rows, scores=long_scores(rows, {{"likelihood": [0.5] * len(rows)}}))
        """)
    killed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=120)
    assert killed.returncode == -9
    with Workspace.open(tmp_path / "ws.duckdb") as again:
        pending = again.pending_rows(run, "rows")
        assert pending.tolist() == list(range(12, 20))
        again.commit_batch(run, "rows", pending, scores=long_scores(pending, {"likelihood": [0.5] * 8}))
        wide = again.scores_wide(run)
        assert wide["row_idx"].tolist() == list(range(20))  # every row once
        assert count(again, "scores") == 20 and again.get_run(run).n_done == 20


def test_a_judge_stage_adds_to_the_proposals_of_the_propose_stage(ws, data):
    run = ws.create_run(data.id, "correct", "{}", 3)
    ws.commit_batch(run, "propose", [0, 1], proposals=pd.DataFrame(
        {"row_idx": [0, 1], "candidate": ["A0", "A1"], "source": ["icl", "icl"]}))
    ws.commit_batch(run, "judge", [0, 1], proposals=pd.DataFrame(
        {"row_idx": [0, 1], "judge_conf": [0.9, 0.4], "confident": [True, False]}))
    got = ws.proposals(run)
    assert got[["row_idx", "candidate", "source", "judge_conf"]].values.tolist() == [
        [0, "A0", "icl", 0.9], [1, "A1", "icl", 0.4]]
    assert got["confident"].tolist() == [True, False]


def test_run_lookup_and_updates(ws, data):
    first = ws.create_run(data.id, "score", {"preset": "fast"}, 20)
    second = ws.create_run(data.id, "score", {"preset": "thorough"}, 20)
    ws.update_run(first, status="done", weights={"likelihood": 1.0})
    assert ws.latest_run(data.id).id == second
    assert ws.latest_run(data.id, status="done").id == first
    assert ws.get_run(first).weights == {"likelihood": 1.0} and ws.get_run(second).config == {"preset": "thorough"}
    assert ws.latest_run(data.id, kind="correct") is None
    assert [r.id for r in ws.list_runs(data.id)] == [first, second]
    with pytest.raises(UnknownNameError):
        ws.update_run(first, status="exploded")
    with pytest.raises(UnknownNameError):
        ws.get_run(99)


def test_score_run_is_the_latest_finished_one_or_a_clear_error(ws, data):
    with pytest.raises(ClearError, match="dataset 'd' has no finished scoring run; start a score run with "
                                         "`clear-studio score d`"):
        ws.score_run("d")
    first = ws.create_run(data.id, "score", "{}", 20)
    fix = ws.create_run(data.id, "correct", "{}", 1)
    assert ws.score_run(data.id, finished=False).id == first
    with pytest.raises(ClearError, match=f"score run {first} is running, not finished; `clear-studio resume"):
        ws.score_run(data, first)
    ws.update_run(first, status="done")
    ws.create_run(data.id, "score", "{}", 20)  # newer, unfinished
    assert ws.score_run("d").id == first == ws.score_run(data, first).id
    with pytest.raises(ClearError, match=f"run {fix} is a correct run of dataset {data.id}, not a score run"):
        ws.score_run(data, fix)


def test_replace_signal_swaps_one_signal_and_the_weights_and_the_bands_follow(ws, data):
    run = ws.create_run(data.id, "score", "{}", 4)
    rows = np.arange(4)
    ws.commit_batch(run, "rows", rows, scores=long_scores(rows, {"confidence": [0.1, 0.2, 0.3, 0.4],
                                                                 "likelihood": [0.5] * 4}))
    ws.update_run(run, status="done", weights={"likelihood": 1.0})
    assert ws.band_counts(run, 0.25, 0.25)["keep"] == 2  # fills the band cache
    ws.replace_signal(run, "confidence", rows[::-1], [0.9, 0.8, 0.7, float("nan")], {"likelihood": 2.0})
    wide = ws.scores_wide(run)
    assert np.isnan(wide["confidence"].iloc[0]) and wide["confidence"].tolist()[1:] == [0.7, 0.8, 0.9]
    assert wide["likelihood"].tolist() == [0.5] * 4  # the other signals stay as they were
    assert ws.get_run(run).weights == {"likelihood": 2.0}
    assert ws.band_counts(run, 0.25, 0.25)["keep"] == 3  # not the cached bands of the old values
    with pytest.raises(ClearError, match="must lie in \\[0, 1\\]"):
        ws.replace_signal(run, "confidence", rows, [1.5] * 4)
    assert ws.scores_wide(run)["confidence"].tolist()[1:] == [0.7, 0.8, 0.9]  # a refused call changes nothing


# queries -------------------------------------------------------------------------------------------------------

@pytest.fixture
def scored(ws, tmp_path):
    """400 rows with random scores, and proposals from two correction runs (the newer one wins per row)."""
    info = ws.add_dataset("q", read_dataset(str(write_alpaca(tmp_path / "q.jsonl", 400))))
    rng = np.random.default_rng(7)
    rows = np.arange(400)
    values = {"confidence": rng.random(400), "likelihood": rng.random(400), "reflection": rng.random(400)}
    values["confidence"][:3] = [0.0, 1.0, 0.5]  # the edges belong to their bands exactly once
    run = ws.create_run(info.id, "score", "{}", 400)
    ws.commit_batch(run, "rows", rows[:250], scores=long_scores(rows[:250], {k: v[:250] for k, v in values.items()}))
    ws.commit_batch(run, "rows", rows[250:], scores=long_scores(rows[250:], {k: v[250:] for k, v in values.items()}))
    older = rows[values["confidence"] < 0.6]
    newer = older[::3]
    old_conf, new_conf = rng.random(len(older)), rng.random(len(newer))
    for rows_, conf, tag in ((older, old_conf, "old"), (newer, new_conf, "new")):
        correct = ws.create_run(info.id, "correct", "{}", len(rows_))
        ws.commit_batch(correct, "propose", rows_, proposals=pd.DataFrame(
            {"row_idx": rows_, "candidate": [f"{tag} fix {r}" for r in rows_], "source": "icl",
             "judge_conf": conf, "confident": conf >= 0.8}))
    latest = pd.Series(old_conf, index=older)
    latest[newer] = new_conf
    text = pd.Series([f"old fix {r}" for r in older], index=older, dtype=object)
    text[newer] = [f"new fix {r}" for r in newer]
    frame = pd.DataFrame(values, index=rows)
    frame["judge_conf"], frame["proposal"] = latest, text
    return info, run, frame


def finish_runs(ws, dataset_id) -> None:
    for run in ws.list_runs(dataset_id):
        ws.update_run(run.id, status="done")


@pytest.mark.parametrize("finished", [False, True])  # while a run is running / from the arrays read once
@pytest.mark.parametrize("t_drop, t_keep, eta", [(0.2, 0.6, 0.8), (0.0, 1.0, 0.5), (0.5, 0.5, 0.9), (0.3, 0.7, 0.0)])
def test_band_counts_match_pandas(ws, scored, t_drop, t_keep, eta, finished):
    info, run, f = scored
    if finished:
        finish_runs(ws, info.id)
    c = f["confidence"]
    expected = {"keep": int((c >= t_keep).sum()), "review": int(((c >= t_drop) & (c < t_keep)).sum()),
                "drop": int((c < t_drop).sum()), "confident_fix": int(((c < t_keep) & (f["judge_conf"] >= eta)).sum()),
                "total": len(f)}
    assert ws.band_counts(run, t_drop, t_keep, eta) == expected
    assert ws.band_counts(run, t_drop, t_keep, eta) == expected  # the second call answers from the cache


def test_band_counts_follow_new_proposals_and_scores(ws, scored):
    info, run, f = scored
    finish_runs(ws, info.id)
    before = ws.band_counts(run, 0.2, 0.6, 0.8)
    rows = np.flatnonzero((f["confidence"] < 0.6).to_numpy() & ~(f["judge_conf"] >= 0.8).to_numpy())[:5]
    newer = ws.create_run(info.id, "correct", "{}", len(rows))  # a newer confident proposal for 5 more rows
    ws.commit_batch(newer, "propose", rows, proposals=pd.DataFrame(
        {"row_idx": rows, "candidate": "fix", "source": "icl", "judge_conf": 0.95, "confident": True}))
    ws.update_run(newer, status="done")
    assert ws.band_counts(run, 0.2, 0.6, 0.8) == {**before, "confident_fix": before["confident_fix"] + 5}
    later = ws.create_run(info.id, "score", "{}", 3)  # another run's scores do not count for this one
    ws.commit_batch(later, "rows", [0, 1, 2], scores=long_scores([0, 1, 2], {"confidence": [0.0, 0.0, 0.0]}))
    ws.update_run(later, status="done")
    assert ws.band_counts(run, 0.2, 0.6, 0.8)["total"] == 400
    judge = f["judge_conf"].copy()
    judge[rows] = 0.95
    assert ws.band_counts(later, 0.2, 0.6, 0.8) == {"keep": 0, "review": 0, "drop": 3,
                                                     "confident_fix": int((judge[[0, 1, 2]] >= 0.8).sum()), "total": 3}


@pytest.mark.parametrize("signal, bins", [("confidence", 40), ("likelihood", 7), ("reflection", 1)])
def test_histogram_and_quantile_match_numpy(ws, scored, signal, bins):
    _, run, f = scored
    hist = ws.histogram(run, signal, bins)
    counts, edges = np.histogram(f[signal], bins=bins, range=(0.0, 1.0))
    assert hist["count"].tolist() == counts.tolist()
    assert np.allclose(hist["bin_lo"], edges[:-1]) and np.allclose(hist["bin_hi"], edges[1:])
    for q in (0.0, 0.1, 0.5, 0.93, 1.0):
        assert ws.quantile(run, signal, q) == pytest.approx(float(np.quantile(f[signal], q)), abs=1e-12)
    assert ws.quantile(run, signal, [0.25, 0.75]) == pytest.approx(list(np.quantile(f[signal], [0.25, 0.75])))
    assert ws.quantile(run, "no such signal", 0.5) is None


def test_scores_wide_matches_the_input(ws, scored):
    _, run, f = scored
    wide = ws.scores_wide(run).set_index("row_idx")
    assert list(wide.columns) == ["confidence", "likelihood", "reflection"]
    assert np.allclose(wide.to_numpy(), f[["confidence", "likelihood", "reflection"]].to_numpy())
    assert list(ws.scores_wide(run, ["likelihood"]).columns) == ["row_idx", "likelihood"]


def test_review_queue_filters_orders_and_pages(ws, scored):
    info, run, f = scored
    c = f["confidence"]
    page = ws.review_queue(info.id, run, band="review", t_drop=0.2, t_keep=0.6, limit=10)
    review = c[(c >= 0.2) & (c < 0.6)].sort_values()
    assert page["row_idx"].tolist() == review.index[:10].tolist()  # least trustworthy first
    assert ws.review_count(info.id, run, band="review", t_drop=0.2, t_keep=0.6) == len(review)
    nxt = ws.review_queue(info.id, run, band="review", t_drop=0.2, t_keep=0.6, limit=10, offset=10)
    assert nxt["row_idx"].tolist() == review.index[10:20].tolist()
    assert {"prompt_text", "response", "proposal", "judge_conf", "decision", "likelihood", "reflection"} <= set(page)
    r = int(page["row_idx"][0])
    assert page["likelihood"][0] == pytest.approx(f["likelihood"][r])
    assert page["proposal"][0].endswith(f"fix {r}") and page["judge_conf"][0] == pytest.approx(f["judge_conf"][r])

    ranged = ws.review_queue(info.id, run, signal_ranges={"likelihood": (0.2, 0.4), "reflection": (0.5, 1.0)},
                             order="row", limit=1000)
    want = f[(f["likelihood"].between(0.2, 0.4)) & (f["reflection"].between(0.5, 1.0))].index
    assert ranged["row_idx"].tolist() == want.tolist()

    assert ws.review_queue(info.id, run, search="question 12?", limit=5)["row_idx"].tolist() == [12]
    assert ws.review_count(info.id, run, search="100%") == 0  # % is a literal character, not a wildcard
    assert ws.review_count(info.id, run, search="NEW FIX") == f["proposal"].str.startswith("new").sum() > 0
    assert ws.review_count(info.id, run, search="old fix") == f["proposal"].str.startswith("old").sum() > 0
    with_prop = ws.review_count(info.id, run, has_proposal=True)
    assert with_prop == int(f["judge_conf"].notna().sum())
    assert ws.review_count(info.id, run, has_proposal=False) == len(f) - with_prop
    by_judge = ws.review_queue(info.id, run, order="judge", limit=3)
    assert by_judge["judge_conf"].tolist() == sorted(f["judge_conf"].dropna(), reverse=True)[:3]

    assert ws.review_rows(info.id, run, band="review", t_drop=0.2, t_keep=0.6).tolist() == sorted(review.index)
    assert ws.review_rows(info.id, run, band="review", t_drop=0.2, t_keep=0.6, order="confidence").tolist() == \
        review.index.tolist()
    ws.record_decisions(info.id, review.index[:4], "keep", "ann")
    assert ws.review_count(info.id, run, band="review", t_drop=0.2, t_keep=0.6, undecided_only=True) == len(review) - 4
    assert ws.review_count(info.id, run, action="keep") == 4
    assert ws.review_progress(info.id, run, t_keep=0.6) == {
        "reviewed": 4, "flagged": int((c < 0.6).sum()), "flagged_reviewed": 4, "total": 400}
    with pytest.raises(UnknownNameError):
        ws.review_queue(info.id, run, band="maybe")


@pytest.mark.parametrize("filters", [
    dict(band="flagged", t_keep=0.6, undecided_only=True),
    dict(band="review", t_drop=0.2, t_keep=0.6, has_proposal=True, order="-confidence"),
    dict(band="all", has_proposal=False, order="row"),
    dict(band="drop", t_drop=0.5, order="judge"),
    dict(band="keep", t_keep=0.6, search="question 1"),
    dict(band="flagged", t_keep=0.6, action="drop"),
])
def test_review_window_is_the_queue_page_and_its_count(ws, scored, filters):
    info, run, f = scored
    ws.record_decisions(info.id, [int(r) for r in f.index[f["confidence"] < 0.3][:6]], "drop", "ann")
    filters = {**filters, "order": filters.get("order", "confidence")}
    total = ws.review_count(info.id, run, **{k: v for k, v in filters.items() if k != "order"})
    assert total > 0
    everything = ws.review_rows(info.id, run, **filters)
    assert len(everything) == total
    for offset in (0, 7, total - 2):
        page, count = ws.review_window(info.id, run, **filters, limit=5, offset=offset)
        assert count == total
        assert page["row_idx"].tolist() == everything[offset:offset + 5].tolist()
        assert page.equals(ws.review_queue(info.id, run, **filters, limit=5, offset=offset))
    past, count = ws.review_window(info.id, run, **filters, limit=5, offset=total + 10)
    assert past.empty and count == total


def test_review_progress_counts_decisions_and_flagged_rows(ws, scored):
    info, run, f = scored
    low = [int(r) for r in f.index[f["confidence"] < 0.5][:3]]
    high = [int(r) for r in f.index[f["confidence"] >= 0.5][:2]]
    ws.record_decisions(info.id, low + high, "keep", "ann")
    ws.undo(info.id, "ann", row_idx=high[0])  # an undone row is undecided again
    assert ws.review_progress(info.id, run, 0.5) == {
        "reviewed": 4, "flagged": int((f["confidence"] < 0.5).sum()), "flagged_reviewed": 3, "total": 400}
    assert ws.review_progress(info.id, None, 0.5) == {"reviewed": 4, "flagged": 0, "flagged_reviewed": 0,
                                                      "total": 400}


@pytest.mark.parametrize("t_drop, t_keep", [(0.3, 0.6), (0.5, 0.5), (0.0, 1.0)])
def test_the_band_rule_and_its_sql_twin_agree_on_every_value(ws, tmp_path, t_drop, t_keep):
    """Thresholds exactly, the floats either side of them, the ends, a stored NaN and a NULL value; the last row
    has no confidence entry at all and is in no band."""
    values = [0.0, 1.0, 0.45, np.nan, None]
    for t in (t_drop, t_keep):
        values += [t, np.nextafter(t, 0.0), np.nextafter(t, 1.0)]
    n = len(values) + 1
    info = ws.add_dataset("b", read_dataset(str(write_alpaca(tmp_path / "b.jsonl", n))))
    run = ws.create_run(info.id, "score", "{}", n)
    conf = np.array(values, dtype=float)  # None -> NaN, as pandas reads a NULL back
    ws.commit_batch(run, "rows", np.arange(n - 1), scores=long_scores(np.arange(n - 1), {"confidence": conf}))
    cur = ws.cursor()
    cur.execute("UPDATE scores SET value = 'NaN'::DOUBLE WHERE run_id = ? AND row_idx = 3", [run])  # a real NaN
    params = {"run": run, "t_drop": t_drop, "t_keep": t_keep}
    stored = cur.execute("SELECT count(*) FILTER (WHERE isnan(value)), count(*) FILTER (WHERE value IS NULL) "
                         "FROM scores WHERE run_id = $run", {"run": run}).fetchall()[0]
    assert stored == (1, 1)

    expected = list(filtering.bands(conf, Thresholds(t_drop=t_drop, t_keep=t_keep)))
    twin = dict(cur.execute(f"SELECT row_idx, {band_sql('value')} FROM scores WHERE run_id = $run", params).fetchall())
    assert [twin[r] for r in range(n - 1)] == filtering.band_codes(conf, t_drop, t_keep).tolist()
    assert [filtering.BANDS[twin[r]] for r in range(n - 1)] == expected
    assert expected[3] == expected[4] == "review"
    for band in filtering.BANDS + ("flagged",):
        members = [r for r, b in enumerate(expected) if b == band or (band == "flagged" and b != "keep")]
        for search in (None, "Question"):  # read from the scores alone, or joined from the examples
            got = ws.review_rows(info.id, run, band=band, t_drop=t_drop, t_keep=t_keep, search=search)
            assert got.tolist() == members, (band, search)
    assert ws.review_rows(info.id, run, band="unscored").tolist() == [3, 4, n - 1]
    counts = {b: expected.count(b) for b in filtering.BANDS}
    for finished in (False, True):  # one SQL query while the run runs; the arrays read once when it is done
        if finished:
            ws.update_run(run, status="done")
        got = ws.band_counts(run, t_drop, t_keep)
        assert {b: got[b] for b in filtering.BANDS} == counts and got["total"] == n - 1
    assert ws.review_progress(info.id, run, t_keep)["flagged"] == sum(b != "keep" for b in expected)


# decisions -----------------------------------------------------------------------------------------------------

def state(ws, dataset_id) -> dict:
    return {int(r.row_idx): (r.action, None if pd.isna(r.text) else r.text)
            for r in ws.current_decisions(dataset_id).itertuples()}


def test_latest_decision_wins_and_the_log_keeps_everything(ws, data):
    b1 = ws.record_decisions(data.id, [0, 1, 2], "keep", "ann", thresholds={"t_drop": 0.2, "t_keep": 0.6})
    b2 = ws.record_decisions(data.id, [1], "drop", "bob")
    ws.record_decisions(data.id, [2], "edit", "ann", new_text="Better answer.")
    assert b2 != b1
    assert state(ws, data.id) == {0: ("keep", None), 1: ("drop", None), 2: ("edit", "Better answer.")}
    log = ws.decision_log(data.id)
    assert len(log) == 5 and log["batch_id"].tolist()[:3] == [b1] * 3
    assert json.loads(log["thresholds"][0]) == {"t_drop": 0.2, "t_keep": 0.6}
    last = log.iloc[-1]
    assert (last["action"], last["prev_action"], last["reviewer"]) == ("edit", "keep", "ann")
    with pytest.raises(ClearError):
        ws.record_decisions(data.id, [3], "edit", "ann")  # an edit needs text
    with pytest.raises(ClearError):
        ws.record_decisions(data.id, [99], "keep", "ann")  # not a row of the dataset
    with pytest.raises(UnknownNameError):
        ws.record_decisions(data.id, [3], "maybe", "ann")
    assert len(ws.decision_log(data.id)) == 5


def test_row_state_and_current_decisions_of_some_rows(ws, data):
    assert ws.row_state(data.id, 3) is None
    ws.record_decisions(data.id, [3, 4], "edit", "ann", new_text=["three", "four"])
    ws.record_decisions(data.id, [3], "drop", "bob")
    assert ws.row_state(data.id, 3) == {"action": "drop", "text": None, "reviewer": "bob"}
    assert ws.row_state(data.id, 4) == {"action": "edit", "text": "four", "reviewer": "ann"}
    ws.undo(data.id, "bob", row_idx=3)
    assert ws.row_state(data.id, 3)["action"] == "edit"
    ws.undo(data.id, "ann", row_idx=3)
    assert ws.row_state(data.id, 3) is None
    some = ws.current_decisions(data.id, rows=[4, 5])
    assert some["row_idx"].tolist() == [4] and some["text"].tolist() == ["four"]
    assert ws.current_decisions(data.id, rows=[3, 5]).empty


def test_accept_stores_the_latest_proposal_text(ws, data):
    for text in ("first fix", "second fix"):
        run = ws.create_run(data.id, "correct", "{}", 1)
        ws.commit_batch(run, "propose", [4], proposals=pd.DataFrame({"row_idx": [4], "candidate": [text]}))
    ws.record_decisions(data.id, [4], "accept", "ann")
    assert state(ws, data.id) == {4: ("accept", "second fix")}
    with pytest.raises(ClearError, match="no proposal"):
        ws.record_decisions(data.id, [4, 5], "accept", "ann")
    assert len(ws.decision_log(data.id)) == 1


def test_undo_walks_back_one_decision_at_a_time(ws, data):
    ws.record_decisions(data.id, [0], "keep", "ann")
    ws.record_decisions(data.id, [0], "edit", "ann", new_text="v1")
    ws.record_decisions(data.id, [0], "drop", "ann")
    assert ws.undo(data.id, "ann", row_idx=0) == [0]
    assert state(ws, data.id) == {0: ("edit", "v1")}
    assert ws.undo(data.id, "ann", row_idx=0) == [0]
    assert state(ws, data.id) == {0: ("keep", None)}
    ws.record_decisions(data.id, [0], "edit", "ann", new_text="v2")  # a new decision after undos stacks on top
    assert ws.undo(data.id, "ann", row_idx=0) == [0]
    assert state(ws, data.id) == {0: ("keep", None)}
    assert ws.undo(data.id, "ann", row_idx=0) == [0]
    assert state(ws, data.id) == {}
    assert ws.undo(data.id, "ann", row_idx=0) == []
    log = ws.decision_log(data.id)
    assert log["action"].tolist() == ["keep", "edit", "drop", "undo", "undo", "edit", "undo", "undo"]
    assert log["undoes"].tolist()[-2:] == [log["id"][5], log["id"][0]]


def test_bulk_undo_takes_back_the_reviewers_latest_batch(ws, data):
    ws.record_decisions(data.id, [0, 1, 2], "keep", "ann")
    ws.record_decisions(data.id, [2, 3, 4], "drop", "ann")
    ws.record_decisions(data.id, [5], "drop", "bob")
    ws.record_decisions(data.id, [4], "keep", "bob")  # bob changed one row of ann's batch afterwards
    assert ws.undo(data.id, "ann") == [2, 3]  # row 4's standing decision is bob's, so it stays
    assert state(ws, data.id) == {0: ("keep", None), 1: ("keep", None), 2: ("keep", None), 4: ("keep", None),
                                  5: ("drop", None)}
    assert ws.undo(data.id, "ann") == [0, 1, 2]
    assert state(ws, data.id) == {4: ("keep", None), 5: ("drop", None)}
    assert ws.undo(data.id, "bob") == [4]
    assert state(ws, data.id) == {4: ("drop", None), 5: ("drop", None)}  # back to ann's drop of row 4
    assert ws.undo(data.id, "ann") == [4]
    assert ws.undo(data.id, "ann") == []


def test_each_thread_gets_its_own_cursor_and_ended_threads_release_theirs(ws, data):
    seen = []
    for _ in range(5):
        t = threading.Thread(target=lambda: seen.append((ws.cursor(), ws.cursor(), ws.list_datasets()[0].name)))
        t.start()
        t.join()
    assert all(a is b and name == "d" for a, b, name in seen)
    assert len({id(a) for a, _, _ in seen}) == 5 and ws.cursor() is not seen[0][0]
    assert len(ws._cursors) <= 2  # this thread's and at most the last ended one's


def test_concurrent_decisions_from_threads_and_connections_lose_nothing(ws, data):
    second = Workspace.open(ws.path)  # a second connection to the same file, as a second app session would hold
    errors = []

    def review(workspace, name: str, rows: list[int]) -> None:
        try:
            for r in rows:
                workspace.record_decisions(data.id, [r], "keep" if r % 2 else "drop", name)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=review, args=(ws if i % 2 else second, f"rev{i}", list(range(i, 20, 4))))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    second.close()
    assert errors == []
    assert state(ws, data.id) == {r: ("keep" if r % 2 else "drop", None) for r in range(20)}
    log = ws.decision_log(data.id)
    assert len(log) == 20 and log["batch_id"].nunique() == 20
    assert sorted(log["reviewer"].unique()) == ["rev0", "rev1", "rev2", "rev3"]


def test_a_decision_is_durable_once_recorded(tmp_path):
    """The recording process dies right after record_decisions returns, without closing: the decision is kept."""
    write_alpaca(tmp_path / "d.jsonl", 3)
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from clear_core.formats import read_dataset
        from clear_core.store import Workspace
        ws = Workspace.open({str(tmp_path / 'ws.duckdb')!r})
        info = ws.add_dataset("d", read_dataset({str(tmp_path / 'd.jsonl')!r}))
        ws.record_decisions(info.id, [2], "edit", "ann", new_text="kept")
        os.kill(os.getpid(), signal.SIGKILL)
        """)], cwd=ROOT, timeout=120)
    assert child.returncode == -9
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        assert state(ws, ws.get_dataset("d").id) == {2: ("edit", "kept")}
