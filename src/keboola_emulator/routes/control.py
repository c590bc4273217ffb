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

    @app.route("/_emulator/stats", methods=["GET"])
    def stats() -> Response:
        return json_response(ctx.stats.snapshot())

    # -- tokens (token rotation tests): the secret travels in the body, never in the URL (request lines
    # are logged), and no answer echoes one.
    def _secret() -> str:
        body = request.get_json(silent=True)
        secret = body.get("token") if isinstance(body, dict) else None
        if not isinstance(secret, str) or not secret:
            raise ValueError('send {"token": "<secret>"}')
        return secret

    @app.route("/_emulator/tokens", methods=["POST"])
    def tokens_add() -> Response:
        try:
            ctx.tokens.add_master(_secret())
        except ValueError as exc:
            return json_response({"error": str(exc), "code": "emulator.invalidToken", "status": "error"}, 400)
        return json_response({"tokens": len(ctx.tokens)})

    @app.route("/_emulator/tokens/revoke", methods=["POST"])
    def tokens_revoke() -> Response:
        try:
            revoked = ctx.tokens.revoke(_secret())
        except ValueError as exc:
            return json_response({"error": str(exc), "code": "emulator.invalidToken", "status": "error"}, 400)
        return json_response({"revoked": revoked, "tokens": len(ctx.tokens)})

    @app.route("/_emulator/health", methods=["GET"])
    def health() -> Response:
        return json_response({"status": "ok", "s3": ctx.s3.endpoint, "api": url(ctx)})
