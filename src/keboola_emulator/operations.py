"""What each job does: create a table from a file, import, export, drop a table or a bucket.

Registered with the JobRunner; a failure raises JobError with the real code (§4.2, §4.5.2, §5.2).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from keboola_emulator import model, naming, tablejobs
from keboola_emulator.context import Context
from keboola_emulator.csvimport import (
    CsvStream,
    Dialect,
    RowBlocks,
    decompressed,
    is_gzip_name,
    load_errors,
    sanitize_header,
)
from keboola_emulator.errors import JobError
from keboola_emulator.views import table_json

COLUMNS_NOT_MATCH = "csvImport.columnsNotMatch"
TOO_MANY_COLUMNS = "storage.tables.validation.tooManyColumns"  # PHPT CreateTableTest testTooManyColumns


def register(ctx: Context) -> None:
    ctx.jobs.register("tableCreate", lambda job: create_table(ctx, job))
    ctx.jobs.register("tableImport", lambda job: import_table(ctx, job))
    ctx.jobs.register("tableExport", lambda job: export_table(ctx, job))
    ctx.jobs.register("tableDrop", lambda job: drop_table(ctx, job))
    ctx.jobs.register("bucketDelete", lambda job: delete_bucket(ctx, job))
    tablejobs.register(ctx)


# -- sources ---------------------------------------------------------------------------------------
class Source:
    """The bytes of a Storage file as one or more decompressed streams (slices, §5.2)."""

    def __init__(self, ctx: Context, file_id: Any) -> None:
        try:
            fid = int(file_id)
        except (TypeError, ValueError):
            fid = -1
        f = ctx.store.get_file(fid)
        if f is None:
            raise JobError("storage.files.notFound", f"File {file_id} not found.")
        self.file = f
        self._ctx = ctx
        self.in_bytes = 0
        self.compressed = False
        if f["is_sliced"]:
            self._slices = self._manifest_slices()
        else:
            size = ctx.files.object_size(f["s3_key"])
            if size is None:
                raise JobError(
                    "storage.fileNotUploaded",
                    f"File {f['id']} ({f['name']}) was not uploaded. Upload its content to the "
                    "file storage before you use it for a table load.",
                )
            self._slices = [(f["s3_key"], f["name"])]

    def _manifest_slices(self) -> list[tuple[str, str]]:
        manifest_key = self.file["s3_key"] + "manifest"
        reader = self._ctx.files.open_object(manifest_key)
        if reader is None:
            raise JobError(
                "storage.manifestFileMissing",
                f"Manifest file {manifest_key} of sliced file {self.file['id']} not found.",
            )
        with reader:
            try:
                entries = json.loads(reader.read().decode("utf-8"))["entries"]
            except (ValueError, KeyError, TypeError) as exc:
                raise JobError("storage.manifestFileMissing", f"Invalid manifest {manifest_key}: {exc}") from exc
        slices = []
        for entry in entries:
            url = str(entry.get("url", ""))
            key = self._ctx.files.key_of_slice_url(url)  # §5.2: s3://, azure:// or gs:// by provider
            if key is None or self._ctx.files.object_size(key) is None:
                raise JobError(
                    "storage.importFileMissing",
                    f"Load error: file {url} referenced in manifest of file {self.file['id']} does not exist.",
                )
            slices.append((key, key.rsplit("/", 1)[-1]))
        return slices

    def streams(self, stack: ExitStack) -> Iterator[BinaryIO]:
        for key, name in self._slices:
            # The size first: gcp-storage-emulator answers one request at a time, so asking for it while
            # a big object's GET is open would wait for that GET to be read to its end (a deadlock).
            size = self._ctx.files.object_size(key) or 0
            raw = self._ctx.files.open_object(key)
            if raw is None:
                raise JobError("storage.importFileMissing", f"Load error: file {key} does not exist.")
            stack.enter_context(raw)
            self.in_bytes += size
            self.compressed = self.compressed or is_gzip_name(name)
            yield stack.enter_context(closing(decompressed(raw, name)))  # type: ignore[arg-type]

    def metrics(self) -> dict[str, Any]:
        """§4.5 job metrics: inCompressed by the .gz name, inBytes = uploaded size."""
        return {
            "inCompressed": self.compressed,
            "inBytes": self.in_bytes,
            "inBytesUncompressed": 0 if self.compressed else self.in_bytes,
        }


class Records:
    """Header plus all records of a (possibly sliced) source, read lazily slice by slice.

    Slices after the first carry no header (§5.2: slices are parts of one headerless export).
    `stream` is the slice being read, for error messages.
    """

    def __init__(self, streams: Iterator[BinaryIO], dialect: Dialect, header_given: list[str] | None) -> None:
        self.stream: CsvStream | None = None
        self._streams = streams
        self._dialect = dialect
        first = next(streams, None)
        if first is None:
            self.header = header_given
            return
        self.stream = CsvStream(first, dialect)
        self.header = header_given if header_given is not None else self.stream.header()

    def blocks(self, width: int, size: int) -> Iterator[RowBlocks]:
        """Each slice's records in blocks for model.load_rows; the next slice is opened only when
        the previous one is used up, so `stream` always names the slice being read."""
        if self.stream is None:
            return
        yield RowBlocks(self.stream, width, size)
        for more in self._streams:
            self.stream = CsvStream(more, self._dialect)
            yield RowBlocks(self.stream, width, size)


def _dialect(params: dict[str, Any]) -> Dialect:
    return Dialect(params.get("delimiter", ","), params.get("enclosure", '"'), params.get("escapedBy", ""))


# -- tableCreate -----------------------------------------------------------------------------------
def create_table(ctx: Context, job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    params = job["operation_params"]["params"]
    bucket_id, name = params["_bucketId"], params["name"]
    table_id = f"{bucket_id}.{name}"
    bucket = ctx.store.get_bucket(bucket_id)
    if bucket is None:
        raise JobError("storage.buckets.notFound", f'The bucket "{bucket_id}" was not found.')
    _refuse_name_clash(ctx.store.read(), bucket_id, name)
    source = Source(ctx, job["operation_params"]["source"]["fileId"])
    dialect = _dialect(params)
    with ExitStack() as stack:
        records = Records(source.streams(stack), dialect, params.get("columns") or None)
        header = records.header
        if not header:
            raise JobError(
                "storage.tables.validation.noColumns",
                "No columns found in the CSV file. The first row must be a header.",
            )
        columns = sanitize_header(header)
        _refuse_too_wide(len(columns))
        pk = list(params.get("primaryKey") or [])
        bad = [c for c in pk if c not in columns]
        if bad:
            raise JobError(
                "storage.tables.validation.invalidPrimaryKeyColumns",
                f"Primary key columns {', '.join(bad)} are not present in the table columns ({', '.join(columns)}).",
            )
        # the data file is built first; the catalog row appears only when the load succeeded
        with ctx.store.write() as c:
            data_file = ctx.store.next_data_file(c)
        path = ctx.store.root / "tables" / data_file
        try:
            with closing(model.open_data(path)) as conn:
                conn.execute("BEGIN")
                model.create_data_table(conn, len(columns), [columns.index(p) for p in pk])
                with load_errors(records):
                    n = model.load_rows(
                        conn,
                        old_width=len(columns),
                        new_width=len(columns),
                        target_indexes=list(range(len(columns))),
                        blocks=records.blocks,
                        full=True,
                        has_pk=bool(pk),
                    )
                rows_count = model.count_rows(conn) if pk else n
                conn.execute("COMMIT")
        except BaseException:
            remove_data_file(path)
            raise
    table = model.new_table_row(
        table_id,
        bucket_id,
        name,
        columns,
        pk,
        data_file,
        imported=True,
        rows_count=rows_count,
        data_size_bytes=model.file_size(path),
    )
    when = table["created"]
    with ctx.store.write() as c:
        try:
            _refuse_name_clash(c, bucket_id, name)
        except JobError:
            remove_data_file(path)
            raise
        if c.execute("SELECT 1 FROM buckets WHERE id = ?", (bucket_id,)).fetchone() is None:
            remove_data_file(path)
            raise JobError("storage.buckets.notFound", f'The bucket "{bucket_id}" was not found.')
        ctx.store.insert_table(c, table)
        c.execute("UPDATE buckets SET last_change_date = ? WHERE id = ?", (when, bucket_id))
        c.execute("UPDATE jobs SET table_id = ? WHERE id = ?", (table_id, job["id"]))  # §12: known now
    stored = ctx.store.get_table(table_id)
    assert stored is not None
    fresh_bucket = ctx.store.get_bucket(bucket_id) or bucket
    # §4.2: job results = the new table (kbcstorage reads results.id)
    from keboola_emulator.routes.common import full_bucket_json  # with its real counts (issue 17, item 9)

    return table_json(stored, ctx.api_url, bucket=full_bucket_json(ctx, fresh_bucket)), source.metrics()


class _Executes(Protocol):
    def execute(self, sql: str, args: Sequence[Any] = ..., /) -> Any: ...


def _refuse_name_clash(conn: _Executes, bucket_id: str, name: str) -> None:
    """§12: table names are case-insensitive, and a name must not equal another table's display
    name: `Orders` beside `orders` is `storage.buckets.tableAlreadyExists` (PHPT CreateTableTest)."""
    other = conn.execute(
        "SELECT name FROM tables WHERE bucket_id = ? AND (lower(name) = lower(?) OR lower(display_name) = lower(?))",
        (bucket_id, name, name),
    ).fetchone()
    if other is not None:
        raise JobError(
            "storage.buckets.tableAlreadyExists",
            f'The table "{other[0]}" in the bucket already has the same display name "{name}".',
        )


@functools.cache
def _sqlite_column_limit() -> int:
    with closing(sqlite3.connect(":memory:")) as conn:
        return int(conn.getlimit(sqlite3.SQLITE_LIMIT_COLUMN))


def _refuse_too_wide(width: int) -> None:
    """A validation error before any SQLite work, never SQLite's own `too many columns` (an
    internal error): the lower of Keboola's limit and the data file's limit applies."""
    problem = naming.table_width_problem(width, min(naming.MAX_TABLE_COLUMNS, _sqlite_column_limit()))
    if problem:
        raise JobError(TOO_MANY_COLUMNS, problem)


# -- tableImport -----------------------------------------------------------------------------------
def import_table(ctx: Context, job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    params = job["operation_params"]["params"]
    table_id = job["table_id"]
    table = ctx.store.get_table(table_id)
    if table is None:
        raise JobError("storage.tables.notFound", f'The table "{table_id}" was not found.')
    source = Source(ctx, job["operation_params"]["source"]["fileId"])
    dialect = _dialect(params)
    expected: list[str] = table["columns"]
    given = params.get("columns") or None
    if given is None and params.get("withoutHeaders"):
        given = list(expected)
    incremental = bool(params.get("incremental"))
    with ExitStack() as stack:
        records = Records(source.streams(stack), dialect, given)
        header = records.header
        file_columns = sanitize_header(header) if header else []
        missing = [c for c in expected if c not in file_columns]  # case-sensitive, as Snowflake (§4.5.2)
        if missing:
            raise JobError(
                COLUMNS_NOT_MATCH,
                f"Some columns are missing in the csv file. Missing columns: {','.join(missing)}. Expected "
                f"columns: {','.join(expected)}. Please check if the expected delimiter "
                f'"{dialect.delimiter}" is used in the csv file.',
                results={"missingColumns": missing, "expectedColumns": expected},
            )
        extra = [c for c in file_columns if c not in expected]
        if extra and table.get("definition") is not None:  # §0: typed tables never gain columns on import
            raise JobError(
                COLUMNS_NOT_MATCH,
                f"Columns {', '.join(extra)} are not in the typed table {table_id}; typed tables do not get "
                "new columns from an import.",
                results={"missingColumns": [], "expectedColumns": expected},
            )
        clash = [c for c in extra if c.lower() in {e.lower() for e in expected}]
        if clash:
            raise JobError(
                COLUMNS_NOT_MATCH,
                f"Columns {', '.join(clash)} differ from existing table columns only in letter case.",
                results={"missingColumns": [], "expectedColumns": expected},
            )
        new_columns = expected + extra  # §4.5.1: new columns are appended at the end
        _refuse_too_wide(len(new_columns))
        path = ctx.store.data_path(table)
        targets = [new_columns.index(c) for c in file_columns]
        has_pk = bool(table["primary_key"])
        if incremental:
            with closing(model.open_data(path)) as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    with load_errors(records):
                        n = model.load_rows(
                            conn,
                            old_width=len(expected),
                            new_width=len(new_columns),
                            target_indexes=targets,
                            blocks=records.blocks,
                            full=False,
                            has_pk=has_pk,
                        )
                    rows_count = model.count_rows(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        else:
            # §4.5.1 full load = truncate + load. Built as a fresh file swapped in at the end: as fast
            # as a create, and a failed load leaves the old rows untouched (the swap never happens).
            fresh = path.with_name(path.name + ".loading")
            remove_data_file(fresh)
            try:
                with closing(model.open_data(fresh)) as conn:
                    conn.execute("BEGIN")
                    model.create_data_table(
                        conn, len(new_columns), [new_columns.index(c) for c in table["primary_key"]]
                    )
                    with load_errors(records):
                        n = model.load_rows(
                            conn,
                            old_width=len(new_columns),
                            new_width=len(new_columns),
                            target_indexes=targets,
                            blocks=records.blocks,
                            full=False,
                            has_pk=has_pk,
                        )
                    rows_count = model.count_rows(conn) if has_pk else n
                    conn.execute("COMMIT")
                os.replace(fresh, path)
            except BaseException:
                remove_data_file(fresh)
                raise
    when = model.now()
    size = model.file_size(path)
    ctx.store.update_table_after_load(table_id, new_columns, rows_count, size, when)
    results = {  # §4.5 success results
        "importedColumns": file_columns,
        "warnings": [],
        "transaction": None,
        "totalRowsCount": rows_count,
        "totalDataSizeBytes": size,
        "importedRowsCount": n,
    }
    return results, source.metrics()


# -- tableExport -----------------------------------------------------------------------------------
def export_table(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """Writes an RFC CSV without header (§4.6 output dialect) as a sliced file with one slice, like
    Snowflake exports; kbcstorage's export_to_file adds the header itself."""
    params = job["operation_params"]["params"]
    table = ctx.store.get_table(job["table_id"])
    if table is None:
        raise JobError("storage.tables.notFound", f'The table "{job["table_id"]}" was not found.')
    columns = params.get("columns") or table["columns"]
    unknown = [c for c in columns if c not in table["columns"]]
    if unknown:
        raise JobError("storage.tables.validation", f"Columns {', '.join(unknown)} not found in the table.")
    indexes = [table["columns"].index(c) for c in columns]
    gz = bool(params.get("gzip"))
    file_row = ctx.store.insert_file(
        {
            "name": f"{table['id']}.csv" + (".gz" if gz else ""),
            "created": model.now(),
            "size_bytes": None,
            "tags": ["table-export"],
            "is_public": 0,
            "is_sliced": 1,
            "is_encrypted": 1,
            "is_permanent": 0,
            "content_type": None,
            "run_id": job["run_id"],
            "creator_token_id": job["creator_token_id"],
            "key_template": f"exp-15/{_project()}/table-exports/{table['id'].replace('.', '/')}/{{id}}/",
        }
    )
    slice_name = f"{file_row['id']}_{table['name']}.part0000.csv" + (".gz" if gz else "")
    slice_key = file_row["s3_key"] + slice_name
    where = _where(params, table)
    fd, tmp = tempfile.mkstemp(prefix="keboola-emulator-export-")
    os.close(fd)
    try:
        with open(tmp, "wb") as raw, ExitStack() as stack:
            out: BinaryIO = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="wb")) if gz else raw
            buf = bytearray()
            for row in model.select_rows(ctx.store.data_path(table), indexes, where, params.get("limit")):
                buf += (",".join('"' + v.replace('"', '""') + '"' for v in row) + "\n").encode("utf-8")
                if len(buf) > 1 << 20:
                    out.write(buf)
                    buf.clear()
            out.write(buf)
        size = ctx.files.put_object_from_file(slice_key, Path(tmp))
    finally:
        remove_data_file(Path(tmp))
    manifest = {"entries": [{"url": ctx.files.slice_url(slice_key), "mandatory": True}]}
    ctx.files.put_bytes(file_row["s3_key"] + "manifest", json.dumps(manifest).encode())
    ctx.store.set_file_size(file_row["id"], size)
    return {"file": {"id": file_row["id"]}, "cacheHit": False}


