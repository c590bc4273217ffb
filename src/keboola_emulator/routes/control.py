"""The control plane under /_emulator/: fault knobs, counters, health. Never faulted."""

from __future__ import annotations

from flask import Flask, Response, request

from keboola_emulator.context import Context
from keboola_emulator.routes.common import (
    json_response,
    url,
)


def register(app: Flask, ctx: Context) -> None:
    # -- control plane (never faulted) ---------------------------------------------------------
    @app.route("/_emulator/faults", methods=["GET"])
    def faults_get() -> Response:
        return json_response(ctx.faults.as_dict())

    @app.route("/_emulator/faults", methods=["POST"])
    def faults_post() -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            body = {k: v for k, v in request.form.items()}
        try:
            return json_response(ctx.faults.merge(body))
        except ValueError as exc:
            return json_response({"error": str(exc), "code": "emulator.invalidFaults", "status": "error"}, 400)

    @app.route("/_emulator/faults/reset", methods=["POST"])
    def faults_reset() -> Response:
        return json_response(ctx.faults.reset())

    @app.route("/_emulator/tokens", methods=["POST"])
    def tokens_post() -> Response:
        """`{"add": secret}` adds a master token, `{"revoke": secret}` makes one fail with 401 (a rotation)."""
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not set(body) <= {"add", "revoke"} or not body:
            message = 'expected {"add": "<token>"} and/or {"revoke": "<token>"}'
            return json_response({"error": message, "code": "emulator.invalidTokens", "status": "error"}, 400)
        if body.get("add"):
            ctx.tokens.add_master(str(body["add"]))
        if body.get("revoke"):
            ctx.tokens.revoke(str(body["revoke"]))
        return json_response({"tokens": len(ctx.tokens)})

    @app.route("/_emulator/stats", methods=["GET"])
    def stats() -> Response:
        return json_response(ctx.stats.snapshot())

    @app.route("/_emulator/health", methods=["GET"])
    def health() -> Response:
        return json_response({"status": "ok", "s3": ctx.s3.endpoint, "api": url(ctx)})
