"""The SQLite file under the ledger: opening and migrating it, and guarding every write transaction.

A full or read-only volume is said once per episode and raised as `LedgerUnwritable`; a ledger deleted or
replaced while the daemon runs is noticed and the file now at state.path is opened instead (or the daemon
stops with exit code 2). `state.Ledger` builds its record-keeping on top of this and never sees the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, LedgerUnwritable
from .ledger_schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger("keboola_sync.state")


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` now (None: nothing)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def unreadable_ledger(path: Path, exc: Exception) -> str:
    return (
        f"cannot open the state database {path}: {exc}. Move it aside (the next run re-checks every file "
        "against Keboola and reloads only what differs) or point state.path at the right file"
    )


class LedgerFile:
    """The connection, its lock, and the guard of the file it writes (replacement, unwritable volume)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._readonly = readonly
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we write
        self._write_error: str | None = None  # set while writes fail (said once, see _tx)
        # Set when state.path was replaced by something that cannot be opened: the daemon stops (exit 2).
        self.lost: ConfigError | None = None
        if readonly:
            if not path.exists():
                self._conn = sqlite3.connect(":memory:", check_same_thread=False)
                self._migrate()
            else:
                self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
                try:
                    self._conn.execute("SELECT count(*) FROM files").fetchone()
                except sqlite3.Error as exc:
                    raise ConfigError("state.path", unreadable_ledger(path, exc)) from exc
            self._conn.row_factory = sqlite3.Row
        else:
            self._open()

    def _open(self) -> None:
        """Open (or create) the ledger for writing, and remember which file it is (to notice a replacement)."""
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across process crashes in WAL mode; only a power loss may drop
            # the last transactions, which the next start re-checks by hash anyway.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self._identity = _identity(path)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError("state.path", unreadable_ledger(path, exc)) from exc
        self._conn.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        """Numbered migrations recorded in user_version; refuse a database written by a newer version."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(
                "state.path",
                f"{self.path} was written by a newer keboola-sync (schema {version} > {SCHEMA_VERSION}); "
                "upgrade keboola-sync or point state.path to a new file",
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            with self._conn:
                self._conn.executescript(MIGRATIONS[number])
                self._conn.execute(f"PRAGMA user_version={number}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. A full or read-only volume is said once per episode, naming state.path
        and the fix (not a traceback per file), and raised as LedgerUnwritable for the caller to drop."""
        with self._lock:
            self._follow_replacement()
            try:
                with self._conn:
                    yield self._conn
            except sqlite3.OperationalError as exc:
                raise self._unwritable(exc) from exc
            if self._write_error is not None:
                self._write_error = None
                log.info("the state database %s can be written again; loads go on", self.path)

    def _unwritable(self, exc: sqlite3.OperationalError) -> LedgerUnwritable:
        if self._write_error is None:
            self._write_error = str(exc)
            log.error(
                "cannot write the state database %s (%s): loads stop at their first write to it and are "
                "tried again at every rescan. Free space on its volume or make it writable (state.path); "
                "the daemon goes on by itself once it can write",
                self.path,
                exc,
            )
        return LedgerUnwritable(self.path, exc)

    def check_replaced(self) -> None:
        """Notice a ledger deleted or replaced while the daemon runs (the daemon asks at each heartbeat;
        every write transaction asks too)."""
        with self._lock:
            self._follow_replacement()

    def _follow_replacement(self) -> None:
        """Writes into a deleted (unlinked) file are lost at the next start, so a ledger deleted or
        replaced behind our back is noticed here and the file at state.path is opened instead: a deleted
        one is created again empty, and every file is judged again against Keboola. Called with the lock.

        The old connection is closed first, then the old `-wal`/`-shm` files are removed: SQLite refuses
        to checkpoint into a moved or deleted file (SQLITE_READONLY_DBMOVED), so they still hold the old
        file's last transactions, and SQLite would replay them onto whatever is now at state.path. (A
        ledger moved aside while running keeps its state as of its last checkpoint.) If the new file
        cannot be opened, the daemon stops with exit code 2 (`lost`): guessing on would be worse, and the
        start-up check names the fix."""
        if self._readonly or self.lost is not None:
            return
        now = _identity(self.path)
        if now == self._identity:
            return
        log.error(
            "the state database %s was %s while the daemon was running; %s. Every file is checked again "
            "against Keboola. Never delete or replace state.path while keboola-sync runs: stop it first",
            self.path,
            "deleted" if now is None else "replaced by another file",
            "creating it again" if now is None else "opening the file now there",
        )
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        try:
            self._open()
        except ConfigError as exc:
            self.lost = exc
            log.error("cannot use the file now at state.path: %s; stopping with exit code 2", exc.message)
            # Something to answer reads and take writes until the daemon has stopped.
            self._conn = sqlite3.connect(":memory:", check_same_thread=False)
            self._migrate()
            self._conn.row_factory = sqlite3.Row
