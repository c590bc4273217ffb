"""Typed tables (§12 "Typed tables"): the `tables-definition` request, the table's `definition`, and
the `storage`-provider column metadata Keboola writes for each typed column.

`POST /buckets/{id}/tables-definition` with `{"name", "primaryKeysNames", "columns": [{"name",
"definition": {"type", "length", "nullable", "default"}}]}` creates an empty table in a job; kbagent
(`create-table`, and `upload-table` for a missing table) and pykeboola use it. Clients read the
column types back from `columnMetadata` (`KBC.datatype.type`, `.basetype`, `.length`, `.nullable`,
provider `storage`), e.g. pykeboola's `Column.from_keboola`.
"""

from __future__ import annotations

import re
from typing import Any

from keboola_emulator.errors import ApiError

MAX_COLUMN_NAME = 64  # §4.4
_COLUMN_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # §4.4: typed definitions may keep dashes (inferred)

# Snowflake type -> Keboola base type (KBC.datatype.basetype)
_BASETYPES = {
    "NUMBER": "NUMERIC",
    "DECIMAL": "NUMERIC",
    "NUMERIC": "NUMERIC",
    "INT": "INTEGER",
    "INTEGER": "INTEGER",
    "BIGINT": "INTEGER",
    "SMALLINT": "INTEGER",
    "TINYINT": "INTEGER",
    "BYTEINT": "INTEGER",
    "FLOAT": "FLOAT",
    "FLOAT4": "FLOAT",
    "FLOAT8": "FLOAT",
    "DOUBLE": "FLOAT",
    "DOUBLE PRECISION": "FLOAT",
    "REAL": "FLOAT",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "DATETIME": "TIMESTAMP",
    "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP_NTZ": "TIMESTAMP",
    "TIMESTAMP_LTZ": "TIMESTAMP",
    "TIMESTAMP_TZ": "TIMESTAMP",
}


def basetype(native: str) -> str:
    """Unknown and character types are STRING, as in Keboola's type mapping."""
    return _BASETYPES.get(native.upper().strip(), "STRING")


def _invalid(message: str, key: str) -> ApiError:
    return ApiError(
        400,
        "validation.failed",
        f"Invalid request:\n - {key}: {message}",
        errors=[{"key": key, "message": message}],
    )


def parse_definition(body: dict[str, Any]) -> dict[str, Any]:
    """The request's columns and primary key as the table's `definition`; a request the real
    schema validation would refuse answers 400 `validation.failed` before any job."""
    columns = body.get("columns")
    if not isinstance(columns, list) or not columns:
        raise _invalid("This value should not be blank.", "columns")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, column in enumerate(columns):
        name = str(column.get("name") or "") if isinstance(column, dict) else ""
        if not name or len(name) > MAX_COLUMN_NAME or not _COLUMN_NAME.match(name):
            raise _invalid(f"Invalid column name '{name}'.", f"columns[{i}].name")
        if name.lower() in seen:
            raise _invalid(f"Column '{name}' is defined more than once.", f"columns[{i}].name")
        seen.add(name.lower())
        out.append(_column(i, name, column))
    pk = body.get("primaryKeysNames") or []
    if not isinstance(pk, list):
        raise _invalid("This value should be of type array.", "primaryKeysNames")
    return {"primaryKeysNames": [str(p) for p in pk], "columns": out}


def _column(i: int, name: str, column: dict[str, Any]) -> dict[str, Any]:
    definition = column.get("definition")
    if not isinstance(definition, dict) and column.get("basetype"):
        definition = {"type": str(column["basetype"])}
    if not isinstance(definition, dict) or not str(definition.get("type") or ""):
        raise _invalid("This value should not be blank.", f"columns[{i}].definition.type")
    clean: dict[str, Any] = {"type": str(definition["type"]), "nullable": definition.get("nullable", True) is not False}
    for optional in ("length", "default"):
        if definition.get(optional) not in (None, ""):
            clean[optional] = str(definition[optional])
    return {"name": name, "definition": clean, "basetype": basetype(clean["type"]), "canBeFiltered": True}


def storage_column_metadata(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(column, {key, value}) entries Keboola writes with provider `storage` for a typed table."""
    entries: list[tuple[str, dict[str, Any]]] = []
    for column in definition["columns"]:
        d = column["definition"]
        items = [
            ("KBC.datatype.type", d["type"]),
            ("KBC.datatype.nullable", "1" if d["nullable"] else ""),
            ("KBC.datatype.basetype", column["basetype"]),
        ]
        if "length" in d:
            items.append(("KBC.datatype.length", d["length"]))
        if "default" in d:
            items.append(("KBC.datatype.default", d["default"]))
        entries.extend((column["name"], {"key": key, "value": value}) for key, value in items)
    return entries
