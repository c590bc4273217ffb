"""File routes (§5): prepare with the provider's upload params, list, detail (federationToken), delete."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, request

from keboola_emulator import model
from keboola_emulator.context import Context
from keboola_emulator.errors import ApiError
from keboola_emulator.routes.common import (
    as_bool,
    as_list,
    branch_route,
    fronted,
    json_response,
    params,
    require_manage,
    run_id,
    safe_key_name,
)
from keboola_emulator.tokens import PROJECT_ID, Token
from keboola_emulator.views import file_json


def register(app: Flask, ctx: Context) -> None:
    route = branch_route(app)

    # -- files (§5) ----------------------------------------------------------------------------
    def file_or_404(file_id: str) -> dict[str, Any]:
        f = ctx.store.get_file(int(file_id)) if str(file_id).isdigit() else None
        if f is None:
            raise ApiError(404, "storage.files.notFound", "File not found.")  # §5.4
        return f

    def render_file(f: dict[str, Any], with_credentials: bool, upload: bool = False) -> dict[str, Any]:
        files = ctx.files
        sliced = bool(f["is_sliced"])
        size = files.object_size(f["s3_key"]) if not sliced else None
        if upload:
            fields = files.upload_fields(
                f["s3_key"], file_id=int(f["id"]), sliced=sliced, encrypted=bool(f["is_encrypted"])
            )
        elif with_credentials:
            fields = files.read_fields(f["s3_key"], file_id=int(f["id"]), sliced=sliced)
        else:
            fields = None
        return file_json(
            f,
            url=files.signed_get(f["s3_key"] + ("manifest" if sliced else ""), public=fronted()),
            size=size if size is not None else f["size_bytes"],
            provider=files.provider,
            region=files.region,
            storage_fields=fields,
        )

    @route("/files/prepare", ["POST"], branch_aware=True)
    def file_prepare() -> Response:
        """§5.1: 201 with aws uploadParams incl. x-amz-server-side-encryption when encrypted."""
        token: Token = g.token
        p = params()
        name = str(p.get("name") or "")
        if not name:
            raise ApiError(
                400,
                "validation.failed",
                "Invalid request:\n - name: This value should not be blank.",
                errors=[{"key": "name", "message": "This value should not be blank."}],
            )
        is_sliced = as_bool(p.get("isSliced"))
        size = p.get("sizeBytes")
        today = model.now()[:10].replace("-", "/")
        f = ctx.store.insert_file(
            {
                "name": name,
                "created": model.now(),
                "size_bytes": int(size) if str(size or "").isdigit() else None,
                "tags": as_list(p.get("tags")),
                "is_public": as_bool(p.get("isPublic")),
                "is_sliced": is_sliced,
                "is_encrypted": as_bool(p.get("isEncrypted"), default=True),
                "is_permanent": as_bool(p.get("isPermanent")),
                "content_type": p.get("contentType"),
                "run_id": run_id(),
                "creator_token_id": token.id,
                "key_template": f"exp-15/{PROJECT_ID}/files/{today}/{{id}}."
                + safe_key_name(name)
                + ("/" if is_sliced else ""),
            }
        )
        ctx.stats.count_file_prepared()
        return json_response(render_file(f, with_credentials=True, upload=True), 201)

    @route("/files", ["GET"], branch_aware=True)
    def files_list() -> Response:
        p = params()
        files = ctx.store.list_files(
            limit=int(p.get("limit") or 100),
            offset=int(p.get("offset") or 0),
            tags=as_list(p.get("tags")),
            since_id=int(p["sinceId"]) if str(p.get("sinceId") or "").isdigit() else None,
            max_id=int(p["maxId"]) if str(p.get("maxId") or "").isdigit() else None,
            run_id=p.get("runId"),
        )
        return json_response([render_file(f, with_credentials=False) for f in files])

    @route("/files/<file_id>", ["GET"], branch_aware=True)
    def file_detail(file_id: str) -> Response:
        f = file_or_404(file_id)
        return json_response(render_file(f, with_credentials=as_bool(request.args.get("federationToken"))))

    @route("/files/<file_id>", ["DELETE"], branch_aware=True)
    def file_delete(file_id: str) -> Response:
        require_manage()
        f = file_or_404(file_id)
        ctx.store.delete_file(f["id"])
        ctx.files.delete_prefix(f["s3_key"])
        return Response(status=204)
