"""Small DuckDB helpers shared by the store modules: transactions, temporary registrations, timestamps."""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

import numpy as np


@contextmanager
def transaction(cur) -> Iterator[Any]:
    """BEGIN ... COMMIT on this cursor; any exception rolls everything back and propagates."""
    cur.execute("BEGIN TRANSACTION")
    try:
        yield cur
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    try:
        cur.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (a write-write conflict) leaves the transaction aborted; clear it so the cursor stays usable.
        try:
            cur.execute("ROLLBACK")
        except Exception:
            pass
        raise


@contextmanager
def registered(cur, name: str, data) -> Iterator[str]:
    """Expose a DataFrame / Arrow table to SQL on this cursor under `name` for the duration of the block.

    Registrations are per cursor, so two threads each using their own cursor never see each other's batches.
    """
    cur.register(name, data)
    try:
        yield name
    finally:
        cur.unregister(name)


def utcnow() -> datetime:
    """Naive UTC timestamp (the workspace stores TIMESTAMP columns in UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def as_rows(rows) -> np.ndarray:
    """Row indices as a 1-D int64 array (accepts an int, a list, a numpy array or a pandas Series)."""
    arr = np.atleast_1d(np.asarray(rows, dtype=np.int64))
    if arr.ndim != 1:
        raise ValueError(f"rows must be one-dimensional, got shape {arr.shape}")
    return arr


def sorted_unique(rows: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy 2's hash-based unique is much slower on a million ints)."""
    rows = np.sort(rows)
    return rows[np.concatenate(([True], rows[1:] != rows[:-1]))] if len(rows) else rows


def to_json(value) -> str | None:
    """JSON text for a JSON column: None stays NULL, a str is checked to be JSON, anything else is dumped."""
    if value is None:
        return None
    if isinstance(value, str):
        json.loads(value)  # raises on text that is not JSON
        return value
    if hasattr(value, "to_json"):
        return value.to_json()
    if dataclasses.is_dataclass(value):
        return json.dumps(dataclasses.asdict(value), sort_keys=True)
    return json.dumps(value, sort_keys=True)


def from_json(text):
    return None if text is None else json.loads(text)


def first(result):
    """The first row of an executed query, or None; reads the result to its end, since DuckDB 2 keeps a partly
    read result open on the cursor (and refuses relation queries on it until it is finished)."""
    rows = result.fetchall()
    return rows[0] if rows else None


def arrow(cur, sql: str, params: dict):
    """A query's full result as an Arrow table (strings stay Arrow strings: no Python object per value)."""
    return cur.sql(sql, params=params).to_arrow_table()
