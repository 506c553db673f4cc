"""Scoring on Ray workers (`clear_core.distributed`, `clear-studio score/resume --workers N`).

One local Ray cluster (`ray.init(num_cpus=2)`) for the module. A `clear-studio score --workers 2` process joins it
with --ray-address and is killed (SIGKILL) once some shards are committed; the run goes on in this process, is
stopped by its cancel event after one more shard, and is finished by `clear-studio resume --workers 2`. Every row
is committed once, each session scores only the rows left, and the scores and weights equal those of a
single-process run of the same config. Most of the time is the workers' imports of torch and transformers (each
actor pool: one pair of fresh processes), so the module starts as few pools as it can: three.
"""

from __future__ import annotations

import signal
import sys
import threading

import pandas as pd
import pytest

from conftest import write_rows
from test_kill_resume import _env, _start, _wait_for_rows, _wait_for_start

N_ROWS, BATCH, PRESET = 100, 5, "fast"


@pytest.fixture(scope="module")
def ray_address():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir, tiny_backend):
    """The data file, and the scores and weights of its single-process run."""
    from clear_core import pipeline
    from clear_core.config import preset_config
    from clear_core.formats import read_dataset
    from clear_core.store import Workspace

    tmp = tmp_path_factory.mktemp("distributed")
    data = write_rows(tmp / "d.jsonl", n=N_ROWS, seed=11)
    with Workspace.open(tmp / "ref.duckdb") as ws:
        ws.add_dataset("d", read_dataset(str(data)))
        run_id = pipeline.run_scoring(ws, "d", preset_config(PRESET, model=str(tiny_model_dir), batch_size=BATCH),
                                      backend=tiny_backend)
        return data, ws.scores_wide(run_id), ws.get_run(run_id).weights


def _committed(ws_path, run_id: int) -> int:
    from clear_core.store import Workspace

    with Workspace.open(ws_path, read_only=True) as ws:
        return len(ws.done_rows(run_id, "rows"))


def test_killed_stopped_and_resumed_on_workers_equals_one_process(tmp_path, ray_address, reference,
                                                                   tiny_model_dir, tiny_backend, capsys):
    from clear_core import pipeline
    from clear_core.cli import main
    from clear_core.distributed import Workers
    from clear_core.errors import Cancelled, ClearError
    from clear_core.store import Workspace

    data, expected, expected_weights = reference
    ws_path = tmp_path / "w.duckdb"
    cmd = [sys.executable, "-m", "clear_core.cli", "score", str(data), "--model", str(tiny_model_dir),
           "--workspace", str(ws_path), "--batch-size", str(BATCH), "--preset", PRESET,
           "--workers", "2", "--ray-address", ray_address]
    proc = _start(cmd, _env())
    try:
        _wait_for_start(proc, deadline=_deadline(600))
        _wait_for_rows(proc, 4 * BATCH, deadline=_deadline(600))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = _committed(ws_path, 1)
    assert 4 * BATCH <= killed < N_ROWS and killed % BATCH == 0, killed  # whole shards only

    with Workspace.open(ws_path) as ws:
        assert ws.get_run(1).status == "interrupted"
        # More workers than the cluster has CPUs for: refused in one line, not a wait for ever; nothing committed.
        with pytest.raises(ClearError, match="3 workers of 1 CPUs each need 3 CPUs; the Ray cluster has 2"):
            pipeline.resume(ws, 1, backend=tiny_backend, workers=Workers(3))
        # The app's stop button: the cancel event, checked between shards; the shards in flight are dropped.
        cancel, seen = threading.Event(), []

        def stop_after_one_shard(p):
            seen.append((p.stage, p.done))
            if p.stage == "rows" and p.done > killed:
                cancel.set()

        with pytest.raises(Cancelled, match=f"run 1 stopped at {killed + BATCH} of {N_ROWS} rows"):
            pipeline.resume(ws, 1, backend=tiny_backend, progress=stop_after_one_shard, cancel=cancel,
                            workers=Workers(2))
        assert seen == [("rows", killed), ("rows", killed + BATCH)]
        assert ws.get_run(1).status == "stopped"
    stopped = _committed(ws_path, 1)
    assert stopped == killed + BATCH

    capsys.readouterr()
    assert main(["resume", "1", "--workspace", str(ws_path), "--workers", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"resuming score run 1 (stopped, {stopped}/{N_ROWS} done) on 2 workers" in out
    assert f"this session: {N_ROWS - stopped} rows scored" in out  # only the rows left

    with Workspace.open(ws_path, read_only=True) as ws:
        run = ws.get_run(1)
        assert run.status == "done" and len(ws.list_runs()) == 1
        per_stage = ws.cursor().execute("SELECT stage, row_idx, count(*) AS n FROM row_status WHERE run_id = 1 "
                                        "GROUP BY ALL").df()
        got, weights = ws.scores_wide(1), run.weights
    assert (per_stage["n"] == 1).all() and len(per_stage) == 2 * N_ROWS  # rows and dataset stages, once each
    pd.testing.assert_frame_equal(got, expected, atol=1e-6, rtol=0)
    assert weights.keys() == expected_weights.keys()
    assert all(abs(weights[k] - expected_weights[k]) < 1e-6 for k in weights)


def test_without_ray_the_worker_flags_name_the_extra(tmp_path, monkeypatch, capsys):
    from clear_core.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, installed or not
    ws = str(tmp_path / "none.duckdb")
    for argv in (["score", "d", "--workers", "2", "--workspace", ws], ["resume", "1", "--workers", "2",
                                                                       "--workspace", ws]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == 'error: scoring on workers needs Ray, which is not installed: pip install "clear-studio[ray]"'
    assert main(["score", "d", "--ray-address", "auto", "--workspace", ws]) == 2
    assert "--ray-address needs --workers N" in capsys.readouterr().err
    assert not (tmp_path / "none.duckdb").exists()  # refused before the workspace is opened


def _deadline(seconds: float) -> float:
    import time

    return time.time() + seconds
