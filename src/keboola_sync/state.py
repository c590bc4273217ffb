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

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import ConfigError, LedgerUnwritable
from .fileid import Fingerprint

log = logging.getLogger("keboola_sync.state")

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


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` now (None: nothing)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def unreadable_ledger(path: Path, exc: Exception) -> str:
    return (
        f"cannot open the state database {path}: {exc}. Move it aside (the next run re-checks every file "
        "against Keboola and reloads only what differs) or point state.path at the right file"
    )


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


def _seen(fp: Fingerprint | None) -> dict[str, int | None]:
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


def _record(row: sqlite3.Row) -> FileRecord:
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


class Ledger:
    """All SQL of the daemon lives here; `sync` asks and records, it never writes SQL itself."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._readonly = readonly
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we write
        self._write_error: str | None = None  # set while writes fail (said once, see _tx)
        # Set when state.path was replaced by something that cannot be opened: the daemon stops (exit 2).
        self.lost: ConfigError | None = None
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
            self._conn.row_factory = sqlite3.Row
        else:
            self._open()

    def _open(self) -> None:
        """Open (or create) the ledger for writing, and remember which file it is (to notice a replacement)."""
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across process crashes in WAL mode; only a power loss may drop
            # the last transactions, which the next start re-checks by hash anyway.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self._identity = _identity(path)
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
        """One write transaction. A full or read-only volume is said once per episode, naming state.path
        and the fix (not a traceback per file), and raised as LedgerUnwritable for the caller to drop."""
        with self._lock:
            self._follow_replacement()
            try:
                with self._conn:
                    yield self._conn
            except sqlite3.OperationalError as exc:
                raise self._unwritable(exc) from exc
            if self._write_error is not None:
                self._write_error = None
                log.info("the state database %s can be written again; loads go on", self.path)

    def _unwritable(self, exc: sqlite3.OperationalError) -> LedgerUnwritable:
        if self._write_error is None:
            self._write_error = str(exc)
            log.error(
                "cannot write the state database %s (%s): loads stop at their first write to it and are "
                "tried again at every rescan. Free space on its volume or make it writable (state.path); "
                "the daemon goes on by itself once it can write",
                self.path,
                exc,
            )
        return LedgerUnwritable(self.path, exc)

    def check_replaced(self) -> None:
        """Notice a ledger deleted or replaced while the daemon runs (the daemon asks at each heartbeat;
        every write transaction asks too)."""
        with self._lock:
            self._follow_replacement()

    def _follow_replacement(self) -> None:
        """Writes into a deleted (unlinked) file are lost at the next start, so a ledger deleted or
        replaced behind our back is noticed here and the file at state.path is opened instead: a deleted
        one is created again empty, and every file is judged again against Keboola. Called with the lock.

        The old connection is closed first, then the old `-wal`/`-shm` files are removed: SQLite refuses
        to checkpoint into a moved or deleted file (SQLITE_READONLY_DBMOVED), so they still hold the old
        file's last transactions, and SQLite would replay them onto whatever is now at state.path. (A
        ledger moved aside while running keeps its state as of its last checkpoint.) If the new file
        cannot be opened, the daemon stops with exit code 2 (`lost`): guessing on would be worse, and the
        start-up check names the fix."""
        if self._readonly or self.lost is not None:
            return
        now = _identity(self.path)
        if now == self._identity:
            return
        log.error(
            "the state database %s was %s while the daemon was running; %s. Every file is checked again "
            "against Keboola. Never delete or replace state.path while keboola-sync runs: stop it first",
            self.path,
            "deleted" if now is None else "replaced by another file",
            "creating it again" if now is None else "opening the file now there",
        )
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        try:
            self._open()
        except ConfigError as exc:
            self.lost = exc
            log.error("cannot use the file now at state.path: %s; stopping with exit code 2", exc.message)
            # Something to answer reads and take writes until the daemon has stopped.
            self._conn = sqlite3.connect(":memory:", check_same_thread=False)
            self._migrate()
            self._conn.row_factory = sqlite3.Row

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
        """The path that first claimed a table id (two files mapping to one table: the later one loses).
        Table names are case-insensitive in Keboola (§12), so `Orders` and `orders` are one table."""
        with self._lock:
            row = self._conn.execute(
                "SELECT path FROM files WHERE lower(table_id) = lower(?) ORDER BY rowid LIMIT 1", (table_id,)
            ).fetchone()
        return None if row is None else row[0]

    def known_buckets(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT bucket_id FROM buckets")}

    def bucket_of_folder(self) -> dict[str, str]:
        """folder -> the bucket id Keboola has for it (the newest record wins)."""
        with self._lock:
            rows = self._conn.execute("SELECT folder, bucket_id FROM buckets ORDER BY created_at").fetchall()
        return {folder: bucket_id for folder, bucket_id in rows}

    # -- writing -----------------------------------------------------------------------------------

    def _upsert(self, conn: sqlite3.Connection, path: str, table_id: str | None, **fields: object) -> None:
        fields["updated_at"] = time.time()
        exists = conn.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone()
        if exists:
            sets = ", ".join(f"{k} = ?" for k in fields)
            conn.execute(f"UPDATE files SET {sets}, table_id = ? WHERE path = ?", (*fields.values(), table_id, path))  # noqa: S608
        else:
            fields.setdefault("state", LedgerState.PENDING.value)
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
    ) -> None:
        """The content is in Keboola file storage; if the import fails it is retried from this file id."""
        with self._tx() as conn:
            self._upsert(
                conn,
                path,
                table_id,
                state=LedgerState.PENDING.value,
                pending_size=fp.size,
                pending_mtime_ns=fp.mtime_ns,
                pending_inode=fp.inode,
                pending_ctime_ns=fp.ctime_ns,
                pending_sha256=sha256,
                pending_columns=json.dumps(list(columns)),
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
        header: tuple[str, ...] | None = None,
        table_import_date: str | None = None,
    ) -> None:
        with self._tx() as conn:
            self._upsert(
                conn,
                path,
                table_id,
                state=LedgerState.SYNCED.value,
                **_seen(fp),
                sha256=sha256,
                columns=json.dumps(list(columns)),
                header=None if header is None else json.dumps(list(header)),
                table_import_date=table_import_date,
                rows=rows,
                last_load_at=time.time(),
                job_id=None,
                pending_size=None,
                pending_mtime_ns=None,
                pending_inode=None,
                pending_ctime_ns=None,
                pending_sha256=None,
                pending_columns=None,
                error=None,
                next_retry_at=None,
            )

    def record_unchanged(self, path: str, table_id: str, fp: Fingerprint) -> None:
        """A touch without a change: remember the new fingerprint so the file is not read again."""
        with self._tx() as conn:
            self._upsert(conn, path, table_id, **_seen(fp))

    def record_skipped(
        self, path: str, table_id: str | None, fp: Fingerprint | None, error: str, depends: str | None = None
    ) -> None:
        """The file is invalid as it is: skip it until its fingerprint (or what it `depends` on) changes."""
        with self._tx() as conn:
            self._upsert(
                conn,
                path,
                table_id,
                state=LedgerState.SKIPPED.value,
                error=error,
                depends=depends,
                next_retry_at=None,
                **_seen(fp),
            )

    def judge_again(self, path: str) -> None:
        """A skip whose verdict may have changed (a setting it names changed): pending, so the next look
        judges the file again. Its version and verdict are kept, so the same verdict for the same version
        is not said twice."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE files SET state = ?, updated_at = ? WHERE path = ? AND state = ?",
                (LedgerState.PENDING.value, time.time(), path, LedgerState.SKIPPED.value),
            )

    def record_failed(
        self,
        path: str,
        table_id: str | None,
        fp: Fingerprint | None,
        error: str,
        retry_at: float | None,
        retry_seconds: float | None = None,
    ) -> None:
        """Keboola refused or kept failing: retry at `retry_at` (None: only when the file changes)."""
        with self._tx() as conn:
            self._upsert(
                conn,
                path,
                table_id,
                state=LedgerState.FAILED.value,
                error=error,
                next_retry_at=retry_at,
                retry_seconds=retry_seconds,
                job_id=None,
                **_seen(fp),
            )

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
                "UPDATE files SET columns = NULL, header = NULL, sha256 = NULL, table_import_date = NULL, "
                "seen_size = NULL, seen_mtime_ns = NULL, seen_inode = NULL, seen_ctime_ns = NULL, state = ?, "
                "updated_at = ? WHERE table_id = ?",
                (LedgerState.PENDING.value, time.time(), table_id),
            )

    def forget_content(self, path: str) -> None:
        """Someone else loaded the table: what it holds is no longer the file's, so the next look at the
        file loads it again. What it was created from (header, columns) is kept."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE files SET sha256 = NULL, table_import_date = NULL, seen_size = NULL, seen_mtime_ns = NULL, "
                "seen_inode = NULL, seen_ctime_ns = NULL, state = ?, updated_at = ? WHERE path = ?",
                (LedgerState.PENDING.value, time.time(), path),
            )

    def forget_path(self, path: str) -> None:
        """The path is no longer a file (a folder took its name): its row goes, so no verdict about a file
        that is not there lingers in `status` or the exit code. The table in Keboola is left as it is."""
        with self._tx() as conn:
            conn.execute("DELETE FROM files WHERE path = ?", (path,))

    def integrity_ok(self) -> bool:
        with self._lock:
            verdict: str = self._conn.execute("PRAGMA integrity_check").fetchone()[0]
        return verdict == "ok"
