"""Tables changed in Keboola behind the daemon's back: dropped, or loaded by something else.

Found with one list call per rescan, so every table ends up equal to its file although the file itself did
not change (issue 12 items 3 and 7).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .decide import judged_by_the_table, loaded_by_someone_else
from .fileid import observe
from .state import Ledger
from .storage import Storage

log = logging.getLogger("keboola_sync.sync")


def tables_dropped_remotely(storage: Storage, ledger: Ledger, root: Path) -> list[str]:
    """Paths whose table was deleted, or loaded by someone else, in Keboola although the file did not
    change: they load again, so every table ends up equal to its file (issue 12 items 3 and 7). One
    list call; rows recorded after it started are not judged."""
    asked_at = time.time()
    remote = {t.table_id: t.last_import_date for t in storage.list_tables()}
    paths = []
    for record in ledger.all():
        if not judged_by_the_table(record) or not record.table_id:
            continue
        if (record.last_load_at or 0) >= asked_at or not (root / record.path).exists():
            continue
        if observe(root / record.path) != record.seen:
            continue  # changed as well: its load is on the way and will find out
        if record.table_id not in remote:
            log.warning(
                "table %s was deleted in Keboola; loading %s again",
                record.table_id,
                record.path,
                extra={"file": record.path, "table": record.table_id},
            )
            ledger.forget_table(record.table_id)
            paths.append(record.path)
        elif loaded_by_someone_else(record, remote[record.table_id]):
            log.warning(
                "table %s was loaded in Keboola by something other than keboola-sync (last import %s); "
                "loading %s again so the table equals the file",
                record.table_id,
                remote[record.table_id],
                record.path,
                extra={"file": record.path, "table": record.table_id},
            )
            ledger.forget_content(record.path)
            paths.append(record.path)
    return paths
