"""Workspace schema: the DDL of every table, the schema version, and the migrations applied on open.

A workspace records its schema version in `meta`. Opening a workspace applies, in order and in one transaction,
every migration newer than that version; a fresh file gets them all. Migrations only ever append: a shipped
migration is never edited, a change to the schema is a new entry at the end of MIGRATIONS.
"""

from __future__ import annotations

from ..errors import ClearError
from .db import first

# Version 1: the tables of docs/ARCHITECTURE.md. Large tables carry no primary key or index: DuckDB's zone maps
# serve the range scans the app needs (rows are appended in row order per dataset / run), and an ART index over
# millions of rows would slow every bulk insert. Uniqueness of (run, stage, row) is checked by `commit_batch`.
_V1 = (
    "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE SEQUENCE dataset_ids START 1",
    "CREATE SEQUENCE run_ids START 1",
    "CREATE SEQUENCE decision_ids START 1",
    "CREATE SEQUENCE decision_batches START 1",
    """CREATE TABLE datasets (
        id INTEGER PRIMARY KEY DEFAULT nextval('dataset_ids'),
        name VARCHAR NOT NULL UNIQUE,
        source_path VARCHAR,
        spec JSON NOT NULL,
        sha256 VARCHAR NOT NULL,
        n_rows BIGINT NOT NULL,
        created_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE examples (
        dataset_id INTEGER NOT NULL,
        row_idx INTEGER NOT NULL,
        row_id VARCHAR NOT NULL,
        line INTEGER NOT NULL,
        prompt JSON NOT NULL,
        prompt_text VARCHAR NOT NULL,
        response VARCHAR NOT NULL,
        original VARCHAR NOT NULL)""",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY DEFAULT nextval('run_ids'),
        dataset_id INTEGER NOT NULL,
        kind VARCHAR NOT NULL,
        config JSON NOT NULL,
        status VARCHAR NOT NULL,
        n_total BIGINT NOT NULL,
        n_done BIGINT NOT NULL DEFAULT 0,
        n_failed BIGINT NOT NULL DEFAULT 0,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        weights JSON,
        message VARCHAR)""",
    """CREATE TABLE scores (
        run_id INTEGER NOT NULL,
        row_idx INTEGER NOT NULL,
        signal VARCHAR NOT NULL,
        value DOUBLE,
        raw DOUBLE)""",
    """CREATE TABLE embeddings (
        run_id INTEGER NOT NULL,
        row_idx INTEGER NOT NULL,
        kind VARCHAR NOT NULL,
        vec FLOAT[] NOT NULL)""",
    """CREATE TABLE row_status (
        run_id INTEGER NOT NULL,
        stage VARCHAR NOT NULL,
        row_idx INTEGER NOT NULL,
        ok BOOLEAN NOT NULL,
        error VARCHAR)""",
    """CREATE TABLE proposals (
        run_id INTEGER NOT NULL,
        row_idx INTEGER NOT NULL,
        candidate VARCHAR,
        source VARCHAR,
        judge_conf DOUBLE,
        confident BOOLEAN)""",
    """CREATE TABLE decisions (
        id BIGINT PRIMARY KEY DEFAULT nextval('decision_ids'),
        dataset_id INTEGER NOT NULL,
        row_idx INTEGER NOT NULL,
        action VARCHAR NOT NULL,
        new_text VARCHAR,
        reviewer VARCHAR NOT NULL,
        ts TIMESTAMP NOT NULL,
        prev_action VARCHAR,
        prev_text VARCHAR,
        thresholds JSON,
        batch_id BIGINT NOT NULL,
        undoes BIGINT)""",
)

# Version 2: runs remember the stage their progress counts refer to (a score run goes `rows` then `dataset`).
_V2 = ("ALTER TABLE runs ADD COLUMN stage VARCHAR",)

# Version 3: the process that marked a run running (store/runs.py `process_token`), so that a run whose process
# was killed reads as interrupted instead of running forever.
_V3 = ("ALTER TABLE runs ADD COLUMN owner VARCHAR",)

# Version 4: the thresholds an analyst set for a score run (JSON {t_drop, t_keep, eta}), read by the app, the CLI
# and export alike; NULL = none set, the default (filtering.default_thresholds) applies.
_V4 = ("ALTER TABLE runs ADD COLUMN thresholds JSON",)

# Version 5: the version of the row each decision was made on (base_id: the row's latest log entry when it was
# appended, which a reviewer's screen must still show or the store refuses a conflict), and whether an entry
# settles reviewers' disagreement on the row (made from the adjudication queue). Old entries read NULL: unknown
# version, not a settlement.
_V5 = ("ALTER TABLE decisions ADD COLUMN base_id BIGINT", "ALTER TABLE decisions ADD COLUMN settles BOOLEAN")

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5)  # MIGRATIONS[i] takes a workspace to version i + 1
SCHEMA_VERSION = len(MIGRATIONS)

# The only table names SQL in this package may interpolate (everything else is a bound parameter).
TABLES = ("meta", "datasets", "examples", "runs", "scores", "embeddings", "row_status", "proposals", "decisions")
RUN_TABLES = ("scores", "embeddings", "row_status", "proposals")  # rows keyed by run_id


def current_version(cur) -> int:
    """The schema version recorded in the workspace; 0 for an empty database."""
    has_meta = cur.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta' AND table_schema = 'main'"
    ).fetchall()[0][0]
    if not has_meta:
        return 0
    row = first(cur.execute("SELECT value FROM meta WHERE key = 'schema_version'"))
    return int(row[0]) if row else 0


def migrate(cur, path: str, read_only: bool = False, upto: int = SCHEMA_VERSION) -> int:
    """Bring the workspace to schema version `upto` (all migrations by default); returns the version reached.

    The migrations run in one transaction, so a failure leaves the workspace at its old version.
    """
    version = current_version(cur)
    if version > SCHEMA_VERSION:
        raise ClearError(f"workspace {path} has schema version {version}, newer than this CLEAR Studio "
                         f"({SCHEMA_VERSION}); upgrade clear-studio to open it")
    if version >= upto:
        return version
    if read_only:
        raise ClearError(f"workspace {path} has schema version {version} and needs an upgrade to {SCHEMA_VERSION}; "
                         "open it once without read-only")
    cur.execute("BEGIN TRANSACTION")
    try:
        for statements in MIGRATIONS[version:upto]:
            for statement in statements:
                cur.execute(statement)
        cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(upto)])
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    return upto
