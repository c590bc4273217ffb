"""The Flask app around the routes: fault injection and auth before every request, error bodies,
gzip, and the WSGI middleware that drops connections. Routes live in `keboola_emulator.routes`;
sections cited are from /work/shared/keboola-storage-api.md.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from keboola_emulator import model
from keboola_emulator.context import Context
from keboola_emulator.errors import ApiError
from keboola_emulator.routes import register_all
from keboola_emulator.routes.common import json_response, url
from keboola_emulator.tokens import PROJECT_ID, Token
from keboola_emulator.views import DEFAULT_BRANCH_ID

log = logging.getLogger(__name__)

DROP_FLAG = "keboola_emulator.drop"
LOST_FLAG = "keboola_emulator.lost"
PREVIEW_MAX = 1000  # §4.7


def create_app(ctx: Context) -> Flask:
    app = Flask("keboola_emulator")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024  # API bodies are small; data goes to S3
    base = "/v2/storage"

    @app.url_value_preprocessor
    def _branch(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values and "branch" in values:
            branch = values.pop("branch")
            if branch not in ("default", str(DEFAULT_BRANCH_ID)):
                raise ApiError(404, "storage.devBranches.notFound", f"Branch {branch} not found.")

    # -- faults, auth, stats -------------------------------------------------------------------
    @app.before_request
    def _before() -> Response | None:
        path = request.path
        if path.startswith("/_emulator"):
            return None
        rule = request.url_rule.rule if request.url_rule is not None else "<unknown>"
        ctx.stats.count_request(f"{request.method} {rule}")
        settings = ctx.faults.current()
        if not settings.applies_to(path):
            return _authenticated()
        if settings.latency_ms > 0:
            ctx.stats.count_fault("latency")
            time.sleep(settings.latency_ms / 1000.0)  # the latency fault is a real delay by design
        if ctx.faults.draw(settings.drop_rate):
            ctx.stats.count_fault("drop")
            request.environ[DROP_FLAG] = True
            return Response(b"", status=599)
        if ctx.faults.draw(settings.fail_rate):
            status = ctx.faults.choice((500, 502, 503))
            ctx.stats.count_fault(f"fail_{status}")
            if status == 503:  # §7.3 maintenance shape with Retry-After
                return Response(
                    json.dumps(
                        {
                            "status": "maintenance",
                            "reason": "Injected maintenance (keboola-emulator)",
                            "estimatedEndTime": model.now(),
                        }
                    ),
                    status=503,
                    mimetype="application/json",
                    headers={"Retry-After": "1"},
                )
            err = ApiError(status, "", "Internal Server Error occurred (injected by keboola-emulator).")
            return json_response(err.body(), status)
        if ctx.faults.draw(settings.rate_limit_rate):
            ctx.stats.count_fault("rate_limit")
            err = ApiError(429, "tooManyRequests", "Too many requests (injected by keboola-emulator).")
            return Response(
                json.dumps(err.body()), status=429, mimetype="application/json", headers={"Retry-After": "1"}
            )
        if ctx.faults.draw(settings.lost_response_rate):
            ctx.stats.count_fault("lost_response")
            request.environ[LOST_FLAG] = True  # handled normally; DropMiddleware then drops the answer
        return _authenticated()

    def _authenticated() -> None:
        if request.endpoint in ("index", "index_slash") or request.method == "OPTIONS":
            return None
        g.token = authenticate()
        return None

    def authenticate() -> Token:
        """§1.4: missing/empty -> 401 code ""; unknown -> 401 storage.tokenInvalid."""
        secret = request.headers.get("X-StorageApi-Token", "")
        if not secret:
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                secret = auth[len("Bearer ") :].strip()
                if request.headers.get("X-KBC-ProjectId") not in (None, str(PROJECT_ID)):
                    raise ApiError(403, "accessDenied", "You don't have access to the project.")
        if not secret:
            raise ApiError(401, "", "Access token must be set")
        token = ctx.tokens.lookup(secret)
        if token is None:
            raise ApiError(401, "storage.tokenInvalid", "Invalid access token")
        return token

    @app.after_request
    def _gzip(response: Response) -> Response:
        """Like the real API, honour `Accept-Encoding: gzip` (kbcstorage always sends it, §1.1)."""
        if (
            response.status_code < 200
            or response.status_code in (204, 304)
            or response.direct_passthrough
            or "gzip" not in request.headers.get("Accept-Encoding", "")
            or response.headers.get("Content-Encoding")
        ):
            return response
        data = response.get_data()
        if len(data) < 512:
            return response
        response.set_data(gzip.compress(data, compresslevel=1))
        response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
        return response

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return json_response(err.body(), err.status)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        code = err.code or 500
        message = {404: "Not found", 405: "Method not allowed"}.get(code, err.description or err.name)
        return json_response(ApiError(code, "notFound" if code == 404 else "", message).body(), code)

    @app.errorhandler(Exception)
    def _crash(err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(ApiError(500, "", f"Internal Server Error occurred: {err}").body(), 500)

    # -- index, tokens -------------------------------------------------------------------------
    def _index() -> Response:
        """§2.2: works without a valid token."""
        body: dict[str, Any] = {
            "api": "storage",
            "version": "v2",
            "revision": "keboola-emulator",
            "documentation": "https://keboola.docs.apiary.io/",
            "stack": url(ctx),
            "services": [{"id": "import", "url": url(ctx)}, {"id": "syrup", "url": url(ctx)}],
            "features": list(ctx.features),  # §2.2/§12: clients look for project features here
            "urlTemplates": {},
            "components": [],
        }
        if request.args.get("exclude") == "components":
            del body["components"]
        return json_response(body)

    app.add_url_rule(base, "index", _index, methods=["GET"])
    app.add_url_rule(base + "/", "index_slash", _index, methods=["GET"])

    register_all(app, ctx)
    app.wsgi_app = TrailingSlashMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


class TrailingSlashMiddleware:
    """`DELETE /v2/storage/tables/{id}/?force=true` (pykeboola) reaches the same route as without
    the slash, as on Keboola's PHP front; Flask's own rules would answer 404 (issue 17, item 6)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/v2/storage/") and len(path) > len("/v2/storage/") and path.endswith("/"):
            environ["PATH_INFO"] = path.rstrip("/")
        return self._app(environ, start_response)


class DropMiddleware:
    """Closes the client connection without any response when a request drew the drop fault."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.append((status, headers, exc_info))
            return lambda data: None

        if not environ.get("PATH_INFO", "").startswith("/v2/"):
            return self._app(environ, start_response)
        body = self._app(environ, capture)
        if environ.get(LOST_FLAG):
            for _ in body:  # the work is done (and, for a job, queued) before the answer is lost
                pass
        if environ.get(DROP_FLAG) or environ.get(LOST_FLAG):
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            raise ConnectionAbortedError("connection dropped by the drop_rate / lost_response_rate fault")
        status, headers, exc_info = captured[0]
        start_response(status, headers, exc_info)
        return body
