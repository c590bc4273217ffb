"""Metadata routes: table (and column), bucket and branch metadata (§12 "POST /tables/{id}/metadata").

Metadata is `{id, key, value, provider, timestamp}`; a POST upserts by provider + key (+ column)
and answers 201. The table POST answers by how it was asked: a JSON body gets
`{"metadata": [...], "columnsMetadata": {...}}` (the shape keboola-mcp-server reads, §12), a form
body (`metadata[0][key]=…`, kbagent) gets the table's metadata list, as the PHP client documents.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response

from keboola_emulator.context import Context
from keboola_emulator.errors import ApiError
from keboola_emulator.routes.common import (
    BASE,
    branch_route,
    bucket_or_404,
    is_json_body,
    json_response,
    params,
    require_manage,
    table_or_404,
)
from keboola_emulator.views import DEFAULT_BRANCH_ID, metadata_json


def register(app: Flask, ctx: Context) -> None:
    route = branch_route(app)

    # -- tables and their columns ----------------------------------------------------------------
    @route("/tables/<table_id>/metadata", ["GET"], branch_aware=True)
    def table_metadata_list(table_id: str) -> Response:
        table_or_404(ctx, table_id)
        return json_response(_table_level(ctx, table_id))

    @route("/tables/<table_id>/metadata", ["POST"], branch_aware=True)
    def table_metadata_create(table_id: str) -> Response:
        require_manage()
        return _create_for_table(ctx, table_or_404(ctx, table_id))

    @route("/tables/<table_id>/metadata/<metadata_id>", ["DELETE"], branch_aware=True)
    def table_metadata_delete(table_id: str, metadata_id: str) -> Response:
        require_manage()
        table_or_404(ctx, table_id)
        _delete(ctx, table_id, metadata_id, "table")
        return Response(status=204)

    # -- buckets ---------------------------------------------------------------------------------
    @route("/buckets/<bucket_id>/metadata", ["GET"], branch_aware=True)
    def bucket_metadata_list(bucket_id: str) -> Response:
        bucket_or_404(ctx, bucket_id)
        return json_response([metadata_json(m) for m in ctx.store.list_metadata(bucket_id, "bucket")])

    @route("/buckets/<bucket_id>/metadata", ["POST"], branch_aware=True)
    def bucket_metadata_create(bucket_id: str) -> Response:
        require_manage()
        bucket_or_404(ctx, bucket_id)
        return _create_plain(ctx, bucket_id, "bucket")

    @route("/buckets/<bucket_id>/metadata/<metadata_id>", ["DELETE"], branch_aware=True)
    def bucket_metadata_delete(bucket_id: str, metadata_id: str) -> Response:
        require_manage()
        bucket_or_404(ctx, bucket_id)
        _delete(ctx, bucket_id, metadata_id, "bucket")
        return Response(status=204)

    # -- the branch (only the default one exists; another id is 404 before we get here, §8) ------
    def branch_metadata_list() -> Response:
        return json_response([metadata_json(m) for m in ctx.store.list_metadata(str(DEFAULT_BRANCH_ID), "branch")])

    def branch_metadata_create() -> Response:
        require_manage()
        return _create_plain(ctx, str(DEFAULT_BRANCH_ID), "branch")

    def branch_metadata_delete(metadata_id: str) -> Response:
        require_manage()
        _delete(ctx, str(DEFAULT_BRANCH_ID), metadata_id, "branch")
        return Response(status=204)

    rule = BASE + "/branch/<branch>/metadata"
    app.add_url_rule(rule, "branch_metadata_list", branch_metadata_list, methods=["GET"])
    app.add_url_rule(rule, "branch_metadata_create", branch_metadata_create, methods=["POST"])
    app.add_url_rule(rule + "/<metadata_id>", "branch_metadata_delete", branch_metadata_delete, methods=["DELETE"])


def _create_for_table(ctx: Context, t: dict[str, Any]) -> Response:
    """Table and column metadata in one upsert; the answer's shape follows the request's (module doc)."""
    p = params()
    provider = _provider(p)
    entries: list[tuple[str | None, dict[str, Any]]] = [(None, item) for item in _items(p.get("metadata"))]
    for column, item in _column_items(p.get("columnsMetadata")):
        if column not in t["columns"]:
            raise ApiError(400, "storage.metadata.invalidColumn", f"Column {column} not found in the table.")
        entries.append((column, item))
    _check_keys(entries)
    ctx.store.add_metadata_many(t["id"], provider, entries)
    if not is_json_body():
        return json_response(_table_level(ctx, t["id"]), 201)
    columns: dict[str, list[dict[str, Any]]] = {}
    for m in ctx.store.list_metadata(t["id"]):
        if m["column_name"] is not None:
            columns.setdefault(m["column_name"], []).append(metadata_json(m))
    return json_response({"metadata": _table_level(ctx, t["id"]), "columnsMetadata": columns}, 201)


def _table_level(ctx: Context, table_id: str) -> list[dict[str, Any]]:
    return [metadata_json(m) for m in ctx.store.list_metadata(table_id) if m["column_name"] is None]


def _create_plain(ctx: Context, object_id: str, object_type: str) -> Response:
    """Bucket and branch metadata: `{provider, metadata: [...]}` -> 201 + the object's whole list."""
    p = params()
    provider = _provider(p)
    entries: list[tuple[str | None, dict[str, Any]]] = [(None, item) for item in _items(p.get("metadata"))]
    _check_keys(entries)
    ctx.store.add_metadata_many(object_id, provider, entries, object_type)
    return json_response([metadata_json(m) for m in ctx.store.list_metadata(object_id, object_type)], 201)


def _delete(ctx: Context, object_id: str, metadata_id: str, object_type: str) -> None:
    if not metadata_id.isdigit() or not ctx.store.delete_metadata(object_id, int(metadata_id), object_type):
        raise ApiError(404, "storage.metadata.notFound", f"Metadata with id {metadata_id} not found.")


def _provider(p: dict[str, Any]) -> str:
    provider = str(p.get("provider") or "")
    if not provider:
        raise ApiError(400, "storage.metadata.invalidProvider", "Provider must be set.")
    return provider


def _items(value: Any) -> list[dict[str, Any]]:
    """`metadata` as a list of {key, value}; a lone dict (PHP `metadata[key]=…`) is one item."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def _column_items(value: Any) -> list[tuple[str, dict[str, Any]]]:
    """`columnsMetadata` as {column: [items]} (the API's shape) or kbcstorage's list of lists of
    {key, value, columnName}."""
    if isinstance(value, dict):
        return [(str(column), item) for column, items in value.items() for item in _items(items)]
    pairs: list[tuple[str, dict[str, Any]]] = []
    for group in value if isinstance(value, list) else []:
        for item in _items(group):
            pairs.append((str(item.get("columnName")), item))
    return pairs


def _check_keys(entries: list[tuple[str | None, dict[str, Any]]]) -> None:
    if any(not str(item.get("key") or "") for _, item in entries):
        raise ApiError(
            400,
            "validation.failed",
            "Invalid request:\n - metadata: Each metadata item needs a non-empty key.",
            errors=[{"key": "metadata", "message": "Each metadata item needs a non-empty key."}],
        )
