"""The CLI end to end with the tiny model, in process: score a FILE, runs, resume, correct, curate --auto,
finetune, and the errors a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from clear_core.cli import main
from conftest import write_rows


@pytest.fixture
def cli_env(tmp_path, tiny_model_dir):
    data = write_rows(tmp_path / "cli.jsonl", n=40, seed=3)
    ws = str(tmp_path / "cli.duckdb")
    return data, ws, str(tiny_model_dir)


def _score(data, ws, model, *extra):
    return main(["score", str(data), "--model", model, "--workspace", ws, "--batch-size", "8", "--quiet", *extra])


def test_score_file_then_runs_table(cli_env, capsys):
    data, ws, model = cli_env
    assert _score(data, ws, model) == 0
    out = capsys.readouterr().out
    assert "dataset 'cli': 40 rows" in out and "run 1: done, 40 rows (0 failed)" in out
    assert "confidence quantiles" in out and "weights:" in out
    assert main(["runs", "cli", "--workspace", ws]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["id", "kind", "status", "done/total", "failed", "started", "preset", "model"]
    row = lines[1].split()
    assert row[:5] == ["1", "score", "done", "40/40", "0"] and row[-2] == "fast" and row[-1] == model


def test_ctrl_c_then_resume(cli_env, capsys, monkeypatch):
    from clear_core import pipeline
    from clear_core.store import Workspace

    data, ws, model = cli_env

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_dataset_stage", interrupted)  # Ctrl-C once every row is scored
    assert _score(data, ws, model, "--limit", "16") == 130
    assert "clear-studio resume RUN_ID" in capsys.readouterr().err
    assert main(["runs", "cli", "--workspace", ws]) == 0  # the listing says how to go on
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split()[:4] == ["1", "score", "stopped", "16/16"]
    assert lines[2] == (f"run 1 is stopped (stopped by the user); `clear-studio resume 1 --workspace {ws}` goes on "
                        "from its last committed batch")
    with Workspace.open(ws) as w:
        run = w.list_runs()[0]
        assert run.status == "stopped" and run.n_total == 16 and len(w.done_rows(run.id, "rows")) == 16
        assert "confidence" not in w.signals(run.id)
    monkeypatch.undo()
    assert main(["resume", "1", "--workspace", ws, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "resuming score run 1 (stopped, 16/16 done)" in out and "run 1: done, 16 rows" in out
    with Workspace.open(ws, read_only=True) as w:
        assert w.scores_wide(1, ["confidence"])["confidence"].notna().sum() == 16


def test_correct_curate_and_finetune(cli_env, capsys, tmp_path):
    from clear_core.store import Workspace

    data, ws, model = cli_env
    assert _score(data, ws, model) == 0
    assert main(["correct", "cli", "--workspace", ws, "--quiet", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "correction run 2: 20 rows below t_keep" in out
    assert main(["curate", "cli", "--auto", "--workspace", ws, "--quiet", "--keep-fraction", "0.5",
                 "--drop-fraction", "0.25"]) == 0
    out = capsys.readouterr().out
    with Workspace.open(ws) as w:
        info = w.get_dataset("cli")
        decisions = w.current_decisions(info.id)
        props = w.proposals(w.latest_run(info.id, kind="correct").id)
        conf = w.scores_wide(1, ["confidence"]).set_index("row_idx")["confidence"]
    assert (decisions["reviewer"] == "auto").all()
    confident = set(props.loc[props["confident"].fillna(False), "row_idx"].astype(int))
    accepted = set(decisions.loc[decisions["action"] == "accept", "row_idx"].astype(int))
    dropped = set(decisions.loc[decisions["action"] == "drop", "row_idx"].astype(int))
    assert accepted == confident
    t_drop = conf.quantile(0.25, interpolation="linear")
    assert dropped == set(conf.index[conf < t_drop]) - confident and len(dropped) > 0
    assert f"{len(accepted)} corrected (accepted), {len(dropped)} dropped" in out

    out_dir = tmp_path / "tuned"
    assert main(["finetune", "cli", "--out", str(out_dir), "--workspace", ws, "--max-rows", "8",
                 "--batch-size", "4"]) == 0
    assert (out_dir / "finetune.json").exists() and "saved" in capsys.readouterr().out
    # The fine-tuned dir serves as a generator for Auto-Correct.
    assert main(["correct", "cli", "--workspace", ws, "--quiet", "--generator", str(out_dir)]) == 0


def test_errors_a_user_sees(cli_env, capsys):
    data, ws, model = cli_env
    assert main(["correct", "nope", "--workspace", ws]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert main(["resume", "7", "--workspace", ws]) == 2
    assert "unknown run '7'" in capsys.readouterr().err
    # The file is ingested, then the model fails to load: a one-line error, and no run is created.
    assert main(["score", str(data), "--workspace", ws, "--model", "/no/such/model"]) == 2
    assert "model '/no/such/model'" in capsys.readouterr().err
    assert main(["correct", "cli", "--workspace", ws]) == 2
    assert "no finished scoring run" in capsys.readouterr().err
    assert main(["runs", "cli", "--workspace", ws]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1  # the header alone


def test_score_a_file_with_a_bad_row(cli_env, capsys, tmp_path):
    """One empty response: the error names file, line and field and says how to go on; with --skip-bad-rows the
    good rows are scored and the bad one is listed."""
    _, ws, model = cli_env
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\n" + "".join(f"Is {i} even?,{'yes' if i % 2 == 0 else 'no'}\n" for i in range(12))
                   + "Is 99 even?,\n", encoding="utf-8")
    assert _score(bad, ws, model) == 2
    err = capsys.readouterr().err
    assert f"{bad}:14: field 'answer'" in err and "--skip-bad-rows" in err
    assert _score(bad, ws, model, "--skip-bad-rows") == 0
    captured = capsys.readouterr()
    assert f"skipped {bad}:14: field 'answer'" in captured.err
    assert "dataset 'bad': 12 rows" in captured.out and "run 1: done, 12 rows (0 failed)" in captured.out


@pytest.mark.parametrize("value", ["-5", "0", "2.5"])
def test_limit_must_be_a_positive_integer(cli_env, capsys, value):
    """--limit -5 and --limit 0 once left a "done" run of -5/-5 or 0 rows: refused in one line, before anything."""
    data, ws, model = cli_env
    assert _score(data, ws, model, "--limit", value) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: clear-studio score: argument --limit: must be a positive whole number, got '{value}'"]
    assert not Path(ws).exists()  # nothing ingested, no run
    assert main(["correct", "cli", "--workspace", ws, "--batch-size", "0"]) == 2
    assert "argument --batch-size: must be a positive whole number" in capsys.readouterr().err
