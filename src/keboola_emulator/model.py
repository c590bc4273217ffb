"""The emulator's state in SQLite: a catalog (buckets, tables, files, jobs, metadata) plus one
data file per table holding its real rows.

One SQLite file per table lets a long import write its table while the catalog stays free for
everything else; a load is one transaction on that file, so a failed full load leaves the old
rows intact. Without --data-dir the files live in a private temporary directory that is removed
at exit — a 5 GB table must not live in RAM (the RSS target), yet nothing survives the process.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

CATALOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    id TEXT PRIMARY KEY, stage TEXT NOT NULL, name TEXT NOT NULL, display_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '', backend TEXT NOT NULL, color TEXT,
    created TEXT NOT NULL, updated TEXT, last_change_date TEXT
);
CREATE TABLE IF NOT EXISTS tables (
    id TEXT PRIMARY KEY, bucket_id TEXT NOT NULL, name TEXT NOT NULL, display_name TEXT NOT NULL,
    columns TEXT NOT NULL, primary_key TEXT NOT NULL, created TEXT NOT NULL,
    last_import_date TEXT, last_change_date TEXT, rows_count INTEGER NOT NULL DEFAULT 0,
    data_size_bytes INTEGER NOT NULL DEFAULT 0, data_file TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, s3_key TEXT NOT NULL,
    created TEXT NOT NULL, size_bytes INTEGER, tags TEXT NOT NULL, is_public INTEGER NOT NULL,
    is_sliced INTEGER NOT NULL, is_encrypted INTEGER NOT NULL, is_permanent INTEGER NOT NULL,
    content_type TEXT, run_id TEXT, creator_token_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL, operation_name TEXT NOT NULL,
    table_id TEXT, operation_params TEXT NOT NULL, created TEXT NOT NULL, start_time TEXT,
    end_time TEXT, results TEXT, error TEXT, metrics TEXT NOT NULL, run_id TEXT,
    creator_token_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metadata (
    id INTEGER PRIMARY KEY AUTOINCREMENT, table_id TEXT NOT NULL, column_name TEXT,
    provider TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, timestamp TEXT NOT NULL,
    object_type TEXT NOT NULL DEFAULT 'table'
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS table_definitions (table_id TEXT PRIMARY KEY, definition TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL, body TEXT NOT NULL, created TEXT NOT NULL
);
"""
# Metadata belongs to a table (and its columns), a bucket or a branch; `table_id` holds the id of
# whichever object `object_type` names (a column added to the first schema, see Store._migrate).
METADATA_OBJECTS = ("table", "bucket", "branch")

# Real ids are large integers (§5.1 example 236518631, §6.1 22070846); start somewhere similar.
FIRST_FILE_ID = 100_000
FIRST_JOB_ID = 200_000
FIRST_EVENT_ID = 300_000


def now() -> str:
    """Storage timestamps: `2017-02-13T12:01:05+0100` (offset without colon, §10.2)."""
    return datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")


def new_table_row(
    table_id: str,
    bucket_id: str,
    name: str,
    columns: list[str],
    primary_key: list[str],
    data_file: str,
    *,
    imported: bool,
    rows_count: int,
    data_size_bytes: int,
) -> dict[str, Any]:
    """The catalog row of a table created now: from a file (`imported`: its import date is now too), or
    empty from a definition (no import yet, `lastImportDate` null)."""
    when = now()
    return {
        "id": table_id,
        "bucket_id": bucket_id,
        "name": name,
        "display_name": name,
        "columns": columns,
        "primary_key": primary_key,
        "created": when,
        "last_import_date": when if imported else None,
        "last_change_date": when,
        "rows_count": rows_count,
        "data_size_bytes": data_size_bytes,
        "data_file": data_file,
    }


POOL_KEEP = 8  # idle catalog connections kept open


class _Rows(list):  # type: ignore[type-arg]
    def fetchone(self) -> Any:
        return self[0] if self else None


