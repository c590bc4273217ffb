"""JSON shapes of Storage API resources, in one place (§3.2 bucket, §4.1 table, §5.1 file, §6.1 job)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from keboola_emulator.tokens import PROJECT_ID

DEFAULT_BRANCH_ID = 1  # §8: the default branch answers both `default` and its numeric id


def bucket_json(
    b: dict[str, Any],
    base_url: str,
    tables: list[dict[str, Any]] | None = None,
    rows_count: int = 0,
    data_size: int = 0,
    metadata: list[dict[str, Any]] | None = None,
    linked_by: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """§3.2 shape. `tables` is a URL in list/create responses but a list in detail (conflict note).
    `linkedBy` (the buckets linked to this one) appears only with include=linkedBuckets (§3.1); the
    emulator has no bucket sharing, so it is always empty."""
    out: dict[str, Any] = {
        "uri": f"{base_url}/v2/storage/buckets/{b['id']}",
        "id": b["id"],
        "name": b["name"],
        "displayName": b["display_name"],
        "idBranch": DEFAULT_BRANCH_ID,
        "stage": b["stage"],
        "description": b["description"],
        "tables": f"{base_url}/v2/storage/buckets/{b['id']}/tables" if tables is None else tables,
        "created": b["created"],
        "lastChangeDate": b["last_change_date"],
        "updated": b["updated"],
        "isReadOnly": False,
        "dataSizeBytes": data_size,
        "rowsCount": rows_count,
        "isMaintenance": False,
        "backend": b["backend"],
        "sharing": None,
        "hasExternalSchema": False,
        "databaseName": None,
        "path": f"KBC_PRJ_{PROJECT_ID}.{b['id']}",
        "bucketSharingAllowed": True,
        "color": b["color"],
        "isLinkedBucket": False,
        "backendPath": [f"KBC_PRJ_{PROJECT_ID}", b["id"]],
        "owner": None,
        "isSnowflakeSharedDatabase": False,
        "attributes": [],
        "metadata": [metadata_json(m) for m in metadata or []],
    }
    if linked_by is not None:
        out["linkedBy"] = linked_by
    return out


def metadata_json(m: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(m["id"]),
        "key": m["key"],
        "value": m["value"],
        "provider": m["provider"],
        "timestamp": m["timestamp"],
    }


def table_json(
    t: dict[str, Any],
    base_url: str,
    *,
    bucket: dict[str, Any] | None,
    include_columns: bool = True,
    metadata: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """§4.1 shape. `columns` lists user columns only. `columnMetadata` is an object keyed by column,
    `{}` when there is none (§12: real recordings 2024 and 2025; kbagent crashes on `[]`). A table
    made by tables-definition is typed and carries its `definition` (§12 "Typed tables")."""
    table_meta = [metadata_json(m) for m in (metadata or []) if m["column_name"] is None]
    column_meta: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in metadata or []:
        if m["column_name"] is not None:
            column_meta[m["column_name"]].append(metadata_json(m))
    out: dict[str, Any] = {
        "uri": f"{base_url}/v2/storage/tables/{t['id']}",
        "id": t["id"],
        "name": t["name"],
        "displayName": t["display_name"],
        "transactional": False,
        "primaryKey": t["primary_key"],
        "indexType": None,
        "indexKey": [],
        "distributionType": None,
        "distributionKey": [],
        "syntheticPrimaryKeyEnabled": False,
        "isAlias": False,
        "isAliasable": True,
        "isTyped": t.get("definition") is not None,
        "tableType": "table",
        "timestampType": "MANAGED",
        "path": f"/{t['id'].replace('.', '/')}",
        "created": t["created"],
        "lastImportDate": t["last_import_date"],
        "lastChangeDate": t["last_change_date"],
        "rowsCount": t["rows_count"],
        "dataSizeBytes": t["data_size_bytes"],
        "metadata": table_meta,
        "columnMetadata": dict(column_meta),
        "attributes": [],
    }
    if t.get("definition") is not None:
        out["definition"] = t["definition"]
    if include_columns:
        out["columns"] = t["columns"]
    if bucket is not None:
        out["bucket"] = bucket
    return out


def file_json(
    f: dict[str, Any],
    *,
    url: str,
    size: int | None,
    provider: str,
    region: str,
    storage_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """§5.1/§5.4 shape. `storage_fields` are the provider's keys: upload params on prepare (§5.1),
    read credentials + path on detail with federationToken (§5.4), nothing otherwise."""
    out: dict[str, Any] = {
        "id": f["id"],
        "created": f["created"],
        "name": f["name"],
        "fileType": f["name"].rsplit(".", 1)[-1] if "." in f["name"] else "",
        "isPublic": f["is_public"],
        "isSliced": f["is_sliced"],
        "isEncrypted": f["is_encrypted"],
        "provider": provider,
        "region": region,
        "sizeBytes": size,
        "tags": f["tags"],
        "maxAgeDays": None if f["is_permanent"] else 15,  # §5.4: 15 days, permanent -> null
        "runId": f["run_id"],
        "runIds": [f["run_id"]] if f["run_id"] else [],
        "creatorToken": {"id": int(f["creator_token_id"]), "description": "keboola-emulator token"},
        "url": url,
        "isExpired": False,
    }
    out.update(storage_fields or {})
    return out


def job_json(j: dict[str, Any], base_url: str) -> dict[str, Any]:
    """§6.1 shape; `error` only when the job failed; ids are integers."""
    out: dict[str, Any] = {
        "id": j["id"],
        "status": j["status"],
        "url": f"{base_url}/v2/storage/jobs/{j['id']}",
        "tableId": j["table_id"],
        "operationName": j["operation_name"],
        "operationParams": {k: v for k, v in j["operation_params"].items() if not k.startswith("_")},
        "createdTime": j["created"],
        "startTime": j["start_time"],
        "endTime": j["end_time"],
        "runId": j["run_id"],
        "results": j["results"],
        "creatorToken": {"id": str(j["creator_token_id"]), "description": "keboola-emulator token"},
        "metrics": j["metrics"],
    }
    params = out["operationParams"].get("params")
    if isinstance(params, dict):
        out["operationParams"]["params"] = {k: v for k, v in params.items() if not k.startswith("_")}
    if j["status"] == "error" and j["error"]:
        out["error"] = j["error"]
    return out
