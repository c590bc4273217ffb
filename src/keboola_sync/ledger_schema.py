"""The ledger's shape: its SQL schema and numbered migrations, and the mapping between a row and a `FileRecord`.

Kept apart from `state.Ledger` (which opens the file, guards it and records each step) so the layout of
a row is read in one place. A row has three groups of fields:
- `seen_*`: the version of the file we last judged (loaded, skipped as invalid, or failed). A file whose
  fingerprint still equals `seen_*` needs no work.
- `sha256`, `columns`, `rows`, `last_load_at`: what the table holds (the last successful load).
- `pending_*`, `file_id`, `job_id`: a load in flight. A crash leaves them set; the next start asks Keboola
  about the job instead of sending the import again.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .fileid import Fingerprint

SCHEMA_VERSION = 3

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE files (
        path            TEXT PRIMARY KEY,   -- posix path relative to the watched folder
        table_id        TEXT,
        state           TEXT NOT NULL,      -- synced | pending | failed | skipped
        seen_size       INTEGER,
        seen_mtime_ns   INTEGER,
        seen_inode      INTEGER,
        seen_sha256     TEXT,
        sha256          TEXT,               -- content the table holds
        columns         TEXT,               -- JSON list of the table's columns after the last load
        rows            INTEGER,
        bytes           INTEGER,
        seconds         REAL,
        last_load_at    REAL,
        pending_size    INTEGER,
        pending_mtime_ns INTEGER,
        pending_inode   INTEGER,
        pending_sha256  TEXT,
        pending_columns TEXT,
        pending_kind    TEXT,               -- create | import
        file_id         INTEGER,            -- Keboola file holding pending_sha256 (kept for retries)
        file_uploaded_at REAL,
        job_id          INTEGER,            -- import/create job in flight
        error           TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_retry_at   REAL,
        updated_at      REAL NOT NULL
    );
    CREATE INDEX files_table ON files(table_id);
    CREATE TABLE buckets (
        bucket_id   TEXT PRIMARY KEY,
        folder      TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    """,
    # Columns that were written and never read. An older keboola-sync refuses schema 2 with the
    # "written by a newer keboola-sync" message; nothing it needs is lost. (DROP COLUMN: SQLite >= 3.35.)
    2: """
    ALTER TABLE files DROP COLUMN seen_sha256;
    ALTER TABLE files DROP COLUMN bytes;
    ALTER TABLE files DROP COLUMN seconds;
    ALTER TABLE files DROP COLUMN pending_kind;
    ALTER TABLE files DROP COLUMN attempts;
    """,
    # The ctime joins the fingerprint (a same-size, same-mtime rewrite is noticed); the raw header of the
    # last load, so an unchanged header never depends on predicting Keboola's column-name rules.
    3: """
    ALTER TABLE files ADD COLUMN seen_ctime_ns INTEGER;
    ALTER TABLE files ADD COLUMN pending_ctime_ns INTEGER;
    ALTER TABLE files ADD COLUMN header TEXT;
    ALTER TABLE files ADD COLUMN retry_seconds REAL;
    ALTER TABLE files ADD COLUMN depends TEXT;
    ALTER TABLE files ADD COLUMN table_import_date TEXT;
    """,
}


DEPENDS_TABLE = "table"
RIVAL = "rival:"


class LedgerState(StrEnum):
    """A row's `state` column. The values are what the database and `status --json` show."""

    SYNCED = "synced"  # the table holds the version in `seen_*`
    PENDING = "pending"  # not loaded yet, or a load is in flight
    FAILED = "failed"  # Keboola failed; tried again at `next_retry_at` or when the file changes
    SKIPPED = "skipped"  # the file is invalid as it is; tried again when it changes


@dataclass(frozen=True)
class FileRecord:
    path: str
    table_id: str | None
    state: LedgerState
    seen: Fingerprint | None
    sha256: str | None
    columns: tuple[str, ...] | None
    header: tuple[str, ...] | None  # the file's raw header cells at the last load
    rows: int | None
    last_load_at: float | None
    pending: Fingerprint | None
    pending_sha256: str | None
    pending_columns: tuple[str, ...] | None
    file_id: int | None
    file_uploaded_at: float | None
    job_id: int | None
    error: str | None
    next_retry_at: float | None
    retry_seconds: float | None = None  # the spacing that set next_retry_at (it doubles while failing)
    # What a skip depends on besides the file itself, so the verdict is judged again when that changes:
    # DEPENDS_TABLE (the remote table: a refused header or content), or RIVAL + path (another file loads
    # the same table). None: only the file's own bytes.
    depends: str | None = None
    # The table's `lastImportDate` as Keboola reported it right after our last load: another value later
    # means someone else loaded (or recreated) the table (Keboola's clock against Keboola's clock).
    table_import_date: str | None = None

    @property
    def in_flight(self) -> bool:
        """A job was started and its outcome never recorded (crash or abandoned shutdown)."""
        return self.job_id is not None


def _fingerprint(size: int | None, mtime_ns: int | None, inode: int | None, ctime_ns: int | None) -> Fingerprint | None:
    if size is None or mtime_ns is None:
        return None
    return Fingerprint(size=size, mtime_ns=mtime_ns, inode=inode or 0, ctime_ns=ctime_ns or 0)


def seen_columns(fp: Fingerprint | None) -> dict[str, int | None]:
    """The `seen_*` columns of a fingerprint (all None: no version remembered)."""
    return {
        "seen_size": fp.size if fp else None,
        "seen_mtime_ns": fp.mtime_ns if fp else None,
        "seen_inode": fp.inode if fp else None,
        "seen_ctime_ns": fp.ctime_ns if fp else None,
    }


def _columns(raw: str | None) -> tuple[str, ...] | None:
    return None if raw is None else tuple(json.loads(raw))


def _newer(row: sqlite3.Row, name: str) -> Any:
    """A column added by a later schema: None in an older ledger opened read-only (`status` beside an
    older daemon, which never migrates it)."""
    return row[name] if name in row.keys() else None  # noqa: SIM118 - sqlite3.Row has keys(), not `in`


def record_from_row(row: sqlite3.Row) -> FileRecord:
    return FileRecord(
        path=row["path"],
        table_id=row["table_id"],
        state=LedgerState(row["state"]),
        seen=_fingerprint(row["seen_size"], row["seen_mtime_ns"], row["seen_inode"], _newer(row, "seen_ctime_ns")),
        sha256=row["sha256"],
        columns=_columns(row["columns"]),
        header=_columns(_newer(row, "header")),
        rows=row["rows"],
        last_load_at=row["last_load_at"],
        pending=_fingerprint(
            row["pending_size"], row["pending_mtime_ns"], row["pending_inode"], _newer(row, "pending_ctime_ns")
        ),
        pending_sha256=row["pending_sha256"],
        pending_columns=_columns(row["pending_columns"]),
        file_id=row["file_id"],
        file_uploaded_at=row["file_uploaded_at"],
        job_id=row["job_id"],
        error=row["error"],
        next_retry_at=row["next_retry_at"],
        retry_seconds=_newer(row, "retry_seconds"),
        depends=_newer(row, "depends"),
        table_import_date=_newer(row, "table_import_date"),
    )
