"""The ledger: a SQLite record of what was loaded, what is in flight and what failed.

The filesystem is the source of truth; the ledger only remembers what Keboola already holds, so a restart
re-checks every file and uploads only what changed. Every state change is one transaction (WAL mode), so a
`kill -9` at any moment leaves either the old or the new row, never half of one.

A row has three groups of fields:
- `seen_*`: the version of the file we last judged (loaded, skipped as invalid, or failed). A file whose
  fingerprint still equals `seen_*` needs no work.
- `sha256`, `columns`, `rows`, `last_load_at`: what the table holds (the last successful load).
- `pending_*`, `file_id`, `job_id`: a load in flight. A crash leaves them set; the next start asks Keboola
  about the job instead of sending the import again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .fileid import Fingerprint

SCHEMA_VERSION = 1

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
}

STATES = ("synced", "pending", "failed", "skipped")


def unreadable_ledger(path: Path, exc: Exception) -> str:
    return (
        f"cannot open the state database {path}: {exc}. Move it aside (the next run re-checks every file "
        "against Keboola and reloads only what differs) or point state.path at the right file"
    )


@dataclass(frozen=True)
class FileRecord:
    path: str
    table_id: str | None
    state: str
    seen: Fingerprint | None
    seen_sha256: str | None
    sha256: str | None
    columns: tuple[str, ...] | None
    rows: int | None
    bytes: int | None
    seconds: float | None
    last_load_at: float | None
    pending: Fingerprint | None
    pending_sha256: str | None
    pending_columns: tuple[str, ...] | None
    pending_kind: str | None
    file_id: int | None
    file_uploaded_at: float | None
    job_id: int | None
    error: str | None
    attempts: int
    next_retry_at: float | None
    updated_at: float

    @property
    def in_flight(self) -> bool:
        """A job was started and its outcome never recorded (crash or abandoned shutdown)."""
        return self.job_id is not None


def _fingerprint(size: int | None, mtime_ns: int | None, inode: int | None) -> Fingerprint | None:
    if size is None or mtime_ns is None:
        return None
    return Fingerprint(size=size, mtime_ns=mtime_ns, inode=inode or 0)


def _columns(raw: str | None) -> tuple[str, ...] | None:
    return None if raw is None else tuple(json.loads(raw))


def _record(row: sqlite3.Row) -> FileRecord:
    return FileRecord(
        path=row["path"],
        table_id=row["table_id"],
        state=row["state"],
        seen=_fingerprint(row["seen_size"], row["seen_mtime_ns"], row["seen_inode"]),
        seen_sha256=row["seen_sha256"],
        sha256=row["sha256"],
        columns=_columns(row["columns"]),
        rows=row["rows"],
        bytes=row["bytes"],
        seconds=row["seconds"],
        last_load_at=row["last_load_at"],
        pending=_fingerprint(row["pending_size"], row["pending_mtime_ns"], row["pending_inode"]),
        pending_sha256=row["pending_sha256"],
        pending_columns=_columns(row["pending_columns"]),
        pending_kind=row["pending_kind"],
        file_id=row["file_id"],
        file_uploaded_at=row["file_uploaded_at"],
        job_id=row["job_id"],
        error=row["error"],
        attempts=row["attempts"],
        next_retry_at=row["next_retry_at"],
        updated_at=row["updated_at"],
    )


class Ledger:
    """All SQL of the daemon lives here; `sync` asks and records, it never writes SQL itself."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        if readonly:
            if not path.exists():
                self._conn = sqlite3.connect(":memory:", check_same_thread=False)
                self._migrate()
            else:
                self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
                try:
                    self._conn.execute("SELECT count(*) FROM files").fetchone()
                except sqlite3.Error as exc:
                    raise ConfigError("state.path", unreadable_ledger(path, exc)) from exc
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
                self._conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL is durable across process crashes in WAL mode; only a power loss may drop
                # the last transactions, which the next start re-checks by hash anyway.
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
            except (OSError, sqlite3.Error) as exc:
                raise ConfigError("state.path", unreadable_ledger(path, exc)) from exc
        self._conn.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        """Numbered migrations recorded in user_version; refuse a database written by a newer version."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(
                "state.path",
                f"{self.path} was written by a newer keboola-sync (schema {version} > {SCHEMA_VERSION}); "
                "upgrade keboola-sync or point state.path to a new file",
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            with self._conn:
                self._conn.executescript(MIGRATIONS[number])
                self._conn.execute(f"PRAGMA user_version={number}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._conn:
            yield self._conn

    # -- reading -----------------------------------------------------------------------------------

    def get(self, path: str) -> FileRecord | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        return None if row is None else _record(row)

    def all(self) -> list[FileRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM files ORDER BY path").fetchall()
        return [_record(r) for r in rows]

    def in_flight(self) -> list[FileRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM files WHERE job_id IS NOT NULL").fetchall()
        return [_record(r) for r in rows]

    def owner_of_table(self, table_id: str) -> str | None:
        """The path that first claimed a table id (two files mapping to one table: the later one loses)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT path FROM files WHERE table_id = ? ORDER BY rowid LIMIT 1", (table_id,)
            ).fetchone()
        return None if row is None else row[0]

    def known_buckets(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT bucket_id FROM buckets")}

    # -- writing -----------------------------------------------------------------------------------

    def _upsert(self, conn: sqlite3.Connection, path: str, table_id: str | None, **fields: object) -> None:
        fields["updated_at"] = time.time()
        exists = conn.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone()
        if exists:
            sets = ", ".join(f"{k} = ?" for k in fields)
            conn.execute(f"UPDATE files SET {sets}, table_id = ? WHERE path = ?", (*fields.values(), table_id, path))  # noqa: S608
        else:
            fields.setdefault("state", "pending")
            names = ", ".join(["path", "table_id", *fields])
            marks = ", ".join("?" * (len(fields) + 2))
            conn.execute(f"INSERT INTO files ({names}) VALUES ({marks})", (path, table_id, *fields.values()))  # noqa: S608

    def record_uploaded(
        self,
        path: str,
        table_id: str,
        fp: Fingerprint,
        sha256: str,
        columns: tuple[str, ...],
        file_id: int,
        kind: str,
    ) -> None:
        """The content is in Keboola file storage; if the import fails it is retried from this file id."""
        with self._tx() as conn:
            self._upsert(
                conn,
                path,
                table_id,
                state="pending",
                pending_size=fp.size,
                pending_mtime_ns=fp.mtime_ns,
                pending_inode=fp.inode,
                pending_sha256=sha256,
                pending_columns=json.dumps(list(columns)),
                pending_kind=kind,
                file_id=file_id,
                file_uploaded_at=time.time(),
                job_id=None,
            )

    def record_job_started(self, path: str, job_id: int) -> None:
        """Written the moment Keboola accepted the job, so a crash after it is resolved by asking Keboola."""
        with self._tx() as conn:
            conn.execute("UPDATE files SET job_id = ?, updated_at = ? WHERE path = ?", (job_id, time.time(), path))

    def record_synced(
        self,
        path: str,
        table_id: str,
        fp: Fingerprint,
        sha256: str,
        columns: tuple[str, ...],
        rows: int | None,
        nbytes: int | None,
        seconds: float | None,
    ) -> None:
        with self._tx() as conn:
            self._upsert(
                conn,
                path,
                table_id,
                state="synced",
                seen_size=fp.size,
                seen_mtime_ns=fp.mtime_ns,
                seen_inode=fp.inode,
                seen_sha256=sha256,
                sha256=sha256,
                columns=json.dumps(list(columns)),
                rows=rows,
                bytes=nbytes,
                seconds=seconds,
                last_load_at=time.time(),
                job_id=None,
                pending_size=None,
                pending_mtime_ns=None,
                pending_inode=None,
                pending_sha256=None,
                pending_columns=None,
                pending_kind=None,
                error=None,
                attempts=0,
                next_retry_at=None,
            )

    def record_unchanged(self, path: str, table_id: str, fp: Fingerprint) -> None:
        """A touch without a change: remember the new fingerprint so the file is not read again."""
        with self._tx() as conn:
            self._upsert(conn, path, table_id, seen_size=fp.size, seen_mtime_ns=fp.mtime_ns, seen_inode=fp.inode)

    def record_skipped(
        self, path: str, table_id: str | None, fp: Fingerprint | None, sha256: str | None, error: str
    ) -> None:
        """The file is invalid as it is: skip it until its fingerprint changes."""
        with self._tx() as conn:
            self._upsert(
                conn,
                path,
                table_id,
                state="skipped",
                error=error,
                next_retry_at=None,
                seen_size=fp.size if fp else None,
                seen_mtime_ns=fp.mtime_ns if fp else None,
                seen_inode=fp.inode if fp else None,
                seen_sha256=sha256,
            )

    def record_failed(
        self,
        path: str,
        table_id: str | None,
        fp: Fingerprint | None,
        sha256: str | None,
        error: str,
        retry_at: float | None,
    ) -> None:
        """Keboola refused or kept failing: retry at `retry_at` (None: only when the file changes)."""
        with self._tx() as conn:
            self._upsert(
                conn,
                path,
                table_id,
                state="failed",
                error=error,
                next_retry_at=retry_at,
                job_id=None,
                seen_size=fp.size if fp else None,
                seen_mtime_ns=fp.mtime_ns if fp else None,
                seen_inode=fp.inode if fp else None,
                seen_sha256=sha256,
            )
            conn.execute("UPDATE files SET attempts = attempts + 1 WHERE path = ?", (path,))

    def clear_in_flight(self, path: str) -> None:
        """The job in flight ended without loading anything (it failed): forget it, keep the file id."""
        with self._tx() as conn:
            conn.execute("UPDATE files SET job_id = NULL, updated_at = ? WHERE path = ?", (time.time(), path))

    def forget_file_id(self, path: str) -> None:
        """The kept Keboola file expired or vanished: the next load uploads again."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE files SET file_id = NULL, file_uploaded_at = NULL, updated_at = ? WHERE path = ?",
                (time.time(), path),
            )

    def record_bucket(self, bucket_id: str, folder: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO buckets (bucket_id, folder, created_at) VALUES (?, ?, ?)",
                (bucket_id, folder, time.time()),
            )

    def forget_bucket(self, bucket_id: str) -> None:
        """The bucket was deleted in Keboola behind our back: create it again on the next load."""
        with self._tx() as conn:
            conn.execute("DELETE FROM buckets WHERE bucket_id = ?", (bucket_id,))

    def forget_table(self, table_id: str) -> None:
        """The table was deleted in Keboola behind our back: the next load creates it from the file."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE files SET columns = NULL, sha256 = NULL, seen_size = NULL, seen_mtime_ns = NULL, "
                "seen_inode = NULL, seen_sha256 = NULL, state = 'pending', updated_at = ? WHERE table_id = ?",
                (time.time(), table_id),
            )

    def forget_path(self, path: str) -> None:
        """The path is no longer a file (a folder took its name): its row goes, so no verdict about a file
        that is not there lingers in `status` or the exit code. The table in Keboola is left as it is."""
        with self._tx() as conn:
            conn.execute("DELETE FROM files WHERE path = ?", (path,))

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
