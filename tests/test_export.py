"""Exports: curated (decisions applied) and all rows (+ clear_* columns), in the source's format or another, with a
manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clear_core import __version__
from clear_core.config import preset_config
from clear_core.errors import ClearError
from clear_core.export import export_counts, export_dataset, manifest_path
from clear_core.formats import read_dataset
from clear_core.store import Workspace, long_scores

ROOT = Path(__file__).resolve().parents[1]

# Irregular spacing, non-ASCII text and an unknown key: an untouched row must come out byte for byte.
LINES = [
    '{"instruction": "Capital of France?", "input": "", "output": "Paris", "source": "geo"}',
    '{"instruction":"2 + 2?","input":"","output":"5","source":"math"}',
    '{"instruction": "Translate to German: cheese", "input": "", "output": "Käse!!", "source": "lang"}',
    '{"instruction": "Largest planet?", "input": "", "output": "Mars", "source": "space",  "tags": ["x"]}',
    '{"instruction": "Colour of the sky?", "input": "", "output": "Blue", "source": "misc"}',
    '{"instruction": "Opposite of hot?", "input": "", "output": "Cold", "source": "words"}',
    '{"instruction": "Symbol of gold?", "input": "", "output": "Gd", "source": "chem"}',
    '{"instruction": "Smallest prime?", "input": "", "output": "2", "source": "math"}',
]
CONFIDENCE = [0.95, 0.10, 0.40, 0.20, 0.90, 0.05, 0.15, 0.85]
LIKELIHOOD = [0.9, 0.2, 0.5, 0.3, 0.8, 0.4, 0.1, 0.7]


@pytest.fixture
def setup(tmp_path):
    """A dataset with a score run, a correction run and decisions: row 1 dropped, 2 edited, 3 accepted, 5 kept."""
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    ws = Workspace.open(tmp_path / "ws.duckdb")
    info = ws.add_dataset("d", read_dataset(str(src)))
    run = ws.create_run(info.id, "score", preset_config("fast", model="tiny").to_json(), len(LINES))
    rows = np.arange(len(LINES))
    ws.commit_batch(run, "rows", rows, scores=long_scores(rows, {"confidence": CONFIDENCE, "likelihood": LIKELIHOOD}))
    ws.update_run(run, status="done", weights={"likelihood": 2.0, "reflection": 0.5})
    fix = ws.create_run(info.id, "correct", "{}", 2)
    ws.commit_batch(fix, "propose", [3, 6], proposals=pd.DataFrame(
        {"row_idx": [3, 6], "candidate": ["Jupiter", "Au"], "judge_conf": [0.95, 0.9]}))
    ws.record_decisions(info.id, [1], "drop", "ann")
    ws.record_decisions(info.id, [2], "edit", "ann", new_text="Käse")
    ws.record_decisions(info.id, [3], "accept", "ann")
    ws.record_decisions(info.id, [5], "keep", "ann")
    yield ws, info, run, tmp_path
    ws.close()


def test_curated_export_applies_decisions_and_leaves_other_rows_untouched(setup):
    ws, info, run, tmp = setup
    out = tmp / "curated.jsonl"
    manifest = export_dataset(ws, "d", out, decisions_only=True)  # the run's thresholds: tests/test_session.py
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 7  # row 1 dropped
    by_source = {json.loads(line)["source"]: line for line in lines}
    for i in (0, 4, 5, 6, 7):
        assert LINES[i] in lines  # byte for byte
    assert "math" in by_source and json.loads(by_source["math"])["output"] == "2"
    edited = json.loads(by_source["lang"])
    assert edited == {"instruction": "Translate to German: cheese", "input": "", "output": "Käse", "source": "lang"}
    accepted = json.loads(by_source["space"])
    assert accepted["output"] == "Jupiter" and accepted["tags"] == ["x"]
    assert [json.loads(line)["source"] for line in lines] == ["geo", "lang", "space", "misc", "words", "chem", "math"]
    c = manifest["counts"]
    assert (c["input"], c["written"], c["dropped"], c["edited"], c["accepted"]) == (8, 7, 1, 1, 1)
    assert manifest["run_id"] is None and manifest["thresholds"] is None


def test_drop_below_leaves_out_undecided_rows_under_the_threshold(setup):
    ws, info, run, tmp = setup
    out = tmp / "filtered.jsonl"
    manifest = export_dataset(ws, "d", out, run_id=run, t_drop=0.3)
    sources = [json.loads(line)["source"] for line in out.read_text(encoding="utf-8").splitlines()]
    # rows 3 (0.20, accepted) and 5 (0.05, kept) stay: a reviewer's decision beats the threshold; 6 (0.15) goes
    assert sources == ["geo", "lang", "space", "misc", "words", "math"]
    c = manifest["counts"]
    assert (c["dropped_by_decision"], c["dropped_below_threshold"], c["written"]) == (1, 1, 6)
    assert manifest["thresholds"]["drop_below"] == 0.3
    assert manifest["run_id"] == run and manifest["model"] == "tiny" and manifest["preset"] == "fast"
    assert manifest["weights"] == {"likelihood": 2.0, "reflection": 0.5}


def test_all_rows_export_adds_scores_and_decisions(setup):
    ws, info, run, tmp = setup
    out = tmp / "all.jsonl"
    export_dataset(ws, "d", out, variant="all", t_drop=0.3, t_keep=0.8)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 8
    assert [r["clear_row_id"] for r in rows] == ws.examples(info.id)["row_id"].tolist()
    assert [r["clear_confidence"] for r in rows] == CONFIDENCE
    assert [r["clear_likelihood"] for r in rows] == LIKELIHOOD
    assert [r["clear_band"] for r in rows] == ["keep", "drop", "review", "drop", "keep", "drop", "drop", "keep"]
    assert [r["clear_decision"] for r in rows] == [None, "drop", "edit", "accept", None, "keep", None, None]
    assert [r["clear_response"] for r in rows] == ["Paris", "5", "Käse", "Jupiter", "Blue", "Cold", "Gd", "2"]
    assert [r["output"] for r in rows] == ["Paris", "5", "Käse!!", "Mars", "Blue", "Cold", "Gd", "2"]
    assert rows[3]["tags"] == ["x"]  # unknown keys are kept


def test_all_rows_band_defaults_to_the_median_cut(setup):
    ws, info, run, tmp = setup
    manifest = export_dataset(ws, "d", tmp / "all.parquet", fmt="parquet", variant="all")
    median = float(np.median(CONFIDENCE))
    assert manifest["thresholds"]["t_keep"] == pytest.approx(median) == manifest["thresholds"]["t_drop"]
    table = pd.read_parquet(tmp / "all.parquet")
    assert list(table.columns[:4]) == ["instruction", "input", "output", "source"]
    assert table["clear_band"].tolist() == ["keep" if c >= median else "drop" for c in CONFIDENCE]


@pytest.mark.parametrize("fmt, reader", [("csv", pd.read_csv), ("parquet", pd.read_parquet),
                                         ("json", lambda p: pd.read_json(p, orient="records"))])
def test_curated_export_in_other_file_types(setup, fmt, reader):
    ws, info, run, tmp = setup
    out = tmp / f"curated.{fmt}"
    manifest = export_dataset(ws, "d", out, fmt=fmt, decisions_only=True)
    table = reader(out)
    assert len(table) == 7 and manifest["file_type"] == fmt
    assert table["output"].astype(str).tolist() == ["Paris", "Käse", "Jupiter", "Blue", "Cold", "Gd", "2"]
    assert table["source"].tolist()[0] == "geo"


def test_the_manifest_sits_beside_the_export_and_no_temp_files_remain(setup):
    ws, info, run, tmp = setup
    out = tmp / "exports" / "x.jsonl"
    out.parent.mkdir()
    manifest = export_dataset(ws, info, out, run_id=run, t_drop=0.1)
    on_disk = json.loads(Path(manifest_path(out)).read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["input_sha256"] == info.sha256 and on_disk["app_version"] == __version__
    assert on_disk["created_at"] and on_disk["dataset"] == "d" and on_disk["variant"] == "curated"
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.jsonl", "x.jsonl.manifest.json"]


def test_a_csv_source_comes_back_value_for_value(tmp_path):
    src = ROOT / "sample_data" / "examples" / "columns.csv"
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        info = ws.add_dataset("c", read_dataset(str(src)))
        ws.record_decisions(info.id, [1], "edit", "ann", new_text="Au (gold)")
        export_dataset(ws, "c", tmp_path / "out.csv")
    before, after = pd.read_csv(src, dtype=str), pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert list(after.columns) == list(before.columns)
    expected = before.copy()
    expected.loc[1, "answer"] = "Au (gold)"
    pd.testing.assert_frame_equal(after, expected)


def test_drop_below_without_a_score_run_is_an_error(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        ws.add_dataset("d", read_dataset(str(src)))
        with pytest.raises(ClearError, match="score run"):
            export_dataset(ws, "d", tmp_path / "out.jsonl", t_drop=0.5)
    assert not (tmp_path / "out.jsonl").exists()


def test_the_default_run_is_the_latest_finished_one_and_runs_are_checked(setup):
    ws, info, run, tmp = setup
    newer = ws.create_run(info.id, "score", "{}", len(LINES))  # still running, nothing scored yet
    manifest = export_dataset(ws, "d", tmp / "all.jsonl", variant="all")
    assert manifest["run_id"] == run != newer
    rows = [json.loads(line) for line in (tmp / "all.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["clear_confidence"] for r in rows] == CONFIDENCE
    fix = ws.latest_run(info.id, kind="correct").id
    with pytest.raises(ClearError, match="not a score run"):
        export_dataset(ws, "d", tmp / "x.jsonl", run_id=fix, t_drop=0.5)


@pytest.mark.parametrize("kw", [{}, {"t_drop": 0.3}, {"variant": "all"}, {"variant": "all", "t_drop": 0.3},
                                {"t_drop": 0.95}])
def test_export_counts_are_the_counts_the_export_writes(setup, kw):
    ws, info, run, tmp = setup
    manifest = export_dataset(ws, "d", tmp / "out.jsonl", run_id=run if "t_drop" in kw else None, **kw)
    assert export_counts(ws, "d", run_id=run if "t_drop" in kw else None, **kw) == manifest["counts"]
    written = len((tmp / "out.jsonl").read_text(encoding="utf-8").splitlines())
    assert manifest["counts"]["written"] == written


def test_rows_without_a_confidence_number_are_review_and_rows_without_an_entry_have_no_band(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(LINES[:4]) + "\n", encoding="utf-8")
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        info = ws.add_dataset("d", read_dataset(str(src)))
        run = ws.create_run(info.id, "score", "{}", 4)
        ws.commit_batch(run, "rows", [0, 1, 2], scores=long_scores([0, 1, 2], {"confidence": [0.9, np.nan, 0.1]}))
        ws.commit_batch(run, "rows", [3], errors={3: "failed"})  # row 3 failed: no scores at all
        ws.update_run(run, status="done")
        export_dataset(ws, "d", tmp_path / "all.jsonl", variant="all", t_drop=0.5, t_keep=0.5)
        rows = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [r["clear_band"] for r in rows] == ["keep", "review", "drop", None]
        assert [r["clear_confidence"] for r in rows] == [0.9, None, 0.1, None]
        counts = export_counts(ws, "d", t_drop=0.5)
        assert (counts["dropped_below_threshold"], counts["written"]) == (1, 3)  # NaN and no entry are never below
