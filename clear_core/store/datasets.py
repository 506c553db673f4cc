"""Datasets and their rows (`examples`): import a ReadResult, list, look up, read rows back.

Every function takes a DuckDB cursor; `Workspace` passes the calling thread's own.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ClearError, UnknownNameError
from .db import as_rows, first, registered, transaction, utcnow
from .schema import RUN_TABLES

EXAMPLE_COLUMNS = ("row_idx", "row_id", "line", "prompt", "prompt_text", "response", "original")
_INSERT_CHUNK = 200_000  # rows converted to Arrow and inserted at a time: bounds the extra memory of an import


@dataclass(frozen=True)
class DatasetInfo:
    id: int
    name: str
    source_path: str | None
    spec_json: str
    sha256: str
    n_rows: int
    created_at: datetime

    @property
    def spec(self):
        """The FormatSpec that export needs to write rows back in the source's own format."""
        from ..formats import FormatSpec

        return FormatSpec.from_json(self.spec_json)

    @property
    def spec_dict(self) -> dict:
        return json.loads(self.spec_json)


_DATASET_COLUMNS = "id, name, source_path, spec, sha256, n_rows, created_at"


@dataclass(frozen=True)
class ExampleRow:
    """One row of a dataset as the store returns it, decoded: `prompt` is the messages before the response
    ({"role", "content"} dicts), `prompt_text` their readable flattening, `original` the source text of the row."""

    row_idx: int
    row_id: str
    line: int
    prompt: tuple[dict, ...]
    prompt_text: str
    response: str
    original: str


def _info(row) -> DatasetInfo:
    return DatasetInfo(int(row[0]), row[1], row[2], row[3], row[4], int(row[5]), row[6])


def list_datasets(cur) -> list[DatasetInfo]:
    rows = cur.execute(f"SELECT {_DATASET_COLUMNS} FROM datasets ORDER BY id").fetchall()
    return [_info(r) for r in rows]


