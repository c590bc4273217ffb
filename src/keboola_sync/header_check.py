"""Whether a file's header fits the existing table, and the words for a header that does not.

Shared by the load (which refuses before anything remote changes) and the dry run (which shows the same
words), so both judge a header the same way.
"""

from __future__ import annotations

from .errors import KeboolaSyncError


class HeaderRefused(KeboolaSyncError):
    """The file's header does not fit the existing table; nothing was changed in Keboola."""


def header_difference(table: tuple[str, ...], file: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(table columns the file lacks, file columns the table lacks); order does not matter, since
    Keboola matches columns by name (§4.5.1)."""
    return [c for c in table if c not in file], [c for c in file if c not in table]


def header_refused(table: tuple[str, ...], file: tuple[str, ...], on_header_change: str) -> bool:
    missing, extra = header_difference(table, file)
    return bool(missing or (extra and on_header_change == "skip"))


def header_refusal(
    rel_path: str, table_id: str, table: tuple[str, ...], file: tuple[str, ...], on_header_change: str
) -> HeaderRefused | None:
    """The error a load raises for a header the table cannot take (the dry run shows the same words)."""
    if not header_refused(table, file, on_header_change):
        return None
    missing, extra = header_difference(table, file)
    return HeaderRefused(
        f"{rel_path}: the header no longer matches table {table_id}"
        + (f"; missing columns: {', '.join(missing)}" if missing else "")
        + (f"; new columns: {', '.join(extra)}" if extra else "")
        + ". Nothing was changed in Keboola. Restore the header, or drop the table in Keboola "
        "to recreate it from the file" + ("" if missing else ", or set csv.on_header_change: load")
    )
