"""Jobs that make or empty a table without a data file: the typed create (`tableDefinitionCreate`,
§12 "Typed tables") and the row delete / truncate (`tableRowsDelete`, §12 "Truncate")."""

from __future__ import annotations

from contextlib import closing
from typing import Any

from keboola_emulator import model
from keboola_emulator.context import Context
from keboola_emulator.errors import JobError
from keboola_emulator.typed import storage_column_metadata
from keboola_emulator.views import table_json


def register(ctx: Context) -> None:
    ctx.jobs.register("tableDefinitionCreate", lambda job: create_typed_table(ctx, job))
    ctx.jobs.register("tableRowsDelete", lambda job: delete_rows(ctx, job))


def _already_exists(name: str) -> JobError:
    return JobError(
        "storage.buckets.tableAlreadyExists",
        f'The table "{name}" in the bucket already has the same display name "{name}".',
    )


def create_typed_table(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """An empty table from its definition; results = the table (GO unmarshals them into its Table,
    kbagent returns them). The job's `tableId` is set once the table exists (§12: null while queued)."""
    from keboola_emulator.routes.common import full_bucket_json  # the bucket as every answer shows it

    params = job["operation_params"]["params"]
    bucket_id, name, definition = params["_bucketId"], params["name"], params["definition"]
    table_id = f"{bucket_id}.{name}"
    columns = [c["name"] for c in definition["columns"]]
    pk = definition["primaryKeysNames"]
    bad = [c for c in pk if c not in columns]
    if bad:
        raise JobError(
            "storage.tables.validation.invalidPrimaryKeyColumns",
            f"Primary key columns {', '.join(bad)} are not present in the table columns ({', '.join(columns)}).",
        )
    if ctx.store.get_table(table_id) is not None:
        raise _already_exists(name)
    with ctx.store.write() as c:
        data_file = ctx.store.next_data_file(c)
    path = ctx.store.root / "tables" / data_file
    with closing(model.open_data(path)) as conn:
        model.create_data_table(conn, len(columns), [columns.index(p) for p in pk])
    table = model.new_table_row(
        table_id, bucket_id, name, columns, pk, data_file, imported=False, rows_count=0, data_size_bytes=0
    )
    when = table["created"]
    with ctx.store.write() as c:
        if c.execute("SELECT 1 FROM buckets WHERE id = ?", (bucket_id,)).fetchone() is None:
            raise JobError("storage.buckets.notFound", f'The bucket "{bucket_id}" was not found.')
        if c.execute("SELECT 1 FROM tables WHERE id = ?", (table_id,)).fetchone():
            raise _already_exists(name)
        ctx.store.insert_table(c, table)
        ctx.store.insert_definition(c, table_id, definition)
        c.execute("UPDATE buckets SET last_change_date = ? WHERE id = ?", (when, bucket_id))
    ctx.store.add_metadata_many(table_id, "storage", storage_column_metadata(definition))
    ctx.store.update_job(job["id"], table_id=table_id)
    stored = ctx.store.get_table(table_id)
    bucket = ctx.store.get_bucket(bucket_id)
    assert stored is not None and bucket is not None
    return table_json(
        stored, ctx.api_url, bucket=full_bucket_json(ctx, bucket), metadata=ctx.store.list_metadata(table_id)
    )


def delete_rows(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """Truncate (no filter) or delete the rows a `whereColumn` filter matches."""
    params = job["operation_params"]["params"]
    table = ctx.store.get_table(job["table_id"])
    if table is None:
        raise JobError("storage.tables.notFound", f'The table "{job["table_id"]}" was not found.')
    where = None
    if params.get("whereColumn"):
        column = params["whereColumn"]
        if column not in table["columns"]:
            raise JobError("storage.tables.validation", f"Column {column} not found in the table.")
        where = (table["columns"].index(column), params.get("whereOperator") or "eq", params.get("whereValues") or [])
    path = ctx.store.data_path(table)
    deleted, remaining = model.delete_rows(path, where)
    ctx.store.update_table_after_delete(table["id"], remaining, model.file_size(path), model.now())
    return {"deletedRows": deleted}  # results key UNCONFIRMED (docs/emulator.md)
