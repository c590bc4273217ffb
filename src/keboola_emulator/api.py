"""The Storage API routes (Flask). Request parsing, auth and HTTP errors live here; the work is
in model/operations. Sections cited are from /work/shared/keboola-storage-api.md.
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

from keboola_emulator import model, naming
from keboola_emulator.context import Context
from keboola_emulator.csvimport import Dialect
from keboola_emulator.errors import ApiError, bucket_not_found, table_not_found
from keboola_emulator.tokens import PROJECT_ID, Token, creator_token, verify_payload
from keboola_emulator.views import DEFAULT_BRANCH_ID, bucket_json, file_json, job_json, table_json

log = logging.getLogger(__name__)

TRUE_STRINGS = {"1", "true", "True", "TRUE", "yes", "on"}
DROP_FLAG = "keboola_emulator.drop"
LOST_FLAG = "keboola_emulator.lost"
PREVIEW_MAX = 1000  # §4.7


def as_bool(value: Any, default: bool = False) -> bool:
    """Symfony-style booleans: kbcstorage sends Python reprs `True`/`False` (§3.5, §9.11)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    return str(value) in TRUE_STRINGS


def params() -> dict[str, Any]:
    """Form, JSON or query parameters as one dict; `x[]` keys become lists under `x` (§10.2)."""
    out: dict[str, Any] = {}
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            out.update(body)
    else:
        for key in request.form:
            values = request.form.getlist(key)
            if key.endswith("[]"):
                out[key[:-2]] = values
            else:
                out[key] = values[-1]
    for key in request.args:
        values = request.args.getlist(key)
        if key.endswith("[]"):
            out.setdefault(key[:-2], values)
        else:
            out.setdefault(key, values[-1])
    return out


