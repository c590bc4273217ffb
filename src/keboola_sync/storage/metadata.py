"""What keboola-sync remembers in Keboola itself: table metadata of provider `keboola-sync`, and the typed
view of the table list a rescan compares against.

Why in Keboola and not only in the ledger: a table the daemon did not create must never be overwritten
(issue 12.1), and that must hold after the ledger is lost; the content hash and header of the last load
let a fresh ledger reload only what differs (12.5) and notice a table changed behind our back (12.7).
Keboola's table metadata API (§3.1 `include=metadata`, §4.1, §12 `POST /tables/{id}/metadata`) stores
string key/value pairs per provider; the keys below are the only ones we write.

Everything here is pure: parsing Keboola's JSON into frozen values, and back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The provider of every metadata entry we write (Keboola keeps entries per provider).
PROVIDER = "keboola-sync"
# The keys, in one place. OWNER: the table was created by keboola-sync (its value is OWNER_VALUE).
OWNER_KEY = "keboola-sync.owner"
# SHA256: the content hash of the last load (the hex digest the ledger keeps too).
SHA256_KEY = "keboola-sync.sha256"
# HEADER: a JSON list of the raw header cells of the last load, before Keboola sanitised them (§4.4).
HEADER_KEY = "keboola-sync.header"
# SOURCE: the file's path relative to the watched folder, with `/` separators.
SOURCE_KEY = "keboola-sync.source"
# IMPORTED_AT: the table's lastImportDate right after that load, as Keboola wrote it. A later import by
# anyone else moves lastImportDate, so the hash above is trusted only while the two agree.
IMPORTED_AT_KEY = "keboola-sync.importedAt"
SYNC_KEYS = (OWNER_KEY, SHA256_KEY, HEADER_KEY, SOURCE_KEY, IMPORTED_AT_KEY)
OWNER_VALUE = "keboola-sync"


@dataclass(frozen=True)
class MetadataEntry:
    """One metadata entry as Keboola returns it (`id` and `timestamp` are Keboola's)."""

    key: str
    value: str
    provider: str
    id: str = ""
    timestamp: str = ""


@dataclass(frozen=True)
class SyncMetadata:
    """Our entries of one table, typed. A field is None when the entry is absent (or unreadable)."""

    owned: bool = False
    sha256: str | None = None
    header: tuple[str, ...] | None = None
    source: str | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> SyncMetadata:
        """From our provider's key -> value pairs (as `ours` returns them)."""
        return cls(
            owned=bool(values.get(OWNER_KEY)),
            sha256=values.get(SHA256_KEY) or None,
            header=_header(values.get(HEADER_KEY)),
            source=values.get(SOURCE_KEY) or None,
        )

    def to_values(self) -> dict[str, str]:
        """The key -> value pairs to write; absent fields are left out, so a write never clears them
        (Keboola's POST adds and updates entries, it deletes none)."""
        values: dict[str, str] = {}
        if self.owned:
            values[OWNER_KEY] = OWNER_VALUE
        if self.sha256 is not None:
            values[SHA256_KEY] = self.sha256
        if self.header is not None:
            values[HEADER_KEY] = json.dumps(list(self.header), ensure_ascii=False)
        if self.source is not None:
            values[SOURCE_KEY] = self.source
        return values


@dataclass(frozen=True)
class TableSummary:
    """One table of the project as the table list shows it: enough for a rescan to tell whether the
    table still holds what its file last loaded (issue 12.7) and whether the daemon owns it (12.1)."""

    table_id: str
    bucket_id: str
    name: str
    display_name: str
    columns: tuple[str, ...]
    rows_count: int | None
    last_import_date: datetime | None
    metadata: SyncMetadata
    # All of our provider's entries, also keys a later version may add.
    values: Mapping[str, str]


def parse_entries(raw: Any) -> tuple[MetadataEntry, ...]:
    """Keboola's metadata list (`[{id, key, value, provider, timestamp}, ...]`) into entries; anything
    that is not such a list (PHP's `[]`-for-`{}` habit, §4.1) gives none."""
    if not isinstance(raw, list):
        return ()
    return tuple(
        MetadataEntry(
            key=str(item["key"]),
            value="" if item.get("value") is None else str(item["value"]),
            provider=str(item.get("provider") or ""),
            id=str(item.get("id") or ""),
            timestamp=str(item.get("timestamp") or ""),
        )
        for item in raw
        if isinstance(item, Mapping) and "key" in item
    )


def parse_post_answer(raw: Any) -> tuple[MetadataEntry, ...]:
    """The answer of `POST /tables/{id}/metadata`: a list of the table's entries, or (§12, the shape
    `keboola-mcp-server` reads) `{"metadata": [...], "columnsMetadata": {...}}`. Both are accepted."""
    if isinstance(raw, Mapping):
        return parse_entries(raw.get("metadata"))
    return parse_entries(raw)


def ours(entries: Iterable[MetadataEntry]) -> dict[str, str]:
    """Our provider's entries as key -> value (the last one wins, as Keboola keeps one per key)."""
    return {e.key: e.value for e in entries if e.provider == PROVIDER}


def table_summary(raw: Mapping[str, Any]) -> TableSummary:
    """One entry of `GET /tables?include=columns,metadata` (§4.1 shape) as a TableSummary."""
    table_id = str(raw["id"])
    bucket = raw.get("bucket")
    bucket_id = str(bucket["id"]) if isinstance(bucket, Mapping) and "id" in bucket else table_id.rpartition(".")[0]
    values = ours(parse_entries(raw.get("metadata")))
    rows = raw.get("rowsCount")
    return TableSummary(
        table_id=table_id,
        bucket_id=bucket_id,
        name=str(raw.get("name") or table_id.rpartition(".")[2]),
        display_name=str(raw.get("displayName") or raw.get("name") or ""),
        columns=tuple(str(c) for c in raw.get("columns") or ()),
        rows_count=int(rows) if isinstance(rows, int | str) and str(rows).isdigit() else None,
        last_import_date=parse_date(raw.get("lastImportDate")),
        metadata=SyncMetadata.from_values(values),
        values=values,
    )


def parse_date(value: Any) -> datetime | None:
    """Keboola's ISO 8601 stamps (`2016-07-07T11:25:32+0200`, §4.1) as aware datetimes; None when absent
    or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _header(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    try:
        cells = json.loads(value)
    except ValueError:
        return None
    if not isinstance(cells, list) or not all(isinstance(c, str) for c in cells):
        return None
    return tuple(cells)
