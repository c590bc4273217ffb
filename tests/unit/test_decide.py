"""`decide()` as a table: what was seen of a file, its ledger row and the clock in; what to do out.

Pure logic: no files, no emulator, no sleeps. The e2e tests prove the same decisions end to end.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from keboola_sync.errors import FileChanged, InvalidFile, SpoolError
from keboola_sync.fileid import Fingerprint
from keboola_sync.layout import Ignored, Rejected, Target
from keboola_sync.load import ContentRefused, CreateRefused, HeaderRefused, NotOwned
from keboola_sync.outcome import error_outcome
from keboola_sync.state import FileRecord, LedgerState
from keboola_sync.storage import Abandoned, JobFailed, NotFound, StorageTransient, TokenRejected
from keboola_sync.sync import (
    Action,
    Decision,
    Observation,
    Status,
    decide,
    needs_work,
    retry_spacing,
    skip_already_said,
)

NOW = 1_000.0
PATH = "sales/orders.csv"
FP = Fingerprint(size=10, mtime_ns=123, inode=7)
NEWER = Fingerprint(size=12, mtime_ns=456, inode=7)
TARGET = Target(PATH, "sales", "orders.csv", "sales", "in.c-sales", "orders", "in.c-sales.orders", renamed=False)
RENAMED = Target(PATH, "sales", "orders.csv", "sales", "in.c-sales", "orders_", "in.c-sales.orders_", renamed=True)


def row(
    state: LedgerState,
    seen: Fingerprint | None = FP,
    *,
    retry_at: float | None = None,
    job_id: int | None = None,
    error: str | None = None,
    table_id: str | None = "in.c-sales.orders",
    depends: str | None = None,
) -> FileRecord:
    return FileRecord(
        path=PATH,
        table_id=table_id,
        state=state,
        seen=seen,
        sha256="h1",
        columns=("id",),
        header=("id",),
        rows=1,
        last_load_at=NOW - 100,
        pending=None,
        pending_sha256=None,
        pending_columns=None,
        file_id=None,
        file_uploaded_at=None,
        job_id=job_id,
        error=error,
        next_retry_at=retry_at,
        depends=depends,
    )


SEEN = Observation(FP)
T = "in.c-sales.orders"

CASES = [
    # (name, target, observation, record, expected decision)
    ("ignored", Ignored(PATH, "a hidden file"), Observation(None), None, Decision(Action.IGNORE, "a hidden file")),
    (
        "deleted before it was looked at",
        TARGET,
        Observation(None, FileNotFoundError(errno.ENOENT, "gone"), exists=False),
        None,
        Decision(Action.GONE, "deleted before it could be loaded"),
    ),
    (
        "unreadable: skipped, no version remembered",
        TARGET,
        Observation(None, PermissionError(errno.EACCES, "denied")),
        None,
        Decision(Action.SKIP, f"{PATH}: cannot be read (permission denied). Make it readable: chmod a+r '{PATH}'"),
    ),
    (
        "link loop",
        TARGET,
        Observation(None, OSError(errno.ELOOP, "loop")),
        None,
        Decision(Action.SKIP, f"{PATH}: a symbolic link loop. Replace the link with the file itself"),
    ),
    (
        "rejected name",
        Rejected(PATH, "the name is empty", "Rename it"),
        SEEN,
        None,
        Decision(Action.SKIP, f"{PATH}: the name is empty. Rename it", version=FP),
    ),
    (
        "link out of the folder",
        TARGET,
        Observation(FP, inside=False),
        None,
        Decision(
            Action.SKIP,
            f"{PATH}: a symbolic link that points outside the watched folder (or nowhere); it is not followed. "
            "Copy the file into the folder instead",
            T,
            FP,
        ),
    ),
    (
        "another file loads the table",
        TARGET,
        Observation(FP, rival="sales/Orders.csv"),
        None,
        Decision(
            Action.SKIP,
            f"{PATH}: maps to table {T}, which sales/Orders.csv already loads. Rename one of the two files",
            version=FP,
            depends="rival:sales/Orders.csv",
        ),
    ),
    (
        "skipped for a rival that no longer loads the table: judged again",
        TARGET,
        SEEN,
        row(LedgerState.SKIPPED, depends="rival:sales/Orders.csv"),
        Decision(Action.LOAD, "", T, FP),
    ),
    (
        "skipped for a rival that still loads it: nothing new",
        TARGET,
        Observation(FP, rival="sales/Orders.csv"),
        row(LedgerState.SKIPPED, depends="rival:sales/Orders.csv"),
        Decision(
            Action.SKIP,
            f"{PATH}: maps to table {T}, which sales/Orders.csv already loads. Rename one of the two files",
            version=FP,
            depends="rival:sales/Orders.csv",
        ),
    ),
    ("new file", TARGET, SEEN, None, Decision(Action.LOAD, "", T, FP)),
    ("new file, renamed", RENAMED, SEEN, None, Decision(Action.LOAD, "", RENAMED.table_id, FP, announce_rename=True)),
    (
        "renamed, already loaded under that name: no second warning",
        RENAMED,
        Observation(NEWER),
        row(LedgerState.SYNCED, table_id=RENAMED.table_id),
        Decision(Action.LOAD, "", RENAMED.table_id, NEWER),
    ),
    ("synced, same version", TARGET, SEEN, row(LedgerState.SYNCED), Decision(Action.NOTHING, "", T)),
    ("synced, changed", TARGET, Observation(NEWER), row(LedgerState.SYNCED), Decision(Action.LOAD, "", T, NEWER)),
    ("pending", TARGET, SEEN, row(LedgerState.PENDING), Decision(Action.LOAD, "", T, FP)),
    (
        "in flight after a crash",
        TARGET,
        SEEN,
        row(LedgerState.PENDING, job_id=9),
        Decision(Action.LOAD, "", T, FP),
    ),
    (
        "skipped, same version",
        TARGET,
        SEEN,
        row(LedgerState.SKIPPED, error="bad"),
        Decision(Action.NOTHING, "bad", T),
    ),
    (
        "skipped, changed",
        TARGET,
        Observation(NEWER),
        row(LedgerState.SKIPPED, error="bad"),
        Decision(Action.LOAD, "", T, NEWER),
    ),
    (
        "failed, retry not due",
        TARGET,
        SEEN,
        row(LedgerState.FAILED, retry_at=NOW + 1, error="HTTP 503"),
        Decision(Action.WAIT, "HTTP 503", T),
    ),
    (
        "failed, retry due",
        TARGET,
        SEEN,
        row(LedgerState.FAILED, retry_at=NOW, error="HTTP 503"),
        Decision(Action.LOAD, "", T, FP),
    ),
    (
        "failed, retry only on change",
        TARGET,
        SEEN,
        row(LedgerState.FAILED, retry_at=None, error="HTTP 503"),
        Decision(Action.WAIT, "HTTP 503", T),
    ),
    (
        "failed, changed",
        TARGET,
        Observation(NEWER),
        row(LedgerState.FAILED, retry_at=NOW + 1),
        Decision(Action.LOAD, "", T, NEWER),
    ),
    (
        "table dropped remotely (seen forgotten)",
        TARGET,
        SEEN,
        row(LedgerState.PENDING, seen=None),
        Decision(Action.LOAD, "", T, FP),
    ),
]


@pytest.mark.parametrize(("target", "seen", "record", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide(target, seen, record, expected):
    assert decide(PATH, target, seen, record, NOW) == expected


@pytest.mark.parametrize(
    ("record", "fp", "expected"),
    [
        (None, FP, True),
        (row(LedgerState.SYNCED), FP, False),
        (row(LedgerState.SYNCED), NEWER, True),
        (row(LedgerState.SYNCED, job_id=3), FP, True),
        (row(LedgerState.SKIPPED), FP, False),
        (row(LedgerState.PENDING), FP, True),
        (row(LedgerState.FAILED, retry_at=NOW - 1), FP, True),
        (row(LedgerState.FAILED, retry_at=NOW + 1), FP, False),
    ],
)
def test_needs_work_is_the_rescans_cheap_half_of_decide(record, fp, expected):
    assert needs_work(fp, record, NOW) is expected


ERRORS = [
    (FileChanged("x"), Status.CHANGED, False, "changed while being read"),
    (FileNotFoundError(errno.ENOENT, "gone"), Status.GONE, False, "deleted before it could be loaded"),
    (InvalidFile(PATH, "not UTF-8", "Save it as UTF-8"), Status.SKIPPED, True, None),
    (HeaderRefused("header"), Status.SKIPPED, True, "header"),
    (ContentRefused("content"), Status.SKIPPED, True, "content"),
    (CreateRefused("content"), Status.SKIPPED, True, "content"),
    (SpoolError(Path("/spool"), OSError(errno.ENOSPC, "full")), Status.FAILED, False, None),
    (Abandoned("shutdown"), Status.ABANDONED, False, "shutdown"),
    (TokenRejected("HTTP 401", status=401), Status.FAILED, True, None),
    (NotFound("no table", code="storage.tables.notFound"), Status.FAILED, True, "no table"),
    (JobFailed("job failed", code="storage.x", job_id=1), Status.FAILED, True, "job failed"),
    (StorageTransient("HTTP 503", status=503), Status.FAILED, True, "HTTP 503"),
    (PermissionError(errno.EACCES, "denied"), Status.SKIPPED, False, None),
]


@pytest.mark.parametrize(("exc", "status", "remember", "message"), ERRORS, ids=[type(e[0]).__name__ for e in ERRORS])
def test_one_table_turns_every_error_into_an_outcome(exc, status, remember, message):
    rule = error_outcome(exc)
    assert rule is not None and (rule.status, rule.remember) == (status, remember)
    if message is not None:
        assert rule.message(PATH, exc) == message


def test_only_a_refusal_by_an_existing_table_depends_on_that_table():
    """A create refused by Keboola had no table: its table missing later is no reason to load again."""
    depends = {
        type(exc).__name__: error_outcome(exc).depends_on_table
        for exc in (HeaderRefused("h"), NotOwned("n"), ContentRefused("c"), CreateRefused("c"))
    }
    assert depends == {"HeaderRefused": True, "NotOwned": True, "ContentRefused": True, "CreateRefused": False}


REFUSED = f"{PATH}: Keboola refused the file: import in.c-sales.orders: job 17 failed: bad row (invalidCsv)"


@pytest.mark.parametrize(
    ("before", "fp", "message", "said"),
    [
        (None, FP, REFUSED, False),
        (row(LedgerState.SKIPPED, error=REFUSED), FP, REFUSED, True),
        (row(LedgerState.SKIPPED, error=REFUSED), FP, REFUSED.replace("job 17", "job 18"), True),
        (row(LedgerState.SKIPPED, error=REFUSED), FP, REFUSED.replace("bad row", "other row"), False),
        (row(LedgerState.SKIPPED, error=REFUSED), NEWER, REFUSED, False),
        (row(LedgerState.PENDING, error=REFUSED), FP, REFUSED, True),  # judged again, same verdict
        (row(LedgerState.PENDING, seen=None, error=REFUSED), FP, REFUSED, False),  # the table was dropped
        (row(LedgerState.FAILED, error=REFUSED), FP, REFUSED, False),
        (row(LedgerState.SKIPPED, seen=None, error="x: cannot be read"), None, "x: cannot be read", True),
    ],
)
def test_a_skip_is_said_once_per_version_and_verdict(before, fp, message, said):
    assert skip_already_said(before, fp, message) is said


def test_the_token_message_says_what_to_do_and_unknown_errors_are_not_swallowed():
    rule = error_outcome(TokenRejected("HTTP 401"))
    assert rule is not None and "Put a valid KBC_STORAGE_API_TOKEN in .env" in rule.message(PATH, TokenRejected("x"))
    assert error_outcome(OSError(errno.EACCES, "denied")) is not None
    assert error_outcome(ValueError("a bug")) is None


def test_outcome_and_ledger_values_are_the_strings_users_see():
    assert [s.value for s in Status] == [
        "loaded",
        "created",
        "unchanged",
        "skipped",
        "failed",
        "waiting",
        "changed",
        "gone",
        "ignored",
        "abandoned",
    ]
    assert f"{Status.CREATED} a.csv" == "created a.csv"


@pytest.mark.parametrize(
    ("previous", "expected"),
    [(None, 300), (300, 600), (600, 1200), (12_000, 21_600), (21_600, 21_600), (10, 300)],
)
def test_a_file_that_keeps_failing_waits_longer_each_time_up_to_the_cap(previous, expected):
    assert retry_spacing(previous, 300, 21_600) == expected


def test_the_spacing_never_exceeds_a_cap_below_the_first_wait():
    assert retry_spacing(None, 300, 60) == 60


def test_a_start_up_problem_is_looked_at_again_soon_then_less_often():
    from keboola_sync.startup import next_spacing

    spacings, previous = [], None
    for _ in range(8):
        previous = next_spacing(previous, 300)
        spacings.append(previous)
    assert spacings == [5, 10, 20, 40, 80, 160, 300, 300]
