"""Table routes (§4): list, detail, drop, create/import/export jobs, data-preview (metadata: metadata.py)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g

from keboola_emulator import model, naming
from keboola_emulator.context import Context
from keboola_emulator.csvimport import Dialect
from keboola_emulator.errors import ApiError
from keboola_emulator.operations import remove_data_file
from keboola_emulator.routes.common import (
    as_bool,
    as_list,
    branch_route,
    bucket_or_404,
    full_bucket_json,
    int_or_str,
    json_response,
    params,
    quote_csv,
    require_manage,
    run_id,
    table_or_404,
    tables_response,
    url,
    valid_table_name,
)
from keboola_emulator.views import job_json, table_json

PREVIEW_MAX = 1000  # §4.7


def _refuse_wide_preview(width: int) -> None:
    """§12 (PHPT Snowflake TableExportTest): wide tables have no data preview."""
    if width > naming.MAX_PREVIEW_COLUMNS:
        raise ApiError(
            400,
            "storage.maxNumberOfColumnsExceed",
            f"Data preview is limited to {naming.MAX_PREVIEW_COLUMNS} columns; {width} columns "
            "requested. Select fewer columns, or export the table.",
        )


def register(app: Flask, ctx: Context) -> None:
    route = branch_route(app)

    # -- tables (§4) ---------------------------------------------------------------------------
    @route("/tables", ["GET"], branch_aware=True)
    def tables_list() -> Response:
        return tables_response(ctx, ctx.store.list_tables(), {b["id"]: b for b in ctx.store.list_buckets()})

    @route("/tables/<table_id>", ["GET"], branch_aware=True)
    def table_detail(table_id: str) -> Response:
        t = table_or_404(ctx, table_id)
        b = ctx.store.get_bucket(t["bucket_id"])
        bucket = full_bucket_json(ctx, b) if b else None
        return json_response(table_json(t, url(ctx), bucket=bucket, metadata=ctx.store.list_metadata(table_id)))

    @route("/tables/<table_id>", ["DELETE"], branch_aware=True)
    def table_delete(table_id: str) -> Response:
        """§4.8: sync -> 204 (kbcstorage's default, no `async`), async -> 202 tableDrop job."""
        token = require_manage()
        table_or_404(ctx, table_id)
        if as_bool(params().get("async")):
            job = ctx.jobs.submit(
                "tableDrop", table_id=table_id, params={}, source=None, token_id=token.id, run_id=run_id()
            )
            return json_response(job_json(job, url(ctx)), 202)
        table = ctx.store.delete_table_row(table_id)
        if table is not None:
            remove_data_file(ctx.store.data_path(table))
        return Response(status=204)

    def load_params(p: dict[str, Any]) -> tuple[Dialect, dict[str, Any]]:
        dialect = Dialect.from_params(p.get("delimiter"), p.get("enclosure"), p.get("escapedBy"))
        file_id = p.get("dataFileId")
        if file_id in (None, ""):
            raise ApiError(
                400,
                "validation.failed",
                "Invalid request:\n - dataFileId: This value should not be blank.",
                errors=[{"key": "dataFileId", "message": "This value should not be blank."}],
            )
        return dialect, {"fileId": int_or_str(file_id), "type": "file"}

    @route("/buckets/<bucket_id>/tables-async", ["POST"], branch_aware=True)
    def table_create(bucket_id: str) -> Response:
        """§4.2: 202 + tableCreate job; results = the table."""
        token = require_manage()
        bucket_or_404(ctx, bucket_id)
        p = params()
        name = valid_table_name(p)
        if isinstance(p.get("primaryKey"), list):
            raise ApiError(400, "storage.validation.primaryKey", "Primary key must be a string.")  # §4.2
        dialect, source = load_params(p)
        lock_key = f"{bucket_id}.{name}"
        job_params = {
            "name": name,
            **dialect.as_params(),
            "primaryKey": as_list(p.get("primaryKey")),
            "columns": as_list(p.get("columns")),
            "_bucketId": bucket_id,
            "_lockKey": lock_key,
        }
        # §12: a tableCreate job's tableId is null until the job has created the table.
        job = ctx.jobs.submit(
            "tableCreate",
            table_id=None,
            params=job_params,
            source=source,
            token_id=token.id,
            run_id=run_id(),
            lock_key=lock_key,
        )
        return json_response(job_json(job, url(ctx)), 202)

    @route("/tables/<table_id>/import-async", ["POST"], branch_aware=True)
    def table_import(table_id: str) -> Response:
        """§4.5: 202 + tableImport job; incremental=0 is a full load."""
        token = require_manage()
        table_or_404(ctx, table_id)
        p = params()
        dialect, source = load_params(p)
        # kbcstorage sends `columns` as `primaryKey[]` (§9.9); the API ignores an unknown list there.
        job_params = {
            "incremental": as_bool(p.get("incremental")),
            "columns": as_list(p.get("columns")),
            "withoutHeaders": as_bool(p.get("withoutHeaders")),
            **dialect.as_params(),
        }
        job = ctx.jobs.submit(
            "tableImport", table_id=table_id, params=job_params, source=source, token_id=token.id, run_id=run_id()
        )
        return json_response(job_json(job, url(ctx)), 202)

    @route("/tables/<table_id>/export-async", ["POST"], branch_aware=True)
    def table_export(table_id: str) -> Response:
        token = g.token
        t = table_or_404(ctx, table_id)
        p = params()
        columns = as_list(p.get("columns"))
        unknown = [c for c in columns if c not in t["columns"]]
        if unknown:
            raise ApiError(400, "storage.tables.validation", f"Columns {', '.join(unknown)} not found in the table.")
        limit = p.get("limit")
        job_params = {
            "columns": columns,
            "gzip": as_bool(p.get("gzip")),
            "limit": int(limit) if limit not in (None, "") else None,
            "whereColumn": p.get("whereColumn"),
            "whereOperator": p.get("whereOperator") or "eq",
            "whereValues": as_list(p.get("whereValues"))
            if not isinstance(p.get("whereValues"), list)
            else p.get("whereValues"),
        }
        job = ctx.jobs.submit(
            "tableExport", table_id=table_id, params=job_params, source=None, token_id=token.id, run_id=run_id()
        )
        return json_response(job_json(job, url(ctx)), 202)

    @route("/tables/<table_id>/data-preview", ["GET"], branch_aware=True)
    def table_preview(table_id: str) -> Response:
        """§4.7: rfc = every field quoted, LF, trailing newline; json = columns + rows of cells."""
        t = table_or_404(ctx, table_id)
        p = params()
        try:
            limit = int(p.get("limit") or 100)
        except ValueError as exc:
            raise ApiError(400, "storage.tables.validation", "Invalid limit.") from exc
        if limit > PREVIEW_MAX or limit < 0:
            raise ApiError(
                400, "storage.tables.validation", f"Invalid request: limit: This value should be {PREVIEW_MAX} or less."
            )
        columns = as_list(p.get("columns")) or t["columns"]
        unknown = [c for c in columns if c not in t["columns"]]
        if unknown:
            raise ApiError(400, "storage.tables.validation", f"Columns {', '.join(unknown)} not found in the table.")
        _refuse_wide_preview(len(columns))
        where = None
        if p.get("whereColumn"):
            if p["whereColumn"] not in t["columns"]:
                raise ApiError(400, "storage.tables.validation", f"Column {p['whereColumn']} not found in the table.")
            op = p.get("whereOperator") or "eq"
            if op not in ("eq", "ne", "neq"):
                raise ApiError(400, "storage.tables.validation", f"Invalid whereOperator {op}.")
            values = p.get("whereValues") or []
            where = (t["columns"].index(p["whereColumn"]), op, values if isinstance(values, list) else [values])
        indexes = [t["columns"].index(c) for c in columns]
        rows = list(model.select_rows(ctx.store.data_path(t), indexes, where, limit))
        if p.get("format") == "json":
            return json_response(
                {
                    "columns": columns,
                    "rows": [
                        [
                            {"columnName": c, "value": v[:16384], "isTruncated": len(v) > 16384}
                            for c, v in zip(columns, r, strict=True)
                        ]
                        for r in rows
                    ],
                }
            )
        lines = [",".join(quote_csv(c) for c in columns)] + [",".join(quote_csv(v) for v in r) for r in rows]
        return Response("\n".join(lines) + "\n", mimetype="text/csv")
