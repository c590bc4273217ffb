"""What every route module needs: parameter parsing, the branch-aware route decorator, auth
checks and the bucket/table lookups that answer 404 the way the real API does."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from keboola_emulator import naming
from keboola_emulator.context import Context
from keboola_emulator.errors import ApiError, bucket_not_found, table_not_found
from keboola_emulator.phpparams import parse_pairs
from keboola_emulator.tokens import Token
from keboola_emulator.views import bucket_json, table_json

BASE = "/v2/storage"
TRUE_STRINGS = {"1", "true", "True", "TRUE", "yes", "on"}


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
    """Form, JSON or query parameters as one dict. Form and query keys follow PHP's grammar
    (`x[]`, `x[0]`, `x[0][key]`, §12 "PHP-style parameters"); the body wins over the query."""
    out: dict[str, Any] = {}
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            out.update(body)
    else:
        out.update(parse_pairs(request.form.items(multi=True)))
    for key, value in parse_pairs(request.args.items(multi=True)).items():
        out.setdefault(key, value)
    return out


def is_json_body() -> bool:
    """Some answers differ by how the request was sent (the metadata POST, §12)."""
    return bool(request.is_json)


def as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def run_id() -> str | None:
    return request.headers.get("X-KBC-RunId") or None


def int_or_str(value: Any) -> Any:
    return int(value) if str(value).isdigit() else value


def quote_csv(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def safe_key_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def url(ctx: Context) -> str:
    """The API's base URL in answers: the name the client used when it came through a TLS front."""
    if fronted():
        return f"https://{request.host}"
    return ctx.api_url or request.host_url.rstrip("/")


def fronted() -> bool:
    """True when the client reached the API under a real-looking https name (a host without a port
    that is neither an IP address nor localhost), i.e. through a TLS front such as the client suite's
    (tests/clients). Such a client gets URLs of the same kind back: the API's own name, and S3 URLs on
    the real AWS host (kbagent refuses to download from a loopback address). Every client that talks
    to `http://127.0.0.1:<port>` (the daemon, kbcstorage, Docker with the host network) is unaffected."""
    if not has_request_context():
        return False
    host = request.host
    if ":" in host or host == "localhost":
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def branch_route(app: Flask) -> Callable[..., Callable[..., Any]]:
    """`@route(rule, methods, branch_aware)`: also registers `/branch/<branch>/rule` (§8)."""

    def route(rule: str, methods: list[str], branch_aware: bool = False) -> Callable[..., Any]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            app.add_url_rule(BASE + rule, fn.__name__, fn, methods=methods)
            if branch_aware:
                app.add_url_rule(BASE + "/branch/<branch>" + rule, fn.__name__ + "_branch", fn, methods=methods)
            return fn

        return decorator

    return route


def require_manage() -> Token:
    """Writes need canManageBuckets; a read-only token gets 403 accessDenied (§1.4)."""
    token: Token = g.token
    if not token.can_manage_buckets:
        raise ApiError(403, "accessDenied", "You don't have access to the resource.")
    return token


def bucket_or_404(ctx: Context, bucket_id: str) -> dict[str, Any]:
    b = ctx.store.get_bucket(bucket_id)
    if b is None:
        raise bucket_not_found(bucket_id)
    return b


def bucket_stats(ctx: Context, bucket_id: str) -> tuple[int, int]:
    tables = ctx.store.list_tables(bucket_id)
    return sum(t["rows_count"] for t in tables), sum(t["data_size_bytes"] for t in tables)


def includes() -> set[str]:
    """The `include=a,b` query values (§3.1, §4.1)."""
    return set(as_list(request.args.get("include")))


def full_bucket_json(ctx: Context, b: dict[str, Any], *, linked: bool = False) -> dict[str, Any]:
    """A bucket with its real row and size counts and its metadata, wherever it appears (its own
    detail and list, or embedded in a table); `linked` adds `linkedBy` (include=linkedBuckets)."""
    rows, size = bucket_stats(ctx, b["id"])
    return bucket_json(
        b,
        url(ctx),
        rows_count=rows,
        data_size=size,
        metadata=ctx.store.list_metadata(b["id"], "bucket"),
        linked_by=[] if linked else None,
    )


def table_or_404(ctx: Context, table_id: str) -> dict[str, Any]:
    """§4.1: unknown bucket part -> storage.buckets.notFound, else storage.tables.notFound."""
    t = ctx.store.get_table(table_id)
    if t is None:
        bucket_id = table_id.rpartition(".")[0]
        if not bucket_id or ctx.store.get_bucket(bucket_id) is None:
            raise bucket_not_found(bucket_id or table_id)
        raise table_not_found(table_id)
    return t


def tables_response(ctx: Context, tables: list[dict[str, Any]], buckets: dict[str, dict[str, Any]]) -> Response:
    """§4.1: default has `bucket`, not `columns`; include=columns adds columns; `include=` empty drops bucket."""
    include = request.args.get("include")
    parts = set(as_list(include)) if include is not None else {"buckets"}
    if include is not None and "columns" not in parts and "buckets" not in parts and include != "":
        parts.add("buckets")
    out = []
    embedded: dict[str, dict[str, Any]] = {}  # one count per bucket, not one per table
    for t in tables:
        b = buckets.get(t["bucket_id"]) or ctx.store.get_bucket(t["bucket_id"])
        if b and "buckets" in parts and b["id"] not in embedded:
            embedded[b["id"]] = full_bucket_json(ctx, b)
        meta = ctx.store.list_metadata(t["id"]) if "metadata" in parts or "columnMetadata" in parts else []
        out.append(
            table_json(
                t,
                url(ctx),
                bucket=embedded[b["id"]] if b and "buckets" in parts else None,
                include_columns="columns" in parts,
                metadata=meta,
            )
        )
    return json_response(out)


def valid_table_name(p: dict[str, Any]) -> str:
    """The `name` of a table create (tables-async, tables-definition), or the 400 Keboola answers (§4.3)."""
    name = str(p.get("name") or "")
    problem = naming.table_name_problem(name)
    if problem:
        raise ApiError(400, "storage.tables.validation", problem)
    return name
