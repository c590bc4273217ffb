"""The ledger's own disk (issue 12, items 10 and 11), on real SQLite files.

A write that fails is made real with SQLite's own `PRAGMA query_only` (every write is then refused with
"attempt to write a readonly database", the error a read-only volume gives); the e2e tests fill a real
filesystem (tests/e2e/test_own_disks.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from keboola_sync.errors import LedgerUnwritable
from keboola_sync.state import Ledger


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_failing_writes_are_said_once_and_the_recovery_once(tmp_path: Path, caplog) -> None:
    ledger = Ledger(tmp_path / "state.db")
    ledger._conn.execute("PRAGMA query_only = 1")
    with caplog.at_level(logging.INFO, logger="keboola_sync.state"):
        for folder in ("a", "b", "c"):
            with pytest.raises(LedgerUnwritable):
                ledger.record_bucket(f"in.c-{folder}", folder)
        [line] = error_lines(caplog)
        assert line.startswith(f"cannot write the state database {tmp_path / 'state.db'} (attempt to write a readonly")
        assert "state.path" in line
        ledger._conn.execute("PRAGMA query_only = 0")
        ledger.record_bucket("in.c-d", "d")
        ledger.record_bucket("in.c-e", "e")
    recovered = [r.getMessage() for r in caplog.records if "can be written again" in r.getMessage()]
    assert recovered == [f"the state database {tmp_path / 'state.db'} can be written again; loads go on"]
    assert ledger.known_buckets() == {"in.c-d", "in.c-e"}
    ledger.close()


def test_a_deleted_ledger_is_created_again_without_the_old_transactions(tmp_path: Path, caplog) -> None:
    path = tmp_path / "state.db"
    ledger = Ledger(path)
    ledger.record_bucket("in.c-old", "old")
    os.remove(path)  # its -wal and -shm stay, holding the old transactions
    with caplog.at_level(logging.INFO, logger="keboola_sync.state"):
        ledger.record_bucket("in.c-new", "new")  # the write notices first
        ledger.record_bucket("in.c-newer", "newer")
        ledger.check_replaced()
    [line] = error_lines(caplog)
    assert "was deleted while the daemon was running; creating it again" in line
    assert ledger.known_buckets() == {"in.c-new", "in.c-newer"}, "the old WAL was not replayed onto the new file"
    ledger.close()
    reopened = Ledger(path, readonly=True)
    assert reopened.known_buckets() == {"in.c-new", "in.c-newer"}
    reopened.close()


def test_a_ledger_replaced_by_another_is_followed(tmp_path: Path, caplog) -> None:
    path = tmp_path / "state.db"
    other = Ledger(tmp_path / "other.db")
    other.record_bucket("in.c-other", "other")
    other.close()
    ledger = Ledger(path)
    ledger.record_bucket("in.c-mine", "mine")
    os.replace(tmp_path / "other.db", path)
    with caplog.at_level(logging.INFO, logger="keboola_sync.state"):
        ledger.check_replaced()
    assert "replaced by another file" in error_lines(caplog)[0]
    assert ledger.known_buckets() == {"in.c-other"}
    assert ledger.lost is None
    ledger.close()


def test_a_ledger_replaced_by_something_else_is_lost(tmp_path: Path, caplog) -> None:
    path = tmp_path / "state.db"
    ledger = Ledger(path)
    ledger.record_bucket("in.c-mine", "mine")
    (tmp_path / "junk").write_bytes(b"not a database " * 100)
    os.replace(tmp_path / "junk", path)
    with caplog.at_level(logging.INFO, logger="keboola_sync.state"):
        ledger.check_replaced()
        ledger.record_bucket("in.c-later", "later")  # answered until the daemon has stopped
    assert ledger.lost is not None and ledger.lost.key == "state.path"
    lines = error_lines(caplog)
    assert len(lines) == 2 and lines[1].endswith("; stopping with exit code 2") and "file is not a database" in lines[1]
    assert path.read_bytes().startswith(b"not a database"), "the file that is there now is never written"
    ledger.close()


def test_an_unchanged_ledger_says_nothing(tmp_path: Path, caplog) -> None:
    ledger = Ledger(tmp_path / "state.db")
    with caplog.at_level(logging.INFO, logger="keboola_sync.state"):
        for _ in range(3):
            ledger.record_bucket("in.c-a", "a")
            ledger.check_replaced()
    assert caplog.records == []
    ledger.close()