class _Reader:
    """`store.read().execute(sql, args)`: runs on a pooled connection, returns fetched rows."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Rows:
        with self._store._pooled() as c:
            return _Rows(c.execute(sql, args).fetchall())


def _row(r: sqlite3.Row | None) -> dict[str, Any] | None:
    return dict(r) if r is not None else None


class Store:
    """Thread-safe access to the catalog; each thread gets its own connection (WAL mode)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tables").mkdir(parents=True, exist_ok=True)
        self._path = root / "catalog.sqlite"
        # A small pool, not thread-locals: werkzeug starts a thread per request, and a connection per
        # thread would pile up (and their page caches) under 50 concurrent clients.
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        with self._pooled() as c:
            c.executescript(CATALOG_SCHEMA)
            self._migrate(c)
        with self.write() as c:
            for name, first in (("files", FIRST_FILE_ID), ("jobs", FIRST_JOB_ID), ("events", FIRST_EVENT_ID)):
                if c.execute("SELECT 1 FROM sqlite_sequence WHERE name = ?", (name,)).fetchone() is None:
                    c.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)", (name, first))

    @staticmethod
    def _migrate(c: sqlite3.Connection) -> None:
        """A --data-dir written by an older emulator lacks metadata.object_type: add it."""
        columns = {r[1] for r in c.execute("PRAGMA table_info(metadata)")}
        if "object_type" not in columns:
            c.execute("ALTER TABLE metadata ADD COLUMN object_type TEXT NOT NULL DEFAULT 'table'")

    # -- connections -------------------------------------------------------------------------
    def _new_connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=60)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        with self._opened_lock:
            self._opened.append(conn)
        return conn

    @contextmanager
    def _pooled(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._new_connection()
        try:
            yield conn
        finally:
            if self._pool.qsize() < POOL_KEEP:
                self._pool.put(conn)
            else:
                with self._opened_lock:
                    self._opened.remove(conn)
                conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: check-then-insert (e.g. bucket exists?) is atomic."""
        with self._pooled() as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    def read(self) -> _Reader:
        return _Reader(self)

    def close(self) -> None:
        with self._opened_lock:
            for conn in self._opened:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._opened.clear()

    # -- buckets -----------------------------------------------------------------------------
    def list_buckets(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.read().execute("SELECT * FROM buckets ORDER BY id")]

    def get_bucket(self, bucket_id: str) -> dict[str, Any] | None:
        return _row(self.read().execute("SELECT * FROM buckets WHERE id = ?", (bucket_id,)).fetchone())

    def insert_bucket(self, c: sqlite3.Connection, bucket: dict[str, Any]) -> None:
        c.execute(
            "INSERT INTO buckets (id, stage, name, display_name, description, backend, color, created, updated)"
            " VALUES (:id, :stage, :name, :display_name, :description, :backend, :color, :created, :created)",
            bucket,
        )

    def delete_bucket_rows(self, c: sqlite3.Connection, bucket_id: str) -> list[dict[str, Any]]:
        tables = [dict(r) for r in c.execute("SELECT * FROM tables WHERE bucket_id = ?", (bucket_id,))]
        owned = "SELECT id FROM tables WHERE bucket_id = ?"
        c.execute(f"DELETE FROM metadata WHERE object_type = 'table' AND table_id IN ({owned})", (bucket_id,))  # noqa: S608
        c.execute(f"DELETE FROM table_definitions WHERE table_id IN ({owned})", (bucket_id,))  # noqa: S608
        c.execute("DELETE FROM metadata WHERE object_type = 'bucket' AND table_id = ?", (bucket_id,))
        c.execute("DELETE FROM tables WHERE bucket_id = ?", (bucket_id,))
        c.execute("DELETE FROM buckets WHERE id = ?", (bucket_id,))
        return tables

    # -- tables ------------------------------------------------------------------------------
    def list_tables(self, bucket_id: str | None = None) -> list[dict[str, Any]]:
        if bucket_id is None:
            rows = self.read().execute("SELECT * FROM tables ORDER BY id")
        else:
            rows = self.read().execute("SELECT * FROM tables WHERE bucket_id = ? ORDER BY id", (bucket_id,))
        return self._with_definitions([_decode_table(dict(r)) for r in rows])

    def get_table(self, table_id: str) -> dict[str, Any] | None:
        r = self.read().execute("SELECT * FROM tables WHERE id = ?", (table_id,)).fetchone()
        return self._with_definitions([_decode_table(dict(r))])[0] if r is not None else None

    def _with_definitions(self, tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`definition` is the typed-table definition (§12 "Typed tables"), None for a CSV-made table."""
        definitions = {r[0]: json.loads(r[1]) for r in self.read().execute("SELECT * FROM table_definitions")}
        for t in tables:
            t["definition"] = definitions.get(t["id"])
        return tables

    def insert_definition(self, c: sqlite3.Connection, table_id: str, definition: dict[str, Any]) -> None:
        c.execute("INSERT OR REPLACE INTO table_definitions VALUES (?, ?)", (table_id, json.dumps(definition)))

    def count_tables(self, bucket_id: str) -> int:
        return self.read().execute("SELECT COUNT(*) FROM tables WHERE bucket_id = ?", (bucket_id,)).fetchone()[0]

    def totals(self) -> tuple[int, int]:
        r = self.read().execute("SELECT COALESCE(SUM(data_size_bytes),0), COALESCE(SUM(rows_count),0) FROM tables")
        size, rows = r.fetchone()
        return int(size), int(rows)

    def insert_table(self, c: sqlite3.Connection, table: dict[str, Any]) -> None:
        c.execute(
            "INSERT INTO tables (id, bucket_id, name, display_name, columns, primary_key, created,"
            " last_import_date, last_change_date, rows_count, data_size_bytes, data_file) VALUES"
            " (:id, :bucket_id, :name, :display_name, :columns, :primary_key, :created,"
            " :last_import_date, :last_change_date, :rows_count, :data_size_bytes, :data_file)",
            {**table, "columns": json.dumps(table["columns"]), "primary_key": json.dumps(table["primary_key"])},
        )

    def update_table_after_load(
        self, table_id: str, columns: list[str], rows_count: int, data_size_bytes: int, when: str
    ) -> None:
        with self.write() as c:
            c.execute(
                "UPDATE tables SET columns = ?, rows_count = ?, data_size_bytes = ?, last_import_date = ?,"
                " last_change_date = ? WHERE id = ?",
                (json.dumps(columns), rows_count, data_size_bytes, when, when, table_id),
            )
            c.execute(
                "UPDATE buckets SET last_change_date = ? WHERE id = (SELECT bucket_id FROM tables WHERE id = ?)",
                (when, table_id),
            )

    def update_table_after_delete(self, table_id: str, rows_count: int, data_size_bytes: int, when: str) -> None:
        """After rows were deleted (truncate): new counts and lastChangeDate, lastImportDate kept."""
        with self.write() as c:
            c.execute(
                "UPDATE tables SET rows_count = ?, data_size_bytes = ?, last_change_date = ? WHERE id = ?",
                (rows_count, data_size_bytes, when, table_id),
            )
            c.execute(
                "UPDATE buckets SET last_change_date = ? WHERE id = (SELECT bucket_id FROM tables WHERE id = ?)",
                (when, table_id),
            )

    def delete_table_row(self, table_id: str) -> dict[str, Any] | None:
        with self.write() as c:
            r = c.execute("SELECT * FROM tables WHERE id = ?", (table_id,)).fetchone()
            if r is None:
                return None
            c.execute("DELETE FROM metadata WHERE object_type = 'table' AND table_id = ?", (table_id,))
            c.execute("DELETE FROM table_definitions WHERE table_id = ?", (table_id,))
            c.execute("DELETE FROM tables WHERE id = ?", (table_id,))
            return _decode_table(dict(r))

    def next_data_file(self, c: sqlite3.Connection) -> str:
        r = c.execute(
            "INSERT INTO counters(name, value) VALUES ('data_file', 1) ON CONFLICT(name)"
            " DO UPDATE SET value = value + 1 RETURNING value"
        ).fetchone()
        return f"t{r[0]}.sqlite"

    def data_path(self, table: dict[str, Any]) -> Path:
        return self.root / "tables" / table["data_file"]

    # -- metadata ----------------------------------------------------------------------------
    def add_metadata(
        self,
        object_id: str,
        provider: str,
        items: Sequence[dict[str, Any]],
        column_name: str | None = None,
        object_type: str = "table",
    ) -> list[dict[str, Any]]:
        """Same provider+key (+column) replaces the value, as the real endpoint upserts.
        `object_id` is a table id, a bucket id or a branch id, as `object_type` says."""
        return self.add_metadata_many(object_id, provider, [(column_name, item) for item in items], object_type)

    def add_metadata_many(
        self,
        object_id: str,
        provider: str,
        entries: Sequence[tuple[str | None, dict[str, Any]]],
        object_type: str = "table",
    ) -> list[dict[str, Any]]:
        """Upserts (column or None, {key, value}) entries in one transaction: all or nothing."""
        when = now()
        out = []
        with self.write() as c:
            for column_name, item in entries:
                key, value = str(item.get("key", "")), _metadata_value(item.get("value"))
                existing = c.execute(
                    "SELECT id FROM metadata WHERE object_type = ? AND table_id = ? AND provider = ? AND key = ?"
                    " AND column_name IS ?",
                    (object_type, object_id, provider, key, column_name),
                ).fetchone()
                if existing:
                    c.execute("UPDATE metadata SET value = ?, timestamp = ? WHERE id = ?", (value, when, existing[0]))
                    mid = existing[0]
                else:
                    mid = c.execute(
                        "INSERT INTO metadata (object_type, table_id, column_name, provider, key, value, timestamp)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (object_type, object_id, column_name, provider, key, value, when),
                    ).lastrowid
                out.append(dict(c.execute("SELECT * FROM metadata WHERE id = ?", (mid,)).fetchone()))
        return out

    def list_metadata(self, object_id: str, object_type: str = "table") -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.read().execute(
                "SELECT * FROM metadata WHERE object_type = ? AND table_id = ? ORDER BY id", (object_type, object_id)
            )
        ]

    def delete_metadata(self, object_id: str, metadata_id: int, object_type: str = "table") -> bool:
        with self.write() as c:
            return (
                c.execute(
                    "DELETE FROM metadata WHERE object_type = ? AND table_id = ? AND id = ?",
                    (object_type, object_id, metadata_id),
                ).rowcount
                > 0
            )

    # -- events ------------------------------------------------------------------------------
    def insert_event(self, body: dict[str, Any], event_uuid: str, created: str) -> int:
        with self.write() as c:
            return int(
                c.execute(
                    "INSERT INTO events (uuid, body, created) VALUES (?, ?, ?)", (event_uuid, json.dumps(body), created)
                ).lastrowid
                or 0
            )

    def list_events(self, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first, as the real list answers."""
        return [
            {"id": r["id"], "uuid": r["uuid"], "created": r["created"], **json.loads(r["body"])}
            for r in self.read().execute("SELECT * FROM events ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
        ]

    # -- files -------------------------------------------------------------------------------
    def insert_file(self, file: dict[str, Any]) -> dict[str, Any]:
        with self.write() as c:
            fid = c.execute(
                "INSERT INTO files (name, s3_key, created, size_bytes, tags, is_public, is_sliced,"
                " is_encrypted, is_permanent, content_type, run_id, creator_token_id) VALUES"
                " (:name, '', :created, :size_bytes, :tags, :is_public, :is_sliced, :is_encrypted,"
                " :is_permanent, :content_type, :run_id, :creator_token_id)",
                {**file, "tags": json.dumps(file["tags"])},
            ).lastrowid
            key = file["key_template"].format(id=fid)
            c.execute("UPDATE files SET s3_key = ? WHERE id = ?", (key, fid))
        return self.get_file(int(fid))  # type: ignore[return-value]

    def get_file(self, file_id: int) -> dict[str, Any] | None:
        r = self.read().execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        return _decode_file(dict(r)) if r is not None else None

    def set_file_size(self, file_id: int, size: int) -> None:
        with self.write() as c:
            c.execute("UPDATE files SET size_bytes = ? WHERE id = ?", (size, file_id))

    def list_files(
        self, limit: int, offset: int, tags: list[str], since_id: int | None, max_id: int | None, run_id: str | None
    ) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM files WHERE 1=1", []
        if since_id is not None:
            sql += " AND id > ?"
            args.append(since_id)
        if max_id is not None:
            sql += " AND id <= ?"
            args.append(max_id)
        if run_id:
            sql += " AND run_id = ?"
            args.append(run_id)
        sql += " ORDER BY id DESC"
        files = [_decode_file(dict(r)) for r in self.read().execute(sql, args)]
        if tags:
            files = [f for f in files if all(t in f["tags"] for t in tags)]
        return files[offset : offset + limit]

    def delete_file(self, file_id: int) -> dict[str, Any] | None:
        with self.write() as c:
            r = c.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
            if r is None:
                return None
            c.execute("DELETE FROM files WHERE id = ?", (file_id,))
            return _decode_file(dict(r))

    # -- jobs --------------------------------------------------------------------------------
    def insert_job(self, job: dict[str, Any]) -> dict[str, Any]:
        with self.write() as c:
            jid = c.execute(
                "INSERT INTO jobs (status, operation_name, table_id, operation_params, created, metrics,"
                " run_id, creator_token_id) VALUES ('waiting', :operation_name, :table_id,"
                " :operation_params, :created, :metrics, :run_id, :creator_token_id)",
                {**job, "operation_params": json.dumps(job["operation_params"]), "metrics": json.dumps(job["metrics"])},
            ).lastrowid
        return self.get_job(int(jid))  # type: ignore[return-value]

    def get_job(self, job_id: int) -> dict[str, Any] | None:
        r = self.read().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _decode_job(dict(r)) if r is not None else None

    def list_jobs(self, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        return [
            _decode_job(dict(r))
            for r in self.read().execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
        ]

    def unfinished_jobs(self) -> list[dict[str, Any]]:
        return [
            _decode_job(dict(r))
            for r in self.read().execute("SELECT * FROM jobs WHERE status IN ('waiting', 'processing') ORDER BY id")
        ]

    def update_job(self, job_id: int, **changes: Any) -> None:
        cols = {
            "status": "status",
            "start_time": "start_time",
            "end_time": "end_time",
            "results": "results",
            "error": "error",
            "metrics": "metrics",
            "table_id": "table_id",
        }
        sets, args = [], []
        for key, value in changes.items():
            sets.append(f"{cols[key]} = ?")
            args.append(json.dumps(value) if key in ("results", "error", "metrics") else value)
        args.append(job_id)
        with self.write() as c:
            c.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", args)  # noqa: S608 - fixed names


def _metadata_value(value: Any) -> str:
    """Values are strings in Keboola; a JSON client may send a number, a bool or null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    return str(value)


def _decode_table(t: dict[str, Any]) -> dict[str, Any]:
    t["columns"] = json.loads(t["columns"])
    t["primary_key"] = json.loads(t["primary_key"])
    return t


def _decode_file(f: dict[str, Any]) -> dict[str, Any]:
    f["tags"] = json.loads(f["tags"])
    for key in ("is_public", "is_sliced", "is_encrypted", "is_permanent"):
        f[key] = bool(f[key])
    return f


def _decode_job(j: dict[str, Any]) -> dict[str, Any]:
    for key in ("operation_params", "results", "error", "metrics"):
        j[key] = json.loads(j[key]) if j[key] is not None else None
    return j


# -- table data ----------------------------------------------------------------------------------
def _col(i: int) -> str:
    return f"c{i}"


def open_data(path: Path) -> sqlite3.Connection:
    """Rollback-journal mode: a full load writes its pages once (WAL would write them twice)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=120)
    conn.execute("PRAGMA page_size=65536")  # fewer, bigger pages: ~30 % faster bulk inserts
    conn.execute("PRAGMA synchronous=OFF")  # an emulator: a graceful restart must keep data, a power cut need not
    conn.execute("PRAGMA busy_timeout=120000")
    conn.execute("PRAGMA cache_size=-16384")
    conn.execute("PRAGMA temp_store=FILE")
    return conn


def create_data_table(conn: sqlite3.Connection, width: int, pk_indexes: list[int]) -> None:
    cols = ", ".join(f"{_col(i)} TEXT NOT NULL DEFAULT ''" for i in range(width))
    conn.execute(f"CREATE TABLE IF NOT EXISTS data ({cols})")
    if pk_indexes:
        conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS pk ON data ({', '.join(_col(i) for i in pk_indexes)})")


class RowBlocks(Protocol):
    """csvimport.RowBlocks: flat parameter lists of `size` records each, then the `rest`."""

    size: int
    rest: list[list[str]]

    def __iter__(self) -> Iterator[list[str]]: ...


ROWS_PER_INSERT = 100  # 50, 100 and 200 measured the same; 10 was no better than single rows


def rows_per_insert(conn: sqlite3.Connection, width: int) -> int:
    """Records per multi-row INSERT: ROWS_PER_INSERT, fewer for wide tables so one statement stays
    within SQLite's limit on bound parameters (a single record over the limit fails as it always did)."""
    return max(1, min(ROWS_PER_INSERT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // max(width, 1)))


def load_rows(
    conn: sqlite3.Connection,
    *,
    old_width: int,
    new_width: int,
    target_indexes: list[int],
    blocks: Callable[[int, int], Iterable[RowBlocks]],
    full: bool,
    has_pk: bool,
) -> int:
    """Inside the caller's transaction: add new columns, truncate on full load, insert (PK = upsert).

    `blocks(width, size)` yields, per source slice, its records in blocks of `size` (see
    csvimport.RowBlocks, which also checks each record's width). Each block is one multi-row INSERT
    run by executemany over a C-level iterator (no Python code per row); a slice's last records
    follow as single-row inserts, so rows go in in file order. Returns the number of rows read
    from the file. Upsert is INSERT OR REPLACE on the unique PK index: the last duplicate in the
    file wins, as Keboola's dedup keeps one row per key (§4.5.1) — also within one statement,
    whose rows SQLite inserts in order.
    """
    for i in range(old_width, new_width):
        conn.execute(f"ALTER TABLE data ADD COLUMN {_col(i)} TEXT NOT NULL DEFAULT ''")
    if full:
        conn.execute("DELETE FROM data")
    verb = "INSERT OR REPLACE" if has_pk else "INSERT"
    width = len(target_indexes)
    size = rows_per_insert(conn, width)
    row = "(" + ", ".join("?" for _ in target_indexes) + ")"
    into = f"{verb} INTO data ({', '.join(_col(i) for i in target_indexes)}) VALUES "
    many, one = into + ", ".join([row] * size), into + row
    n = 0
    for part in blocks(width, size):
        n += conn.executemany(many, part).rowcount
        n += conn.executemany(one, part.rest).rowcount
    return n


def count_rows(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM data").fetchone()[0])


def select_rows(
    path: Path, column_indexes: list[int], where: tuple[int, str, list[str]] | None = None, limit: int | None = None
) -> Iterator[tuple[str, ...]]:
    """Streams rows in storage order (row order is never guaranteed by Keboola, §4.6)."""
    if not column_indexes:
        return
    sql = f"SELECT {', '.join(_col(i) for i in column_indexes)} FROM data"  # noqa: S608 - c<N> names
    args: list[Any] = []
    if where is not None:
        idx, op, values = where
        marks = ", ".join("?" for _ in values)
        sql += f" WHERE {_col(idx)} {'NOT IN' if op in ('ne', 'neq') else 'IN'} ({marks})"
        args.extend(values)
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    with closing(open_data(path)) as conn:
        yield from conn.execute(sql, args)


def delete_rows(path: Path, where: tuple[int, str, list[str]] | None) -> tuple[int, int]:
    """Deletes the rows matching `where` (all rows without it) in one transaction; returns
    (deleted, remaining). VACUUM afterwards so dataSizeBytes shrinks as a real truncate's does."""
    sql, args = "DELETE FROM data", []
    if where is not None:
        idx, op, values = where
        marks = ", ".join("?" for _ in values)
        sql += f" WHERE {_col(idx)} {'NOT IN' if op in ('ne', 'neq') else 'IN'} ({marks})"
        args.extend(values)
    with closing(open_data(path)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            deleted = conn.execute(sql, args).rowcount
            remaining = count_rows(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("VACUUM")
    return deleted, remaining


def file_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