def find_dataset(cur, name: str) -> DatasetInfo | None:
    row = first(cur.execute(f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE name = ?", [name]))
    return _info(row) if row else None


def get_dataset(cur, name_or_id) -> DatasetInfo:
    """A dataset by name, or by id (an int, or digits that name no dataset); UnknownNameError lists the names."""
    if isinstance(name_or_id, DatasetInfo):
        name_or_id = name_or_id.id
    row = None
    if isinstance(name_or_id, str):
        row = first(cur.execute(f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE name = ?", [name_or_id]))
    if row is None and str(name_or_id).isdigit():
        row = first(cur.execute(f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE id = ?", [int(name_or_id)]))
    if row is None:
        names = [r[0] for r in cur.execute("SELECT name FROM datasets ORDER BY id").fetchall()]
        raise UnknownNameError("dataset", str(name_or_id), names)
    return _info(row)


def _same_spec(a: str, b: str) -> bool:
    return json.loads(a) == json.loads(b)


def add_dataset(cur, name: str, result, replace: bool = False,
                progress: Callable[[int, int], None] | None = None) -> DatasetInfo:
    """Import the records of a formats.ReadResult as dataset `name`, in one transaction.

    Same name, same file hash and same format spec: nothing is inserted and the existing dataset is returned, so
    importing a file twice is harmless. Other content under an existing name is a ClearError unless `replace`, which
    deletes the old rows together with their runs, scores and decisions (row numbers would no longer match).
    A failure anywhere leaves the workspace as it was. `progress(done, total)` is called after each chunk.
    """
    if not isinstance(name, str) or not name.strip():
        raise ClearError("a dataset needs a non-empty name")
    spec_json = result.spec.to_json()
    existing = find_dataset(cur, name)
    if existing is not None:
        if existing.sha256 == result.sha256 and _same_spec(existing.spec_json, spec_json):
            return existing
        if not replace:
            raise ClearError(
                f"dataset '{name}' already exists with different content (from {existing.source_path}, "
                f"{existing.n_rows} rows); pass --replace to overwrite it (its runs and decisions are deleted) "
                "or choose another --name")
    records = result.records
    with transaction(cur):
        if existing is not None:
            _delete_dataset(cur, existing.id)
        dataset_id = cur.execute(
            "INSERT INTO datasets (name, source_path, spec, sha256, n_rows, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            [name, str(result.path), spec_json, result.sha256, len(records), utcnow()],
        ).fetchall()[0][0]
        # The next chunk is converted to Arrow (Python, holds the GIL) while DuckDB inserts this one (releases it).
        n = len(records)
        with ThreadPoolExecutor(max_workers=1) as pool:
            upcoming = pool.submit(_examples_table, records, 0, min(_INSERT_CHUNK, n))
            for start in range(0, n, _INSERT_CHUNK):
                chunk = upcoming.result()
                stop = min(start + _INSERT_CHUNK, n)
                if stop < n:
                    upcoming = pool.submit(_examples_table, records, stop, min(stop + _INSERT_CHUNK, n))
                with registered(cur, "_clear_examples", chunk):
                    cur.execute("INSERT INTO examples SELECT ?, row_idx, row_id, line, prompt, prompt_text, "
                                "response, original FROM _clear_examples", [dataset_id])
                if progress is not None:
                    progress(stop, n)
    return get_dataset(cur, int(dataset_id))


def _examples_table(records: Sequence, start: int, stop: int) -> pa.Table:
    """Records[start:stop] as an Arrow table in the column order of EXAMPLE_COLUMNS (prompt as JSON text)."""
    from ..formats import record_columns

    columns = record_columns(records[start:stop])
    table = {"row_idx": pa.array(np.arange(start, stop, dtype=np.int32))}
    for name in EXAMPLE_COLUMNS[1:]:
        table[name] = pa.array(columns.pop(name), pa.int32() if name == "line" else pa.string())
    return pa.table(table)


def _delete_dataset(cur, dataset_id: int) -> None:
    """Delete a dataset with everything that refers to it (call inside a transaction)."""
    for table in RUN_TABLES:  # fixed identifiers from schema.RUN_TABLES
        cur.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT id FROM runs WHERE dataset_id = ?)", [dataset_id])
    for table in ("runs", "decisions", "examples"):
        cur.execute(f"DELETE FROM {table} WHERE dataset_id = ?", [dataset_id])
    cur.execute("DELETE FROM datasets WHERE id = ?", [dataset_id])


def delete_dataset(cur, name_or_id) -> None:
    info = get_dataset(cur, name_or_id)
    with transaction(cur):
        _delete_dataset(cur, info.id)


def examples(cur, dataset_id: int, row_idx=None, limit: int | None = None, offset: int = 0,
             columns: Sequence[str] = EXAMPLE_COLUMNS) -> pd.DataFrame:
    """Rows of a dataset in row order: all, a window (limit/offset), or the given row indices."""
    unknown = [c for c in columns if c not in EXAMPLE_COLUMNS]
    if unknown:
        raise UnknownNameError("example column", unknown[0], EXAMPLE_COLUMNS)
    select = ", ".join(columns)  # validated against EXAMPLE_COLUMNS above
    params: dict = {"dataset": int(dataset_id), "offset": int(offset)}
    where = "dataset_id = $dataset"
    if row_idx is not None:
        params["rows"] = as_rows(row_idx).tolist()
        where += " AND row_idx IN (SELECT unnest($rows::INTEGER[]))"
    window = " OFFSET $offset"
    if limit is not None:
        params["limit"] = int(limit)
        window = " LIMIT $limit OFFSET $offset"
    return cur.execute(f"SELECT {select} FROM examples WHERE {where} ORDER BY row_idx{window}", params).df()


def scoring_rows(cur, dataset_id: int, row_idx) -> list[dict]:
    """{row_idx, prompt (decoded messages), response} of the given rows, in the order of `row_idx`: what scoring
    reads, without the readable prompt and the source text that `example_rows` also decodes (at a million rows
    they are two more copies of the text). All of a dataset's rows in order are read without a row filter."""
    wanted = as_rows(row_idx)
    total = cur.execute("SELECT count(*) FROM examples WHERE dataset_id = ?", [int(dataset_id)]).fetchall()[0][0]
    every = len(wanted) == total and np.array_equal(wanted, np.arange(total))
    frame = examples(cur, dataset_id, None if every else wanted, columns=("row_idx", "prompt", "response"))
    found = {int(i): (p, r) for i, p, r in zip(frame["row_idx"], frame["prompt"], frame["response"])}
    del frame
    missing = [int(r) for r in wanted if int(r) not in found]
    if missing:
        raise ClearError(f"row {missing[0]} is not a row of dataset {dataset_id}")
    return [{"row_idx": int(r), "prompt": tuple(json.loads(found[int(r)][0])), "response": found[int(r)][1]}
            for r in wanted]


def example_rows(cur, dataset_id: int, row_idx=None, limit: int | None = None, offset: int = 0) -> list[ExampleRow]:
    """Rows as ExampleRow: in row order, or in the order of `row_idx` when given (a row may appear twice there).

    The one place the stored prompt JSON is decoded."""
    frame = examples(cur, dataset_id, row_idx, limit, offset)
    decoded = {int(r.row_idx): ExampleRow(int(r.row_idx), r.row_id, int(r.line), tuple(json.loads(r.prompt)),
                                          r.prompt_text, r.response, r.original)
               for r in frame.itertuples(index=False)}
    if row_idx is None:
        return list(decoded.values())
    wanted = as_rows(row_idx).tolist()
    missing = [r for r in wanted if r not in decoded]
    if missing:
        raise ClearError(f"row {missing[0]} is not a row of dataset {dataset_id}")
    return [decoded[r] for r in wanted]
