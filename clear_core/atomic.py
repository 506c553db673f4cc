"""Atomic file and folder writes: the output is written to a temp file (or temp folder) in the target's folder and
renamed over the target only once it is complete, so a reader never sees half a file and a failed write leaves the
old file as it was.

Temp files are named ".NAME.PID.RANDOM.tmp". A process killed by SIGKILL runs no cleanup and leaves its temp
behind; the PID in the name lets the next write of the same file recognise such a leftover (its process is gone)
and remove it, while the temp of a write still under way in another process is left alone. Temps are created
with mode 0o666, so that the user's umask applies as it does to any file their shell creates (mkstemp's 0o600
would make every export unreadable to the group). Temp folders (`atomic_dir`) are named and cleaned the same way.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
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


@contextmanager
def atomic_dir(path: str | os.PathLike, keep: str | None = None) -> Iterator[Path]:
    """A new temp folder next to `path` to fill; renamed to `path` (its files fsynced first) only when the block
    finishes without an error, removed otherwise. Temps left by writers that were killed are removed first.

    A folder cannot be renamed over a folder that has files in it. When `path` is already there at the end (another
    process finished the same folder first), that folder is kept and ours discarded if it holds the file `keep`
    (the mark of a finished folder, e.g. a model's config.json); otherwise, a ClearError naming the folder.
    """
    path = Path(path)
    folder = path.absolute().parent
    if not folder.is_dir():
        raise ClearError(f"cannot write {path}: folder {folder} does not exist")
    remove_stale_temps(path)
    tmp = _create_temp(str(path), folder=True)
    try:
        yield Path(tmp)
        for root, _, files in os.walk(tmp):
            for name in files:
                _fsync(os.path.join(root, name))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, path)  # replaces an empty folder, fails on one with files in it
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if keep is not None and (path / keep).is_file():
            return  # the other writer's finished folder stands
        if path.exists():
            raise ClearError(f"cannot write folder {path}: something else is already there; remove it to write "
                             "it again") from None
        raise ClearError(f"cannot write folder {path}: {exc.strerror or exc}") from None
    _fsync(str(folder))


def remove_stale_temps(path: str | os.PathLike) -> list[str]:
    """Remove the temps (files or folders) of `path` left behind by processes that no longer run; returns the
    removed paths."""
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
            temp = os.path.join(folder, name)
            try:
                if os.path.isdir(temp) and not os.path.islink(temp):
                    shutil.rmtree(temp)
                else:
                    os.remove(temp)
                removed.append(temp)
            except OSError:  # another writer removed it first, or it is not ours to remove
                pass
    return removed


def _prefix(path: str) -> str:
    return "." + os.path.basename(path) + "."


def _create_temp(path: str, folder: bool = False) -> str:
    """A new empty temp file (or folder) beside `path`, named after it and this process."""
    parent = os.path.dirname(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(parent, f"{_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            if folder:
                os.mkdir(tmp, 0o777)  # 0o777 & ~umask, like any folder the user creates
            else:
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