def as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def create_app(ctx: Context) -> Flask:
    app = Flask("keboola_emulator")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024  # API bodies are small; data goes to S3
    base = "/v2/storage"

    def route(rule: str, methods: list[str], branch_aware: bool = False) -> Callable[..., Any]:
        """Registers `rule`, and with `branch_aware` also `/branch/<branch>/rule` (§8)."""

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            app.add_url_rule(base + rule, fn.__name__, fn, methods=methods)
            if branch_aware:
                app.add_url_rule(base + "/branch/<branch>" + rule, fn.__name__ + "_branch", fn, methods=methods)
            return fn

        return decorator

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
                return Response(json.dumps({"status": "maintenance", "reason": "Injected maintenance "
                                            "(keboola-emulator)", "estimatedEndTime": model.now()}),
                                status=503, mimetype="application/json", headers={"Retry-After": "1"})
            err = ApiError(status, "", "Internal Server Error occurred (injected by keboola-emulator).")
            return json_response(err.body(), status)
        if ctx.faults.draw(settings.rate_limit_rate):
            ctx.stats.count_fault("rate_limit")
            err = ApiError(429, "tooManyRequests", "Too many requests (injected by keboola-emulator).")
            return Response(json.dumps(err.body()), status=429, mimetype="application/json",
                            headers={"Retry-After": "1"})
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
                secret = auth[len("Bearer "):].strip()
                if request.headers.get("X-KBC-ProjectId") not in (None, str(PROJECT_ID)):
                    raise ApiError(403, "accessDenied", "You don't have access to the project.")
        if not secret:
            raise ApiError(401, "", "Access token must be set")
        token = ctx.tokens.lookup(secret)
        if token is None:
            raise ApiError(401, "storage.tokenInvalid", "Invalid access token")
        return token

    def require_manage() -> Token:
        token: Token = g.token
        if not token.can_manage_buckets:
            raise ApiError(403, "accessDenied", "You don't have access to the resource.")
        return token

    @app.after_request
    def _gzip(response: Response) -> Response:
        """Like the real API, honour `Accept-Encoding: gzip` (kbcstorage always sends it, §1.1)."""
        if (response.status_code < 200 or response.status_code in (204, 304) or response.direct_passthrough
                or "gzip" not in request.headers.get("Accept-Encoding", "")
                or response.headers.get("Content-Encoding")):
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

    def url() -> str:
        return ctx.api_url or request.host_url.rstrip("/")

    # -- index, tokens -------------------------------------------------------------------------
    def _index() -> Response:
        """§2.2: works without a valid token."""
        body: dict[str, Any] = {
            "api": "storage", "version": "v2", "revision": "keboola-emulator",
            "documentation": "https://keboola.docs.apiary.io/", "stack": url(),
            "services": [{"id": "import", "url": url()}, {"id": "syrup", "url": url()}],
            "features": [], "urlTemplates": {},
            "components": [],
        }
        if request.args.get("exclude") == "components":
            del body["components"]
        return json_response(body)

    app.add_url_rule(base, "index", _index, methods=["GET"])
    app.add_url_rule(base + "/", "index_slash", _index, methods=["GET"])

    @route("/tokens/verify", ["GET"])
    def token_verify() -> Response:
        size, rows = ctx.store.totals()
        bucket_ids = [b["id"] for b in ctx.store.list_buckets()]
        return json_response(verify_payload(g.token, url(), bucket_ids, "2026-01-01T00:00:00+0000", size, rows))

    @route("/dev-branches", ["GET"])
    def dev_branches() -> Response:
        return json_response([{"id": DEFAULT_BRANCH_ID, "name": "Main", "description": "", "isDefault": True,
                               "created": "2026-01-01T00:00:00+0000", "creatorToken": creator_token(g.token)}])

    # -- buckets (§3) --------------------------------------------------------------------------
    def bucket_or_404(bucket_id: str) -> dict[str, Any]:
        b = ctx.store.get_bucket(bucket_id)
        if b is None:
            raise bucket_not_found(bucket_id)
        return b

    def bucket_stats(bucket_id: str) -> tuple[int, int]:
        tables = ctx.store.list_tables(bucket_id)
        return sum(t["rows_count"] for t in tables), sum(t["data_size_bytes"] for t in tables)

    @route("/buckets", ["GET"], branch_aware=True)
    def buckets_list() -> Response:
        out = []
        for b in ctx.store.list_buckets():
            rows, size = bucket_stats(b["id"])
            out.append(bucket_json(b, url(), rows_count=rows, data_size=size))
        return json_response(out)

    @route("/buckets", ["POST"], branch_aware=True)
    def bucket_create() -> Response:
        token = require_manage()
        p = params()
        name = str(p.get("name") or "")
        stage = str(p.get("stage") or "in")
        if stage not in ("in", "out"):
            raise ApiError(400, "storage.buckets.validation", f"Invalid data - stage: '{stage}' is not valid. "
                           "Allowed values are: in, out.")
        problem = naming.bucket_name_problem(name)
        if problem:
            raise ApiError(400, "storage.buckets.validation", problem)
        display_name = str(p.get("displayName") or name)
        problem = naming.display_name_problem(display_name)
        if problem:
            raise ApiError(400, "storage.buckets.validation", problem)
        backend = p.get("backend") or "snowflake"
        if backend not in ("snowflake", "bigquery"):
            raise ApiError(400, "storage.buckets.validation", f"Invalid data - backend: '{backend}' is not "
                           "supported. Allowed values are: snowflake, bigquery.")
        bucket_id = f"{stage}.c-{name}"  # §3.2: the server adds `c-`
        with ctx.store.write() as c:
            if c.execute("SELECT 1 FROM buckets WHERE id = ?", (bucket_id,)).fetchone():
                raise ApiError(400, "storage.buckets.alreadyExists", f"The bucket {name} already exists.")
            if c.execute("SELECT 1 FROM buckets WHERE stage = ? AND display_name = ?",
                         (stage, display_name)).fetchone():
                raise ApiError(400, "storage.buckets.alreadyExists",
                               f'The display name "{display_name}" already exists in project.')
            ctx.store.insert_bucket(c, {"id": bucket_id, "stage": stage, "name": f"c-{name}",
                                        "display_name": display_name, "description": str(p.get("description") or ""),
                                        "backend": backend, "color": p.get("color"), "created": model.now()})
        del token
        return json_response(bucket_json(bucket_or_404(bucket_id), url()), 201)

    @route("/buckets/<bucket_id>", ["GET"], branch_aware=True)
    def bucket_detail(bucket_id: str) -> Response:
        b = bucket_or_404(bucket_id)
        tables = ctx.store.list_tables(bucket_id)
        rows, size = bucket_stats(bucket_id)
        table_list = [table_json(t, url(), bucket=None, include_columns=True) for t in tables]
        return json_response(bucket_json(b, url(), tables=table_list, rows_count=rows, data_size=size))

    @route("/buckets/<bucket_id>", ["DELETE"], branch_aware=True)
    def bucket_delete(bucket_id: str) -> Response:
        """§3.5: sync -> 204, async -> 202 bucketDelete job; non-empty without force -> deleteNotEmpty."""
        token = require_manage()
        p = params()
        bucket_or_404(bucket_id)
        force = as_bool(p.get("force"))
        if as_bool(p.get("async")):
            job = ctx.jobs.submit("bucketDelete", table_id=None, params={"force": force, "_bucketId": bucket_id},
                                  source=None, token_id=token.id, run_id=run_id(), lock_key=bucket_id)
            return json_response(job_json(job, url()), 202)
        with ctx.store.write() as c:
            count = c.execute("SELECT COUNT(*) FROM tables WHERE bucket_id = ?", (bucket_id,)).fetchone()[0]
            if count and not force:
                # status UNCONFIRMED (§3.5, presumably 400)
                raise ApiError(400, "buckets.deleteNotEmpty",
                               f"Only empty buckets can be deleted. There are {count} tables in the bucket.")
            tables = ctx.store.delete_bucket_rows(c, bucket_id)
        for t in tables:
            from keboola_emulator.operations import _remove

            _remove(ctx.store.data_path(t))
        return Response(status=204)

    @route("/buckets/<bucket_id>/tables", ["GET"], branch_aware=True)
    def bucket_tables(bucket_id: str) -> Response:
        b = bucket_or_404(bucket_id)
        return tables_response(ctx.store.list_tables(bucket_id), {b["id"]: b})

    def tables_response(tables: list[dict[str, Any]], buckets: dict[str, dict[str, Any]]) -> Response:
        """§4.1: default has `bucket`, not `columns`; include=columns adds columns; `include=` empty drops bucket."""
        include = request.args.get("include")
        parts = set(as_list(include)) if include is not None else {"buckets"}
        if include is not None and "columns" not in parts and "buckets" not in parts and include != "":
            parts.add("buckets")
        out = []
        for t in tables:
            b = buckets.get(t["bucket_id"]) or ctx.store.get_bucket(t["bucket_id"])
            meta = ctx.store.list_metadata(t["id"]) if "metadata" in parts or "columnMetadata" in parts else []
            out.append(table_json(t, url(), bucket=bucket_json(b, url()) if b and "buckets" in parts else None,
                                  include_columns="columns" in parts, metadata=meta))
        return json_response(out)

    # -- tables (§4) ---------------------------------------------------------------------------
    def table_or_404(table_id: str) -> dict[str, Any]:
        t = ctx.store.get_table(table_id)
        if t is None:
            bucket_id = table_id.rpartition(".")[0]
            if not bucket_id or ctx.store.get_bucket(bucket_id) is None:
                raise bucket_not_found(bucket_id or table_id)
            raise table_not_found(table_id)
        return t

    @route("/tables", ["GET"], branch_aware=True)
    def tables_list() -> Response:
        return tables_response(ctx.store.list_tables(), {b["id"]: b for b in ctx.store.list_buckets()})

    @route("/tables/<table_id>", ["GET"], branch_aware=True)
    def table_detail(table_id: str) -> Response:
        t = table_or_404(table_id)
        b = ctx.store.get_bucket(t["bucket_id"])
        return json_response(table_json(t, url(), bucket=bucket_json(b, url()) if b else None,
                                        metadata=ctx.store.list_metadata(table_id)))

    @route("/tables/<table_id>", ["DELETE"], branch_aware=True)
    def table_delete(table_id: str) -> Response:
        """§4.8: sync -> 204 (kbcstorage's default, no `async`), async -> 202 tableDrop job."""
        token = require_manage()
        table_or_404(table_id)
        if as_bool(params().get("async")):
            job = ctx.jobs.submit("tableDrop", table_id=table_id, params={}, source=None, token_id=token.id,
                                  run_id=run_id())
            return json_response(job_json(job, url()), 202)
        table = ctx.store.delete_table_row(table_id)
        if table is not None:
            from keboola_emulator.operations import _remove

            _remove(ctx.store.data_path(table))
        return Response(status=204)

    def load_params(p: dict[str, Any]) -> tuple[Dialect, dict[str, Any]]:
        dialect = Dialect.from_params(p.get("delimiter"), p.get("enclosure"), p.get("escapedBy"))
        file_id = p.get("dataFileId")
        if file_id in (None, ""):
            raise ApiError(400, "validation.failed", "Invalid request:\n - dataFileId: This value should not be "
                           "blank.", errors=[{"key": "dataFileId", "message": "This value should not be blank."}])
        return dialect, {"fileId": _int_or_str(file_id), "type": "file"}

    @route("/buckets/<bucket_id>/tables-async", ["POST"], branch_aware=True)
    def table_create(bucket_id: str) -> Response:
        """§4.2: 202 + tableCreate job; results = the table."""
        token = require_manage()
        bucket_or_404(bucket_id)
        p = params()
        name = str(p.get("name") or "")
        problem = naming.table_name_problem(name)
        if problem:
            raise ApiError(400, "storage.tables.validation", problem)
        if isinstance(p.get("primaryKey"), list):
            raise ApiError(400, "storage.validation.primaryKey", "Primary key must be a string.")  # §4.2
        dialect, source = load_params(p)
        job_params = {"name": name, **dialect.as_params(), "primaryKey": as_list(p.get("primaryKey")),
                      "columns": as_list(p.get("columns")), "_bucketId": bucket_id}
        job = ctx.jobs.submit("tableCreate", table_id=f"{bucket_id}.{name}", params=job_params, source=source,
                              token_id=token.id, run_id=run_id())
        return json_response(job_json(job, url()), 202)

    @route("/tables/<table_id>/import-async", ["POST"], branch_aware=True)
    def table_import(table_id: str) -> Response:
        """§4.5: 202 + tableImport job; incremental=0 is a full load."""
        token = require_manage()
        table_or_404(table_id)
        p = params()
        dialect, source = load_params(p)
        # kbcstorage sends `columns` as `primaryKey[]` (§9.9); the API ignores an unknown list there.
        job_params = {"incremental": as_bool(p.get("incremental")), "columns": as_list(p.get("columns")),
                      "withoutHeaders": as_bool(p.get("withoutHeaders")), **dialect.as_params()}
        job = ctx.jobs.submit("tableImport", table_id=table_id, params=job_params, source=source,
                              token_id=token.id, run_id=run_id())
        return json_response(job_json(job, url()), 202)

    @route("/tables/<table_id>/export-async", ["POST"], branch_aware=True)
    def table_export(table_id: str) -> Response:
        token = g.token
        t = table_or_404(table_id)
        p = params()
        columns = as_list(p.get("columns"))
        unknown = [c for c in columns if c not in t["columns"]]
        if unknown:
            raise ApiError(400, "storage.tables.validation", f"Columns {', '.join(unknown)} not found in the table.")
        limit = p.get("limit")
        job_params = {"columns": columns, "gzip": as_bool(p.get("gzip")),
                      "limit": int(limit) if limit not in (None, "") else None,
                      "whereColumn": p.get("whereColumn"), "whereOperator": p.get("whereOperator") or "eq",
                      "whereValues": as_list(p.get("whereValues")) if not isinstance(p.get("whereValues"), list)
                      else p.get("whereValues")}
        job = ctx.jobs.submit("tableExport", table_id=table_id, params=job_params, source=None,
                              token_id=token.id, run_id=run_id())
        return json_response(job_json(job, url()), 202)

    @route("/tables/<table_id>/data-preview", ["GET"], branch_aware=True)
    def table_preview(table_id: str) -> Response:
        """§4.7: rfc = every field quoted, LF, trailing newline; json = columns + rows of cells."""
        t = table_or_404(table_id)
        p = params()
        try:
            limit = int(p.get("limit") or 100)
        except ValueError as exc:
            raise ApiError(400, "storage.tables.validation", "Invalid limit.") from exc
        if limit > PREVIEW_MAX or limit < 0:
            raise ApiError(400, "storage.tables.validation",
                           f"Invalid request: limit: This value should be {PREVIEW_MAX} or less.")
        columns = as_list(p.get("columns")) or t["columns"]
        unknown = [c for c in columns if c not in t["columns"]]
        if unknown:
            raise ApiError(400, "storage.tables.validation", f"Columns {', '.join(unknown)} not found in the table.")
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
            return json_response({"columns": columns, "rows": [
                [{"columnName": c, "value": v[:16384], "isTruncated": len(v) > 16384}
                 for c, v in zip(columns, r, strict=True)]
                for r in rows]})
        lines = [",".join(_quote(c) for c in columns)] + [",".join(_quote(v) for v in r) for r in rows]
        return Response("\n".join(lines) + "\n", mimetype="text/csv")

    @route("/tables/<table_id>/metadata", ["GET"], branch_aware=True)
    def table_metadata_list(table_id: str) -> Response:
        table_or_404(table_id)
        return json_response([_meta(m) for m in ctx.store.list_metadata(table_id) if m["column_name"] is None])

    @route("/tables/<table_id>/metadata", ["POST"], branch_aware=True)
    def table_metadata_create(table_id: str) -> Response:
        require_manage()
        t = table_or_404(table_id)
        p = params()
        provider = str(p.get("provider") or "")
        if not provider:
            raise ApiError(400, "storage.metadata.invalidProvider", "Provider must be set.")
        items = p.get("metadata") or []
        ctx.store.add_metadata(table_id, provider, items if isinstance(items, list) else [])
        columns_meta = p.get("columnsMetadata") or []
        if isinstance(columns_meta, dict):
            pairs = [(col, item) for col, items in columns_meta.items() for item in items]
        else:  # kbcstorage sends a list of lists of {key, value, columnName}
            pairs = [(item.get("columnName"), item) for group in columns_meta
                     for item in (group if isinstance(group, list) else [group])]
        for col, item in pairs:
            if col not in t["columns"]:
                raise ApiError(400, "storage.metadata.invalidColumn", f"Column {col} not found in the table.")
            ctx.store.add_metadata(table_id, provider, [item], column_name=col)
        return json_response([_meta(m) for m in ctx.store.list_metadata(table_id) if m["column_name"] is None], 201)

    @route("/tables/<table_id>/metadata/<metadata_id>", ["DELETE"], branch_aware=True)
    def table_metadata_delete(table_id: str, metadata_id: str) -> Response:
        require_manage()
        table_or_404(table_id)
        if not metadata_id.isdigit() or not ctx.store.delete_metadata(table_id, int(metadata_id)):
            raise ApiError(404, "storage.metadata.notFound", f"Metadata with id {metadata_id} not found.")
        return Response(status=204)

    # -- files (§5) ----------------------------------------------------------------------------
    def file_or_404(file_id: str) -> dict[str, Any]:
        f = ctx.store.get_file(int(file_id)) if str(file_id).isdigit() else None
        if f is None:
            raise ApiError(404, "storage.files.notFound", "File not found.")  # §5.4
        return f

    def credentials() -> dict[str, Any]:
        """§5.1 aws credentials; moto accepts any, so these only need the real shape."""
        from datetime import UTC, datetime, timedelta

        expiration = (datetime.now(UTC) + timedelta(hours=12)).replace(microsecond=0).isoformat()
        return {"AccessKeyId": "ASIAKEBOOLAEMULATOR1", "SecretAccessKey": "keboola-emulator-secret",
                "SessionToken": "keboola-emulator-session-token", "Expiration": expiration,
                "_bucket": "kbc-sapi-files"}

    def render_file(f: dict[str, Any], with_credentials: bool, upload: bool = False) -> dict[str, Any]:
        key = f["s3_key"] + ("manifest" if f["is_sliced"] else "")
        size = ctx.s3.object_size(f["s3_key"]) if not f["is_sliced"] else None
        return file_json(f, url=ctx.s3.presigned_get(key), size=size if size is not None else f["size_bytes"],
                         credentials=credentials() if with_credentials else None, with_upload_params=upload)

    @route("/files/prepare", ["POST"], branch_aware=True)
    def file_prepare() -> Response:
        """§5.1: 201 with aws uploadParams incl. x-amz-server-side-encryption when encrypted."""
        token: Token = g.token
        p = params()
        name = str(p.get("name") or "")
        if not name:
            raise ApiError(400, "validation.failed", "Invalid request:\n - name: This value should not be blank.",
                           errors=[{"key": "name", "message": "This value should not be blank."}])
        is_sliced = as_bool(p.get("isSliced"))
        size = p.get("sizeBytes")
        today = model.now()[:10].replace("-", "/")
        f = ctx.store.insert_file({
            "name": name, "created": model.now(), "size_bytes": int(size) if str(size or "").isdigit() else None,
            "tags": as_list(p.get("tags")), "is_public": as_bool(p.get("isPublic")), "is_sliced": is_sliced,
            "is_encrypted": as_bool(p.get("isEncrypted"), default=True),
            "is_permanent": as_bool(p.get("isPermanent")), "content_type": p.get("contentType"),
            "run_id": run_id(), "creator_token_id": token.id,
            "key_template": f"exp-15/{PROJECT_ID}/files/{today}/{{id}}." + _safe_key_name(name)
            + ("/" if is_sliced else ""),
        })
        ctx.stats.count_file_prepared()
        return json_response(render_file(f, with_credentials=True, upload=True), 201)

    @route("/files", ["GET"], branch_aware=True)
    def files_list() -> Response:
        p = params()
        files = ctx.store.list_files(
            limit=int(p.get("limit") or 100), offset=int(p.get("offset") or 0), tags=as_list(p.get("tags")),
            since_id=int(p["sinceId"]) if str(p.get("sinceId") or "").isdigit() else None,
            max_id=int(p["maxId"]) if str(p.get("maxId") or "").isdigit() else None, run_id=p.get("runId"))
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
        ctx.s3.delete_prefix(f["s3_key"])
        return Response(status=204)

    # -- jobs (§6) -----------------------------------------------------------------------------
    @route("/jobs", ["GET"])
    def jobs_list() -> Response:
        p = params()
        limit = min(int(p.get("limit") or 100), 1000)
        return json_response([job_json(j, url()) for j in ctx.store.list_jobs(limit, int(p.get("offset") or 0))])

    @route("/jobs/<job_id>", ["GET"])
    def job_detail(job_id: str) -> Response:
        j = ctx.store.get_job(int(job_id)) if job_id.isdigit() else None
        if j is None:
            raise ApiError(404, "storage.jobs.notFound", f"Job {job_id} not found.")
        return json_response(job_json(j, url()))

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

    @app.route("/_emulator/health", methods=["GET"])
    def health() -> Response:
        return json_response({"status": "ok", "s3": ctx.s3.endpoint, "api": url()})

    return app


def run_id() -> str | None:
    return request.headers.get("X-KBC-RunId") or None


def _int_or_str(value: Any) -> Any:
    return int(value) if str(value).isdigit() else value


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _safe_key_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def _meta(m: dict[str, Any]) -> dict[str, Any]:
    from keboola_emulator.views import metadata_json

    return metadata_json(m)


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
