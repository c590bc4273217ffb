"""Index-adjacent identity routes: tokens/verify and dev-branches (§1.3, §8)."""

from __future__ import annotations

from flask import Flask, Response, g

from keboola_emulator.context import Context
from keboola_emulator.routes.common import (
    branch_route,
    json_response,
    url,
)
from keboola_emulator.tokens import creator_token, verify_payload
from keboola_emulator.views import DEFAULT_BRANCH_ID


def register(app: Flask, ctx: Context) -> None:
    route = branch_route(app)

    @route("/tokens/verify", ["GET"])
    def token_verify() -> Response:
        size, rows = ctx.store.totals()
        bucket_ids = [b["id"] for b in ctx.store.list_buckets()]
        payload = verify_payload(g.token, url(ctx), bucket_ids, "2026-01-01T00:00:00+0000", size, rows)
        payload["owner"]["features"] = list(ctx.features)  # §12: ...and here (the PHP job runner)
        payload["owner"]["fileStorageProvider"] = ctx.files.provider  # aws | azure | gcp (§2.1, §5.1)
        return json_response(payload)

    @route("/dev-branches", ["GET"])
    def dev_branches() -> Response:
        return json_response(
            [
                {
                    "id": DEFAULT_BRANCH_ID,
                    "name": "Main",
                    "description": "",
                    "isDefault": True,
                    "created": "2026-01-01T00:00:00+0000",
                    "creatorToken": creator_token(g.token),
                }
            ]
        )
