"""What to do with one stable file: pure functions of what was observed, its ledger row and the clock.

`decide()` turns an observation into a `Decision`; `SyncService` (sync.py) only gathers the observation
and carries the decision out. The rest answer the small questions around it without reading a file or
asking Keboola: is there work for a rescan, how long a failed file waits, was this skip already said,
does a ledger row depend on the remote table.
"""

from __future__ import annotations

import re
from datetime import datetime

from .fileid import Fingerprint
from .layout import Ignored, Rejected, Target
from .outcome import GONE_MESSAGE, Action, Decision, Observation, os_problem
from .state import DEPENDS_TABLE, RIVAL, FileRecord, LedgerState
from .storage.metadata import parse_date


def needs_work(fp: Fingerprint, record: FileRecord | None, now: float) -> bool:
    """Cheap test (no reading, no network) used by rescans: is there anything to do for this file?"""
    if record is None or record.in_flight:
        return True
    if record.seen != fp:
        return True
    if record.state == LedgerState.FAILED:
        return record.next_retry_at is not None and record.next_retry_at <= now
    return record.state == LedgerState.PENDING


def decide(
    rel_path: str, target: Target | Ignored | Rejected, seen: Observation, record: FileRecord | None, now: float
) -> Decision:
    """What to do with one stable file. Pure: the same inputs always give the same decision."""
    if isinstance(target, Ignored):
        return Decision(Action.IGNORE, target.reason)
    fp = seen.fingerprint
    if fp is None:
        if not seen.exists:
            return Decision(Action.GONE, GONE_MESSAGE)
        # No fingerprint is remembered: fixing permissions or a link changes no size or mtime, so the
        # file is looked at again on every rescan (one failed open), logged only once.
        problem = os_problem(rel_path, seen.error) if seen.error else f"{rel_path}: cannot be read"
        return Decision(Action.SKIP, problem)
    if isinstance(target, Rejected):
        return Decision(Action.SKIP, f"{rel_path}: {target.problem}. {target.fix}", version=fp)
    if not seen.inside:
        message = (
            f"{rel_path}: a symbolic link that points outside the watched folder (or "
            "nowhere); it is not followed. Copy the file into the folder instead"
        )
        return Decision(Action.SKIP, message, target.table_id, fp)
    if seen.rival is not None:
        message = (
            f"{rel_path}: maps to table {target.table_id}, which {seen.rival} already loads. "
            "Rename one of the two files"
        )
        return Decision(Action.SKIP, message, version=fp, depends=RIVAL + seen.rival)
    if record is not None and not seen.rejudge and not _rival_gone(record, seen) and not needs_work(fp, record, now):
        action = Action.WAIT if record.state == LedgerState.FAILED else Action.NOTHING
        return Decision(action, record.error or "", target.table_id)
    rename = target.renamed and (record is None or record.table_id != target.table_id)
    return Decision(Action.LOAD, "", target.table_id, fp, announce_rename=rename)


def _rival_gone(record: FileRecord, seen: Observation) -> bool:
    """Skipped because another file loaded its table, and that file no longer does (renamed, deleted):
    the verdict is judged again although this file did not change (issue 12 item 4)."""
    return bool(record.depends and record.depends.startswith(RIVAL) and seen.rival is None)


def retry_spacing(previous: float | None, first: float, cap: float) -> float:
    """How long a failed file waits before the next try: `first`, then doubling while the same version
    keeps failing, never more than `cap`. A failure Keboola explains no better than "error" must never
    become an import every few minutes forever (issue 13)."""
    if previous is None:
        return min(first, cap)
    return min(max(previous * 2, first), cap)


_JOB_NUMBER = re.compile(r"\bjob \d+ failed\b")


def skip_already_said(before: FileRecord | None, fp: Fingerprint | None, message: str) -> bool:
    """This version of the file was already skipped with this verdict, so its line was logged. A skip
    being judged again (a first look in this process, a changed setting: state pending, its version and
    verdict kept) counts too. Keboola's refusal of the same content differs only by the job's number."""
    if before is None or before.state not in (LedgerState.SKIPPED, LedgerState.PENDING) or before.seen != fp:
        return False
    return before.error is not None and _JOB_NUMBER.sub("job failed", before.error) == _JOB_NUMBER.sub(
        "job failed", message
    )


def loaded_by_someone_else(record: FileRecord, import_date: datetime | None) -> bool:
    """Keboola's lastImportDate moved since our last load (Keboola's clock against Keboola's clock)."""
    ours = parse_date(record.table_import_date)
    return record.state == LedgerState.SYNCED and ours is not None and import_date is not None and import_date != ours


def judged_by_the_table(record: FileRecord) -> bool:
    """A row whose state is about the remote table: it holds our load, or a skip refused by that table
    (header or content). When the table is dropped in Keboola, the file is loaded again (issue 12 item 3)."""
    return record.state == LedgerState.SYNCED or (
        record.state == LedgerState.SKIPPED and record.depends == DEPENDS_TABLE
    )
