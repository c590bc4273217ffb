"""Loads left in flight when the daemon last stopped: settle each by asking Keboola how its job ended.

Run once at start-up, before any new load, so a crash at any moment is resolved by asking, never by
sending again blindly.
"""

from __future__ import annotations

import contextlib
import logging

from .fileid import Fingerprint
from .state import FileRecord, Ledger
from .storage import Abandoned, JobFailed, Storage, StorageError

log = logging.getLogger("keboola_sync.sync")


def resolve_in_flight(storage: Storage, ledger: Ledger) -> None:
    """Loads that were in flight when the daemon last stopped: ask Keboola how each job ended, never
    re-send blindly. A finished job is recorded; a failed one is forgotten (its upload is kept)."""
    for record in ledger.in_flight():
        assert record.job_id is not None
        try:
            job = storage.job_status(record.job_id)
            if job is not None and job.get("status") not in ("success", "error"):
                log.info(
                    "waiting for job %s of %s, started before the restart",
                    record.job_id,
                    record.path,
                    extra={"file": record.path},
                )
                with contextlib.suppress(JobFailed):  # its error is read from the job below
                    storage.wait_for_job(record.job_id, what=f"load of {record.path}")
                job = storage.job_status(record.job_id)
        except Abandoned:
            raise
        except StorageError as exc:
            log.warning("cannot resolve job %s of %s yet: %s", record.job_id, record.path, exc)
            continue
        if job is not None and job.get("status") == "success" and record.pending and record.pending_sha256:
            _record_finished(storage, ledger, record, record.pending, record.pending_sha256)
        else:
            ledger.clear_in_flight(record.path)


def _record_finished(storage: Storage, ledger: Ledger, record: FileRecord, pending: Fingerprint, sha256: str) -> None:
    table = storage.get_table(record.table_id) if record.table_id else None
    ledger.record_synced(
        record.path,
        record.table_id or "",
        pending,
        sha256,
        table.columns if table else (record.pending_columns or ()),
        table.rows_count if table else None,
    )
    log.info(
        "job %s of %s finished while the daemon was down; recorded it",
        record.job_id,
        record.path,
        extra={"file": record.path, "outcome": "loaded"},
    )
