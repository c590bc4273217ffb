"""Bucket routes (§3): list, create, detail, delete (sync/async), a bucket's tables."""

from __future__ import annotations

from flask import Flask, Response

from keboola_emulator import model, naming
from keboola_emulator.context import Context
from keboola_emulator.errors import ApiError
from keboola_emulator.operations import remove_data_file
from keboola_emulator.routes.common import (
    as_bool,
    branch_route,
    bucket_or_404,
    full_bucket_json,
    includes,
    json_response,
    params,
    require_manage,
    run_id,
    tables_response,
    url,
)
from keboola_emulator.views import bucket_json, job_json, table_json

LEGACY_PREFIX_OFF = "disable-legacy-bucket-prefix"  # §12 project feature


def register(app: Flask, ctx: Context) -> None:
    route = branch_route(app)

    # -- buckets (§3) --------------------------------------------------------------------------
    @route("/buckets", ["GET"], branch_aware=True)
    def buckets_list() -> Response:
        """§3.1: include=metadata adds each bucket's metadata, include=linkedBuckets its `linkedBy`."""
        wanted = includes()
        out = []
        for b in ctx.store.list_buckets():
            body = full_bucket_json(ctx, b, linked="linkedBuckets" in wanted)
            if "metadata" not in wanted:
                body["metadata"] = []
            out.append(body)
        return json_response(out)

    @route("/buckets", ["POST"], branch_aware=True)
    def bucket_create() -> Response:
        require_manage()
        p = params()
        name = str(p.get("name") or "")
        stage = str(p.get("stage") or "in")
        if stage not in ("in", "out"):
            raise ApiError(
                400,
                "storage.buckets.validation",
                f"Invalid data - stage: '{stage}' is not valid. Allowed values are: in, out.",
            )
        problem = naming.bucket_name_problem(name)
        if problem:
            raise ApiError(400, "storage.buckets.validation", problem)
        display_name = str(p.get("displayName") or name)
        problem = naming.display_name_problem(display_name)
        if problem:
            raise ApiError(400, "storage.buckets.validation", problem)
        backend = p.get("backend") or "snowflake"
        if backend not in ("snowflake", "bigquery"):
            raise ApiError(
                400,
                "storage.buckets.validation",
                f"Invalid data - backend: '{backend}' is not supported. Allowed values are: snowflake, bigquery.",
            )
        # §3.2: the server adds `c-`, unless the project has `disable-legacy-bucket-prefix` (§12)
        prefix = "" if LEGACY_PREFIX_OFF in ctx.features else "c-"
        bucket_id = f"{stage}.{prefix}{name}"
        with ctx.store.write() as c:
            if c.execute("SELECT 1 FROM buckets WHERE id = ?", (bucket_id,)).fetchone():
                raise ApiError(400, "storage.buckets.alreadyExists", f"The bucket {name} already exists.")
            if c.execute(
                "SELECT 1 FROM buckets WHERE stage = ? AND display_name = ?", (stage, display_name)
            ).fetchone():
                raise ApiError(
                    400,
                    "storage.buckets.alreadyExists",
                    f'The display name "{display_name}" already exists in project.',
                )
            ctx.store.insert_bucket(
                c,
                {
                    "id": bucket_id,
                    "stage": stage,
                    "name": f"{prefix}{name}",
                    "display_name": display_name,
                    "description": str(p.get("description") or ""),
                    "backend": backend,
                    "color": p.get("color"),
                    "created": model.now(),
                },
            )
        return json_response(bucket_json(bucket_or_404(ctx, bucket_id), url(ctx)), 201)

    @route("/buckets/<bucket_id>", ["GET"], branch_aware=True)
    def bucket_detail(bucket_id: str) -> Response:
        b = bucket_or_404(ctx, bucket_id)
        tables = ctx.store.list_tables(bucket_id)
        table_list = [table_json(t, url(ctx), bucket=None, include_columns=True) for t in tables]
        body = full_bucket_json(ctx, b, linked="linkedBuckets" in includes())
        body["tables"] = table_list
        return json_response(body)

    @route("/buckets/<bucket_id>", ["DELETE"], branch_aware=True)
    def bucket_delete(bucket_id: str) -> Response:
        """§3.5: sync -> 204, async -> 202 bucketDelete job; non-empty without force -> deleteNotEmpty."""
        token = require_manage()
        p = params()
        bucket_or_404(ctx, bucket_id)
        force = as_bool(p.get("force"))
        if as_bool(p.get("async")):
            job = ctx.jobs.submit(
                "bucketDelete",
                table_id=None,
                params={"force": force, "_bucketId": bucket_id},
                source=None,
                token_id=token.id,
                run_id=run_id(),
                lock_key=bucket_id,
            )
            return json_response(job_json(job, url(ctx)), 202)
        with ctx.store.write() as c:
            count = c.execute("SELECT COUNT(*) FROM tables WHERE bucket_id = ?", (bucket_id,)).fetchone()[0]
            if count and not force:
                # status UNCONFIRMED (§3.5, presumably 400)
                raise ApiError(
                    400,
                    "buckets.deleteNotEmpty",
                    f"Only empty buckets can be deleted. There are {count} tables in the bucket.",
                )
            tables = ctx.store.delete_bucket_rows(c, bucket_id)
        for t in tables:
            remove_data_file(ctx.store.data_path(t))
        return Response(status=204)

    @route("/buckets/<bucket_id>/tables", ["GET"], branch_aware=True)
    def bucket_tables(bucket_id: str) -> Response:
        b = bucket_or_404(ctx, bucket_id)
        return tables_response(ctx, ctx.store.list_tables(bucket_id), {b["id"]: b})
