"""Concurrent reviewers on the same rows: every decision log entry records the state it really replaced.

The app shares one Workspace across browser sessions (one cursor per thread), and a second connection to the same
file may decide at the same time. Each entry's prev_action / prev_text must be the row's state right before it in
log order, and each undo must take back the row's latest standing decision, so that undo restores the right state.
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pandas as pd
import pytest

from clear_core.formats import read_dataset
from clear_core.store import Workspace

N_ROWS = 24
OPS_PER_THREAD = 220


def _dataset(ws: Workspace, tmp_path: Path):
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"instruction": f"Q{i}?", "input": "", "output": f"A{i}."}) + "\n"
                           for i in range(N_ROWS)), encoding="utf-8")
    return ws.add_dataset("d", read_dataset(str(src)))


def _reviewer(ws: Workspace, dataset_id: int, name: str, seed: int, start: threading.Barrier, errors: list) -> None:
    """Single and bulk decisions and undos on overlapping rows, as fast as the store takes them."""
    rng = random.Random(seed)
    start.wait()
    try:
        for i in range(OPS_PER_THREAD):
            pick = rng.random()
            if pick < 0.35:
                row = rng.randrange(N_ROWS)
                action = rng.choice(["keep", "drop", "edit"])
                ws.record_decisions(dataset_id, [row], action, name,
                                    new_text=f"{name} {i}" if action == "edit" else None)
            elif pick < 0.6:  # a bulk action over an overlapping slice of the rows
                lo = rng.randrange(N_ROWS // 2)
                rows = sorted(rng.sample(range(lo, N_ROWS), rng.randrange(1, N_ROWS - lo + 1)))
                action = rng.choice(["keep", "drop", "edit"])
                ws.record_decisions(dataset_id, rows, action, name,
                                    new_text=f"{name} bulk {i}" if action == "edit" else None)
            elif pick < 0.85:
                ws.undo(dataset_id, name, row_idx=rng.randrange(N_ROWS))
            else:
                ws.undo(dataset_id, name)  # this reviewer's latest batch that still stands
    except Exception as exc:  # reported by the test's assertion
        errors.append(exc)


def _text(value):
    return None if value is None or pd.isna(value) else value


def _replay(log: pd.DataFrame) -> tuple[dict, list[str]]:
    """Walk the log in id order; returns the final state per row and every entry that disagrees with the replay."""
    state: dict[int, tuple] = {}
    stack: dict[int, list[int]] = {}
    entries: dict[int, tuple] = {}
    wrong = []
    for e in log.itertuples(index=False):
        row, before = int(e.row_idx), state.get(int(e.row_idx), (None, None))
        prev = (_text(e.prev_action), _text(e.prev_text))
        if prev != before:
            wrong.append(f"entry {e.id} ({e.action} by {e.reviewer}, row {row}) records {prev}, state was {before}")
        if e.action == "undo":
            top = stack.get(row, [])[-1:] or [None]
            if pd.isna(e.undoes) or int(e.undoes) != top[0]:
                wrong.append(f"entry {e.id} undoes {e.undoes} of row {row}, whose latest standing entry is {top[0]}")
                continue
            stack[row].pop()
            undone = entries[int(e.undoes)]
            if _text(e.new_text) != undone[1]:
                wrong.append(f"entry {e.id} restores {_text(e.new_text)!r}; the undone entry replaced {undone[1]!r}")
            state[row] = undone
        else:
            stack.setdefault(row, []).append(int(e.id))
            entries[int(e.id)] = prev
            state[row] = (e.action, _text(e.new_text))
    return {r: s for r, s in state.items() if s[0] is not None}, wrong


@pytest.mark.slow  # thousands of decisions from four threads
def test_concurrent_decisions_and_undos_record_the_state_they_replace(tmp_path):
    ws = Workspace.open(tmp_path / "ws.duckdb")
    second = Workspace.open(ws.path)  # another connection to the same file
    try:
        info = _dataset(ws, tmp_path)
        errors: list = []
        start = threading.Barrier(4)
        threads = [threading.Thread(target=_reviewer, args=(w, info.id, name, seed, start, errors))
                   for w, name, seed in ((ws, "alice", 1), (ws, "bob", 2), (ws, "alice", 3), (second, "carol", 4))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        log = ws.decision_log(info.id)
        assert len(log) > 2000 and (log["action"] == "undo").sum() > 300  # the race had room to happen
        final, wrong = _replay(log)
        assert not wrong, f"{len(wrong)} of {len(log)} log entries disagree with the log before them: {wrong[:3]}"
        current = {int(r.row_idx): (r.action, _text(r.text)) for r in ws.current_decisions(info.id).itertuples()}
        assert current == final
    finally:
        second.close()
        ws.close()
