"""Table routes of jobs without a data file (§12): the typed create (`tables-definition`) and the
row delete / truncate (`DELETE /tables/{id}/rows`). The jobs themselves are in tablejobs.py."""

from __future__ import annotations

from flask import Flask, Response

from keboola_emulator.context import Context
from keboola_emulator.errors import ApiError
from keboola_emulator.routes.common import (
    as_bool,
    as_list,
    branch_route,
    bucket_or_404,
    json_response,
    params,
    require_manage,
    run_id,
    table_or_404,
    url,
    valid_table_name,
)
from keboola_emulator.typed import parse_definition
from keboola_emulator.views import job_json


def register(app: Flask, ctx: Context) -> None:
    route = branch_route(app)

    @route("/buckets/<bucket_id>/tables-definition", ["POST"], branch_aware=True)
    def table_create_typed(bucket_id: str) -> Response:
        """§12 "Typed tables": 202 + tableDefinitionCreate job; results = the (empty) typed table."""
        token = require_manage()
        bucket_or_404(ctx, bucket_id)
        p = params()
        name = valid_table_name(p)
        job = ctx.jobs.submit(
            "tableDefinitionCreate",
            table_id=None,  # set when the table exists (§12: tableId is null while queued)
            params={"name": name, "definition": parse_definition(p), "_bucketId": bucket_id},
            source=None,
            token_id=token.id,
            run_id=run_id(),
            lock_key=f"{bucket_id}.{name}",
        )
        return json_response(job_json(job, url(ctx)), 202)

    @route("/tables/<table_id>/rows", ["DELETE"], branch_aware=True)
    def table_rows_delete(table_id: str) -> Response:
        """§12 "Truncate": 202 + tableRowsDelete job. Without a filter the caller must opt in with
        allowTruncate=1 (kbagent's docstring, from the live API)."""
        token = require_manage()
        t = table_or_404(ctx, table_id)
        p = params()
        column = p.get("whereColumn")
        if not column and not as_bool(p.get("allowTruncate")):
            raise ApiError(
                400,
                "storage.tables.validation",
                "Deleting all rows of a table needs allowTruncate=1 (or a whereColumn filter).",
            )
        if column and column not in t["columns"]:
            raise ApiError(400, "storage.tables.validation", f"Column {column} not found in the table.")
        job_params = {
            "allowTruncate": as_bool(p.get("allowTruncate")),
            "whereColumn": column or None,
            "whereOperator": p.get("whereOperator") or "eq",
            "whereValues": as_list(p.get("whereValues")),
        }
        job = ctx.jobs.submit(
            "tableRowsDelete", table_id=table_id, params=job_params, source=None, token_id=token.id, run_id=run_id()
        )
        return json_response(job_json(job, url(ctx)), 202)
