"""Paths the app builds from names a user or a dataset chose: a file name is a slug, never the raw name, and
every path is checked to stay inside its folder."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from clear_core.errors import ClearError

SLUG_MAX = 40


def slug(name: str, dataset_id: int) -> str:
    """A file-name stem for a dataset: lowercase a-z, 0-9, '_' and '-' (accents dropped, any other run of
    characters one '-'), at most SLUG_MAX of them, then '-' and the dataset id, so that two names with the same
    slug ("a/b", "a b") stay apart."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode().lower()
    stem = re.sub(r"[^a-z0-9_-]+", "-", ascii_name).strip("-_")[:SLUG_MAX].strip("-_")
    return f"{stem or 'dataset'}-{int(dataset_id)}"


def inside(folder: str | Path, name: str) -> Path:
    """`folder / name`, resolved; a ClearError when it is not a file name inside `folder` (a '..' or an absolute
    path out of it, a link that points out, the folder itself, or an existing folder)."""
    base = Path(folder).expanduser().resolve()
    target = (base / name).resolve()
    if target == base or not target.is_relative_to(base):
        raise ClearError(f"'{name}' is not a file name inside {base}; give a name such as data.jsonl")
    if target.is_dir():
        raise ClearError(f"{target} is a folder; give a file name")
    return target
