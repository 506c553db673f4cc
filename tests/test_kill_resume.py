"""A real `clear-studio score` process killed with SIGKILL at random moments, restarted each time, ends with the
same scores as an uninterrupted run, and no row committed twice or lost.

Most of each process's life is importing torch and transformers (3-15 s depending on the machine's load). The
first kill comes once the progress bar shows a random number of rows committed, so it always lands inside the rows
stage however fast the machine is (about 1 s for 300 rows when idle); the later ones come a random 0-1.5 s after
the run announces itself: during the rows stage, the in-context stage, the dataset stage, or right after the start.
A killed process cannot mark its run: the run reads back as `interrupted` (not `running` forever), in the CLI's
listing with the command that resumes it, and in the app with its Resume button.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, write_rows

N_ROWS, BATCH, KILLS, SEED = 300, 10, 3, 1234
PRESET = "balanced"  # rows, then the in-context pass (its own resumable stage), then the dataset stage


def _start(cmd, env):
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_start(proc, deadline: float) -> list[str]:
    """Lines up to the one announcing the run (printed once the model is loaded and the first batch starts)."""
    lines = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("run "):
            return lines
    raise AssertionError("the score process never announced its run:\n" + "".join(lines))


def _wait_for_rows(proc, at_least: int, deadline: float) -> None:
    """Read the progress bar (tqdm redraws with carriage returns) until it shows `at_least` rows done."""
    chunk = ""
    while time.time() < deadline:
        char = proc.stdout.read(1)
        if not char:
            return
        if char not in "\r\n":
            chunk += char
            continue
        found = re.search(r"rows:.*?(\d+)/\d+", chunk)
        chunk = ""
        if found and int(found.group(1)) >= at_least:
            return


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


# A process that opens the workspace, starts a scoring run of 40 rows and is killed (SIGKILL) while it is marked
# running: a run whose process died, made in a second instead of the 10-20 s of a scoring process's imports (the
# test below kills real scoring processes, and checks their run's status too).
_KILLED_MID_RUN = """
import os, signal, sys
from clear_core.config import preset_config
from clear_core.formats import read_dataset
from clear_core.store import Workspace
data, ws_path, model = sys.argv[1:]
ws = Workspace.open(ws_path)
info = ws.add_dataset("k", read_dataset(data))
print(ws.create_run(info.id, "score", preset_config("fast", model=model, batch_size=8).to_json(), info.n_rows),
      flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_run_reads_interrupted_with_its_resume_command(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app_helpers import close_app_workspace
    from clear_core.cli import main

    data = write_rows(tmp_path / "k.jsonl", n=40, seed=5)
    ws_path = str(tmp_path / "k.duckdb")
    proc = subprocess.run([sys.executable, "-c", _KILLED_MID_RUN, str(data), ws_path, str(tiny_model_dir)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL and proc.stdout.strip() == "1", proc.stdout + proc.stderr
    assert main(["runs", "k", "--workspace", ws_path]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split()[:4] == ["1", "score", "interrupted", "0/40"]  # not `running` forever
    assert len(lines) == 3 and "the process that ran it (pid " in lines[2] and "killed or crashed" in lines[2]
    assert f"`clear-studio resume 1 --workspace {ws_path}` goes on from its last committed batch" in lines[2]

    # The app shows it the same way, with its Resume button.
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", ws_path)
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        at.switch_page("app_pages/data.py").run()
        assert not at.exception, [e.value for e in at.exception]
        shown = " ".join(w.value for w in at.warning)
        assert "Score run #1 is interrupted at 0 / 40 rows" in shown and "ended without closing it" in shown, shown
        assert at.button(key="resume_1").label == "Resume run #1"
    finally:
        close_app_workspace(ws_path)

    # Resuming finishes the run; then there is nothing left to resume.
    assert main(["resume", "1", "--workspace", ws_path, "--quiet"]) == 0
    assert "resuming score run 1 (interrupted, 0/40 done)" in capsys.readouterr().out
    assert main(["runs", "k", "--workspace", ws_path]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].split()[:4] == ["1", "score", "done", "40/40"]


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path, tiny_model_dir, tiny_backend):
    from clear_core import pipeline
    from clear_core.config import preset_config
    from clear_core.formats import read_dataset
    from clear_core.store import Workspace

    data = write_rows(tmp_path / "kr.jsonl", n=N_ROWS, seed=7)
    ws_path = tmp_path / "kr.duckdb"
    cmd = [sys.executable, "-m", "clear_core.cli", "score", str(data), "--model", str(tiny_model_dir),
           "--workspace", str(ws_path), "--batch-size", str(BATCH), "--preset", PRESET]
    env = _env()
    rng = random.Random(SEED)
    done_after_kill, context_after_kill, status_after_kill = [], [], []
    for kill in range(KILLS):
        proc = _start(cmd, env)
        try:
            _wait_for_start(proc, time.time() + 60)
            if kill == 0:
                _wait_for_rows(proc, rng.randint(BATCH, N_ROWS - 2 * BATCH), time.time() + 60)
            else:
                time.sleep(rng.uniform(0.0, 1.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        with Workspace.open(ws_path, read_only=True) as ws:
            runs = ws.list_runs()
            assert len(runs) == 1, "a restart must resume the unfinished run, not start another"
            done_after_kill.append(len(ws.done_rows(runs[0].id, "rows")))
            context_after_kill.append(len(ws.done_rows(runs[0].id, "context")))
            status_after_kill.append(runs[0].status)
    final = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stdout + final.stderr
    assert "resuming run" in final.stdout or done_after_kill[-1] == 0
    # At least one kill landed in the middle of the rows stage (the test exercised a partial run).
    assert any(0 < d < N_ROWS for d in done_after_kill), done_after_kill
    assert done_after_kill == sorted(done_after_kill)  # committed work is never lost
    assert context_after_kill == sorted(context_after_kill)
    # A killed run reads as interrupted, never `running` (the first kill lands mid-run; a later one may come after
    # the run is done).
    assert status_after_kill[0] == "interrupted" and set(status_after_kill) <= {"interrupted", "done"}, \
        status_after_kill
    print("rows / in-context rows committed after each kill:", done_after_kill, context_after_kill)

    # The uninterrupted reference: same data, same settings, one go.
    with Workspace.open(tmp_path / "ref.duckdb") as ref:
        ref.add_dataset("kr", read_dataset(str(data)))
        ref_id = pipeline.run_scoring(ref, "kr", preset_config(PRESET, model=str(tiny_model_dir), batch_size=BATCH),
                                      backend=tiny_backend)
        expected = ref.scores_wide(ref_id)
        expected_weights = ref.get_run(ref_id).weights

    with Workspace.open(ws_path, read_only=True) as ws:
        run = ws.list_runs()[0]
        assert run.status == "done" and run.n_total == N_ROWS
        got = ws.scores_wide(run.id)
        cur = ws.cursor()
        per_stage = cur.execute("SELECT stage, row_idx, count(*) AS n FROM row_status WHERE run_id = ? "
                                "GROUP BY ALL", [run.id]).df()
        per_signal = cur.execute("SELECT signal, row_idx, count(*) AS n FROM scores WHERE run_id = ? "
                                 "GROUP BY ALL", [run.id]).df()
        per_emb = cur.execute("SELECT kind, row_idx, count(*) AS n FROM embeddings WHERE run_id = ? "
                              "GROUP BY ALL", [run.id]).df()
        weights = run.weights
    assert (per_stage["n"] == 1).all() and len(per_stage) == 3 * N_ROWS  # rows, context, dataset
    n_signals = len(preset_config(PRESET).signals) + 1  # + confidence
    assert (per_signal["n"] == 1).all() and len(per_signal) == n_signals * N_ROWS
    assert (per_emb["n"] == 1).all() and len(per_emb) == 2 * N_ROWS
    pd.testing.assert_frame_equal(got, expected, atol=1e-5, rtol=1e-4)
    assert weights.keys() == expected_weights.keys()
    assert all(abs(weights[k] - expected_weights[k]) < 1e-4 for k in weights)
