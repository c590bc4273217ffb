"""Test support: a table as Keboola holds it, exported through the real SDK and compared with its file.

`export_table` runs the SDK's export from inside the destination folder: the SDK downloads a sliced file's
parts into the current directory under names made of the file id, so two pytest-xdist workers exporting from
their own emulators (whose file ids can be equal) would otherwise delete each other's parts.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def export_table(client: Any, table_id: str, folder: Path, **options: Any) -> Path:
    """`client.tables.export_to_file` into `folder` (created), run from inside it."""
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(folder):
        return Path(client.tables.export_to_file(table_id, str(folder), **options))


def rows_digest(rows: Iterable[list[str]]) -> tuple[int, int]:
    """(row count, order-free digest) of CSV rows: the sum of each row's hash, so a table exported in any
    order matches its file without holding either sorted in memory."""
    count, total = 0, 0
    for row in rows:
        count += 1
        total = (total + int.from_bytes(hashlib.blake2b("\x1f".join(row).encode(), digest_size=8).digest())) % (1 << 64)
    return count, total


def table_digest(client: Any, table_id: str, folder: Path) -> tuple[int, int]:
    """`rows_digest` of the table's rows (header left out), exported through the SDK: from the cloud
    storage of the emulator's stack, a sliced file downloaded and merged."""
    with export_table(client, table_id, folder).open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)  # the header
        return rows_digest(reader)