def _where(params: dict[str, Any], table: dict[str, Any]) -> tuple[int, str, list[str]] | None:
    column = params.get("whereColumn")
    if not column:
        return None
    if column not in table["columns"]:
        raise JobError("storage.tables.validation", f"Column {column} not found in the table.")
    return table["columns"].index(column), params.get("whereOperator") or "eq", list(params.get("whereValues") or [])


def _project() -> int:
    from keboola_emulator.tokens import PROJECT_ID

    return PROJECT_ID


# -- drops -----------------------------------------------------------------------------------------
def drop_table(ctx: Context, job: dict[str, Any]) -> None:
    table = ctx.store.delete_table_row(job["table_id"])
    if table is None:
        raise JobError("storage.tables.notFound", f'The table "{job["table_id"]}" was not found.')
    remove_data_file(ctx.store.data_path(table))
    return None


def delete_bucket(ctx: Context, job: dict[str, Any]) -> None:
    params = job["operation_params"]["params"]
    bucket_id = params["_bucketId"]
    with ctx.store.write() as c:
        if c.execute("SELECT 1 FROM buckets WHERE id = ?", (bucket_id,)).fetchone() is None:
            raise JobError("storage.buckets.notFound", f'The bucket "{bucket_id}" was not found.')
        count = c.execute("SELECT COUNT(*) FROM tables WHERE bucket_id = ?", (bucket_id,)).fetchone()[0]
        if count and not params.get("force"):
            raise JobError(
                "buckets.deleteNotEmpty", f"Only empty buckets can be deleted. There are {count} tables in the bucket."
            )
        tables = ctx.store.delete_bucket_rows(c, bucket_id)
    for t in tables:
        remove_data_file(ctx.store.data_path(t))
    return None


def remove_data_file(path: Path) -> None:
    """A table's SQLite file and its leftovers (journal, half-built `.loading` copy)."""
    for p in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + ".loading")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
