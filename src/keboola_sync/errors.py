"""Error classes shared by every room of the daemon.

Each class is an outcome the caller handles differently, so the class itself carries the decision:
a bad config stops start-up (exit 2), a bad file is skipped until it changes (logged once), and a file
that changed under our feet is simply tried again later. Messages are written for the person who has
to fix the problem: what is wrong, where, and what to do.
"""

from __future__ import annotations

from pathlib import Path


class KeboolaSyncError(Exception):
    """Base of every error the daemon raises on purpose (anything else is a bug)."""


class ConfigError(KeboolaSyncError):
    """Start-up error; `key` is the dotted config key, env variable or path the user has to fix."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(key, message)

    def __str__(self) -> str:
        # The key is always part of the text so a log line or the CLI's stderr alone says where to look.
        if self.message.startswith(self.key):
            return self.message
        return f"{self.key}: {self.message}"


class InvalidFile(KeboolaSyncError):
    """The file itself is bad: skip it until it changes and log this once.

    `problem` and `fix` are kept apart so `status` can show them in separate columns.
    """

    def __init__(self, path: str, problem: str, fix: str) -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        super().__init__(path, problem, fix)

    def __str__(self) -> str:
        problem = self.problem.rstrip(".")
        return f"{self.path}: {problem}. {self.fix}".rstrip()


class FileChanged(KeboolaSyncError):
    """The file changed while we read it. Not an error: the writer is still busy, retry later."""


class SpoolError(KeboolaSyncError):
    """The upload spool (upload.spool_dir) cannot be written: disk full, folder gone or read-only. The
    environment is at fault, not the CSV, so the load fails and is retried; the file is not skipped."""

    def __init__(self, spool_dir: Path, cause: OSError) -> None:
        self.spool_dir = spool_dir
        self.cause = cause
        super().__init__(
            f"cannot write the upload spool in {spool_dir} ({cause.strerror or cause}). "
            "Free disk space or fix upload.spool_dir"
        )


class LedgerUnwritable(KeboolaSyncError):
    """The ledger (state.path) cannot be written: a full or read-only volume. The environment is at fault,
    not the file: the ledger says so once (ERROR, and INFO when it recovers), the attempt is dropped
    without a line of its own, and the file is tried again at the next rescan."""

    def __init__(self, path: Path, cause: Exception) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"cannot write the state database {path} ({cause})")
