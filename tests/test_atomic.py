"""atomic_dir: a folder appears whole or not at all; temps of killed writers are cleaned by the next write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clear_core.atomic import atomic_dir
from clear_core.errors import ClearError

ROOT = Path(__file__).resolve().parents[1]


def _fill(folder: Path, n: int = 3) -> None:
    (folder / "sub").mkdir()
    for i in range(n):
        (folder / f"part{i}.bin").write_bytes(bytes([i]) * 1000)
    (folder / "sub" / "config.json").write_text("{}")


def _names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_killed_writers_temp_is_removed_and_the_folder_appears_whole(tmp_path):
    target = tmp_path / "model"
    # A writer killed by SIGKILL halfway through filling the folder: no cleanup runs.
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from clear_core.atomic import atomic_dir

        with atomic_dir({str(target)!r}) as tmp:
            (tmp / "part0.bin").write_bytes(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGKILL)
        """)], check=False, cwd=ROOT)
    assert killed.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].is_dir() and left[0].name.startswith(".model.") and not target.exists()
    live = tmp_path / f".model.{os.getpid()}.00ff.tmp"  # a write under way in a live process is left alone
    live.mkdir()

    with atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and not target.exists()  # nothing at the target while it is being written
        _fill(tmp)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model", live.name])  # the dead one's temp is gone
    assert _names(target) == ["part0.bin", "part1.bin", "part2.bin", "sub", "sub/config.json"]
    assert (target / "part2.bin").read_bytes() == bytes([2]) * 1000


def test_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        _fill(tmp)
        raise RuntimeError("save failed")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_another_writer_finished_first_is_kept(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target, keep="config.json") as tmp:
        (tmp / "config.json").write_text("mine")
        target.mkdir()  # another process renames its finished folder into place meanwhile
        (target / "config.json").write_text("theirs")
    assert (target / "config.json").read_text() == "theirs" and _names(tmp_path) == ["model", "model/config.json"]


def test_an_unfinished_folder_in_the_way_is_a_clear_error(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stray.txt").write_text("")
    with pytest.raises(ClearError, match=f"cannot write folder {target}: something else is already there"):
        with atomic_dir(target, keep="config.json") as tmp:
            (tmp / "config.json").write_text("{}")
    assert _names(tmp_path) == ["model", "model/stray.txt"]  # ours is removed, theirs left as it was
    with pytest.raises(ClearError, match="does not exist"):
        with atomic_dir(tmp_path / "no" / "model"):
            pass


def test_an_empty_folder_at_the_target_is_replaced(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    with atomic_dir(target) as tmp:
        _fill(tmp, n=1)
    assert _names(target) == ["part0.bin", "sub", "sub/config.json"]
