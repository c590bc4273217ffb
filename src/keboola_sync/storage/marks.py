"""What keboola-sync writes on the tables it creates: table metadata of provider `keboola-sync` (§4).

Why metadata and not only the ledger: the ledger can be lost (a new machine, a moved volume, a deleted
`state.db`); the mark travels with the table. It answers two questions the daemon must never guess at:
did keboola-sync create this table (else it is someone else's data and is not overwritten unless
`mapping.existing_tables: adopt`), and what content did the last load put there (so a lost ledger does not
mean reloading every file).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PROVIDER = "keboola-sync"
OWNER = "keboola-sync.owner"  # present: the table was created (or adopted) by keboola-sync
SHA256 = "keboola-sync.sha256"  # content hash of the file the last load came from
HEADER = "keboola-sync.header"  # JSON list: the file's raw header cells at the last load
SOURCE = "keboola-sync.source"  # the file's path relative to the watched folder
# The table's lastImportDate right after that load: a later import by anyone else moves it, so the hash
# above is trusted only while the two agree.
IMPORTED_AT = "keboola-sync.importedAt"


def ours(metadata: Iterable[Any] | None) -> dict[str, str]:
    """The `keboola-sync` entries of a table's metadata list (`[{key, value, provider}, ...]`), as a dict.
    Tolerant of every shape seen: a list, None, or entries without a provider."""
    found: dict[str, str] = {}
    for item in metadata or ():
        if not isinstance(item, Mapping):
            continue
        if item.get("provider") == PROVIDER and isinstance(item.get("key"), str):
            found[str(item["key"])] = "" if item.get("value") is None else str(item["value"])
    return found


def entries(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in values.items()]
