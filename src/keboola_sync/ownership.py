"""Whose a Keboola table is, and whether it already holds a file's content: the rules a load plans by.

A table is ours when it carries our owner mark or the ledger remembers loading it (and nobody recreated it
since); it holds a file when its mark names the file's hash and no import came after ours. Pure functions
over the ledger record and the remote table, so they are tested without Keboola.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from .errors import KeboolaSyncError
from .state import FileRecord
from .storage import RemoteTable
from .storage import metadata as marks


class NotOwned(KeboolaSyncError):
    """The table exists in Keboola but keboola-sync did not create it; nothing was changed."""


class Plan(Enum):
    CREATE = "create"  # no such table: create it from the file
    LOAD = "load"  # ours: full load
    ADOPT = "adopt"  # someone else's, taken over (mapping.existing_tables: adopt): full load, then marked
    HOLDS = "holds"  # ours, and its mark says it already holds this content: nothing to send
    RESUME = "resume"  # our upload's job went to it, its answer lost: ours, loaded (or that job awaited), marked


def loaded_by_us(record: FileRecord | None, remote: RemoteTable) -> bool:
    """The ledger remembers loading this table (tables created before the marks existed, or a mark that
    could not be written) and the table was not created anew since (dropped and recreated by someone
    else: Keboola's `created` after Keboola's `lastImportDate` of our load). `forget_table` clears
    `columns` when the daemon saw the table dropped."""
    if record is None or record.columns is None or record.last_load_at is None:
        return False
    if (record.table_id or "").lower() != remote.table_id.lower():
        return False
    return not _later(remote.created, record.table_import_date)


def _later(a: str | None, b: str | None) -> bool:
    """a > b for two of Keboola's ISO timestamps; False when either is missing or unreadable."""
    if not a or not b:
        return False
    try:
        return datetime.fromisoformat(a) > datetime.fromisoformat(b)
    except ValueError:
        return False


def holds(remote: RemoteTable, sha256: str) -> bool:
    """The table's mark says it holds content of this hash, and nobody imported into it since."""
    return (
        remote.marks.get(marks.SHA256_KEY) == sha256
        and bool(remote.last_import_date)
        and remote.marks.get(marks.IMPORTED_AT_KEY) == remote.last_import_date
    )


def record_lost(record: FileRecord | None) -> bool:
    """No memory of what the table holds (a new or moved-aside ledger, or a reload asked for)."""
    return record is None or record.sha256 is None
