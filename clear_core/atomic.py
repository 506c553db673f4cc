"""Atomic file writes: the output is written to a temp file in the target's folder and renamed over the target only
once it is complete, so a reader never sees half a file and a failed write leaves the old file as it was.

Temp files are named ".NAME.PID.RANDOM.tmp". A process killed by SIGKILL runs no cleanup and leaves its temp
behind; the PID in the name lets the next write of the same file recognise such a leftover (its process is gone)
and remove it, while the temp of a write still under way in another process is left alone. Temps are created
with mode 0o666, so that the user's umask applies as it does to any file their shell creates (mkstemp's 0o600
would make every export unreadable to the group).
"""

from __future__ import annotations

import os
import re
import secrets
from contextlib import contextmanager
from typing import IO, Iterator

from .errors import ClearError


def check_target(path: str | os.PathLike) -> None:
    """Raise ClearError when `path` cannot be written as a file: it is a directory, or its folder does not exist."""
    path = str(path)
    if os.path.isdir(path):
        raise ClearError(f"cannot write {path}: it is a directory; name a file, e.g. "
                         f"{os.path.join(path, 'curated.jsonl')}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ClearError(f"cannot write {path}: folder {folder} does not exist")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A temp path next to `path`; renamed over `path` (after an fsync) only when the block finishes without an
    error, removed otherwise. Raises ClearError when the file cannot be written at all."""
    path = str(path)
    check_target(path)
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temps(path)
    tmp = _create_temp(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync(folder)  # the rename itself survives a crash only once the folder is synced


@contextmanager
def atomic_open(path: str | os.PathLike, encoding: str = "utf-8", errors: str = "strict",
                newline: str | None = None) -> Iterator[IO[str]]:
    """A text file open for writing whose content replaces `path` atomically when the block ends without an error."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, errors=errors, newline=newline) as f:
        yield f


def remove_stale_temps(path: str | os.PathLike) -> list[str]:
    """Remove the temps of `path` left behind by processes that no longer run; returns the removed paths."""
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(_prefix(path)) + r"(\d+)\.[0-9a-f]+\.tmp")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _alive(int(match.group(1))):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
            except OSError:  # another writer removed it first, or it is not ours to remove
                pass
    return removed


def _prefix(path: str) -> str:
    return "." + os.path.basename(path) + "."


def _create_temp(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f"{_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, flags, 0o666))  # 0o666 & ~umask, like any file the user creates
            return tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise ClearError(f"cannot write {path}: {e.strerror or e}") from None


def _alive(pid: int) -> bool:
    """Whether a process of that id runs on this machine (a temp of a live process is never removed)."""
    if pid == os.getpid() or os.name == "nt":  # on Windows os.kill would terminate the process, not probe it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def _fsync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some systems; the data itself was synced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
