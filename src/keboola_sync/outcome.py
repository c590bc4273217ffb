"""The words of a sync: what `decide` saw and chose, what became of the file, and the one table from
an error to an outcome.

`Status` is what the daemon counts and logs; it is not the ledger's `LedgerState` (state.py), though two
values share a name. Every error a sync can meet is turned into an outcome by `ERROR_OUTCOMES` alone.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .errors import FileChanged, InvalidFile, SpoolError
from .fileid import Fingerprint
from .live import token_advice
from .load import ContentRefused, CreateRefused, HeaderRefused, NotOwned
from .storage import Abandoned, StorageError, TokenRejected

GONE_MESSAGE = "deleted before it could be loaded"


class Status(StrEnum):
    """What happened to one file (the daemon counts these; they are not ledger states)."""

    LOADED = "loaded"
    CREATED = "created"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"
    WAITING = "waiting"  # failed earlier, retry not due
    CHANGED = "changed"  # changed while we read it: schedule again
    GONE = "gone"  # deleted before we got to it
    IGNORED = "ignored"
    ABANDONED = "abandoned"  # shutdown


@dataclass(frozen=True)
class Outcome:
    """What happened to one file, with the line's message and the table it maps to."""

    rel_path: str
    status: Status
    message: str = ""
    table_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))  # a ledger state of the same name is accepted


class Action(StrEnum):
    IGNORE = "ignore"  # not a file we sync
    GONE = "gone"  # deleted before we got to it
    SKIP = "skip"  # invalid as it is: record why, say it once
    NOTHING = "nothing"  # the table already holds this version
    WAIT = "wait"  # failed earlier; the retry is not due yet
    LOAD = "load"  # read the file and load it


@dataclass(frozen=True)
class Observation:
    """What `sync` saw of the file before deciding: no reading of its content, no network."""

    fingerprint: Fingerprint | None  # None: it could not be looked at (see `error`)
    error: OSError | None = None
    exists: bool = True  # False: nothing at the path any more
    inside: bool = True  # False: a symbolic link leading out of the watched folder (or nowhere)
    rival: str | None = None  # another existing file that already loads the same table
    # First look in this process at a skip that depends on the table or the configuration (ownership,
    # header rules): judged again once, since either may have changed while the daemon was not running.
    rejudge: bool = False


@dataclass(frozen=True)
class Decision:
    action: Action
    message: str = ""
    table_id: str | None = None
    version: Fingerprint | None = None  # the version a skip is remembered for (None: look again each rescan)
    announce_rename: bool = False  # say once that the table name differs from the file name
    depends: str | None = None  # what else a skip depends on (state.DEPENDS_TABLE, state.RIVAL + path)


def os_problem(rel_path: str, exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{rel_path}: cannot be read (permission denied). Make it readable: chmod a+r '{rel_path}'"
    if exc.errno == errno.ELOOP:
        return f"{rel_path}: a symbolic link loop. Replace the link with the file itself"
    if exc.errno == errno.ENOENT:
        return (
            f"{rel_path}: a symbolic link that points nowhere (its target does not exist). "
            "Replace the link with the file itself"
        )
    return f"{rel_path}: cannot be read ({exc.strerror or exc}). Check the file and the mount"


def _token_rejected(rel_path: str, exc: BaseException) -> str:
    # The advice names the rotation that works in this deployment (a watched .env, or Compose's recreate).
    return (
        f"{exc}. Keboola refused the token: it was revoked or has expired (or "
        f"KBC_STORAGE_API_HOST is another stack). {token_advice()}"
    )


def _os_error(rel_path: str, exc: BaseException) -> str:
    return os_problem(rel_path, exc) if isinstance(exc, OSError) else str(exc)


@dataclass(frozen=True)
class ErrorOutcome:
    status: Status
    remember: bool  # record the version judged (False: look at the file again on every rescan)
    message: Callable[[str, BaseException], str] = lambda rel_path, exc: str(exc)
    depends_on_table: bool = False  # the verdict is about the remote table: judged again if it is dropped


# The one table from an error to what becomes of the file; the first matching class wins (subclasses first).
ERROR_OUTCOMES: tuple[tuple[type[BaseException], ErrorOutcome], ...] = (
    (FileChanged, ErrorOutcome(Status.CHANGED, False, lambda _p, _e: "changed while being read")),
    (FileNotFoundError, ErrorOutcome(Status.GONE, False, lambda _p, _e: GONE_MESSAGE)),
    (InvalidFile, ErrorOutcome(Status.SKIPPED, True)),
    (HeaderRefused, ErrorOutcome(Status.SKIPPED, True, depends_on_table=True)),
    (CreateRefused, ErrorOutcome(Status.SKIPPED, True)),  # no table was there: about the file alone
    (ContentRefused, ErrorOutcome(Status.SKIPPED, True, depends_on_table=True)),
    (NotOwned, ErrorOutcome(Status.SKIPPED, True, depends_on_table=True)),
    (SpoolError, ErrorOutcome(Status.FAILED, False)),  # our disk, not the user's file: fail and retry
    (Abandoned, ErrorOutcome(Status.ABANDONED, False)),
    (TokenRejected, ErrorOutcome(Status.FAILED, True, _token_rejected)),
    (StorageError, ErrorOutcome(Status.FAILED, True)),
    (OSError, ErrorOutcome(Status.SKIPPED, False, _os_error)),
)


def error_outcome(exc: BaseException) -> ErrorOutcome | None:
    return next((rule for kind, rule in ERROR_OUTCOMES if isinstance(exc, kind)), None)
