"""The ledger: a SQLite record of what was loaded, what is in flight and what failed.

The filesystem is the source of truth; the ledger only remembers what Keboola already holds, so a restart
re-checks every file and uploads only what changed. Every state change is one transaction (WAL mode), so a
`kill -9` at any moment leaves either the old or the new row, never half of one.

The schema, its migrations and the shape of a row (`FileRecord`) live in `ledger_schema.py`; opening the
file and guarding its writes (replaced, unwritable) in `ledger_file.py`.
"""

from __future__ import annotations

import json
import sqlite3
import time

from .fileid import Fingerprint
from .ledger_file import LedgerFile
from .ledger_schema import (
    DEPENDS_TABLE,
    RIVAL,
    FileRecord,
    LedgerState,
    record_from_row,
    seen_columns,
)

# FileRecord, LedgerState and the `depends` values are the ledger's words: importers take them from here.
__all__ = ["DEPENDS_TABLE", "RIVAL", "FileRecord", "Ledger", "LedgerState"]


class Ledger(LedgerFile):
    """All SQL of the daemon lives here (opening the file: `LedgerFile`); `sync` asks and records, it never
    writes SQL itself."""

    # -- reading -----------------------------------------------------------------------------------

    def get(self, path: str) -> FileRecord | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        return None if row is None else record_from_row(row)

    def all(self) -> list[FileRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM files ORDER BY path").fetchall()
        return [record_from_row(r) for r in rows]

    def in_flight(self) -> list[FileRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM files WHERE job_id IS NOT NULL").fetchall()
        return [record_from_row(r) for r in rows]

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
                **seen_columns(fp),
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
            self._upsert(conn, path, table_id, **seen_columns(fp))

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
                **seen_columns(fp),
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
                **seen_columns(fp),
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
