"""The ledger on a real SQLite file: migrations, the life of a row, and a database from the future."""

from __future__ import annotations

import json
import sqlite3

import pytest

from keboola_sync.errors import ConfigError
from keboola_sync.fileid import Fingerprint
from keboola_sync.state import MIGRATIONS, SCHEMA_VERSION, Ledger, LedgerState

FP = Fingerprint(size=10, mtime_ns=123, inode=7)


def test_a_load_moves_from_uploaded_to_in_flight_to_synced(tmp_path):
    ledger = Ledger(tmp_path / "s.db")
    ledger.record_uploaded("a/b.csv", "in.c-a.b", FP, "h1", ("id",), file_id=42)
    ledger.record_job_started("a/b.csv", 9)
    row = ledger.get("a/b.csv")
    assert row is not None and row.in_flight and row.file_id == 42 and row.pending == FP
    assert [r.path for r in ledger.in_flight()] == ["a/b.csv"]

    ledger.record_synced("a/b.csv", "in.c-a.b", FP, "h1", ("id",), rows=3)
    row = ledger.get("a/b.csv")
    assert row is not None
    assert (row.state, row.seen, row.sha256, row.columns, row.rows, row.job_id) == (
        "synced",
        FP,
        "h1",
        ("id",),
        3,
        None,
    )
    assert ledger.in_flight() == []
    assert ledger.owner_of_table("in.c-a.b") == "a/b.csv"
    ledger.close()

    reopened = Ledger(tmp_path / "s.db")
    assert reopened.get("a/b.csv") == row
    assert reopened.integrity_ok()


def test_skipped_and_failed_rows_keep_the_error_and_the_version_judged(tmp_path):
    ledger = Ledger(tmp_path / "s.db")
    ledger.record_skipped("x/y.csv", None, FP, "x/y.csv: not UTF-8. Save it as UTF-8")
    row = ledger.get("x/y.csv")
    assert row is not None
    assert (row.state, row.seen, row.error) == ("skipped", FP, "x/y.csv: not UTF-8. Save it as UTF-8")
    ledger.record_failed("x/y.csv", "in.c-x.y", FP, "HTTP 503", retry_at=100.0)
    row = ledger.get("x/y.csv")
    assert row is not None and (row.state, row.next_retry_at) == (LedgerState.FAILED, 100.0)


def test_a_skip_judged_again_is_pending_and_keeps_its_version_and_verdict(tmp_path):
    """So the same verdict for the same version is not said twice (sync.skip_already_said)."""
    ledger = Ledger(tmp_path / "s.db")
    ledger.record_skipped("x/y.csv", "in.c-x.y", FP, "x/y.csv: refused", "table")
    ledger.record_failed("x/z.csv", "in.c-x.z", FP, "HTTP 503", retry_at=100.0)
    ledger.judge_again("x/y.csv")
    ledger.judge_again("x/z.csv")  # only a skip is judged again this way
    row = ledger.get("x/y.csv")
    assert row is not None and (row.state, row.seen, row.error, row.depends) == (
        LedgerState.PENDING,
        FP,
        "x/y.csv: refused",
        "table",
    )
    failed = ledger.get("x/z.csv")
    assert failed is not None and failed.state == LedgerState.FAILED


def test_forgetting_a_table_makes_its_files_load_again(tmp_path):
    ledger = Ledger(tmp_path / "s.db")
    ledger.record_synced("a/b.csv", "in.c-a.b", FP, "h1", ("id",), 1)
    ledger.forget_table("in.c-a.b")
    row = ledger.get("a/b.csv")
    assert row is not None and row.seen is None and row.state == "pending"


def test_a_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "s.db"
    Ledger(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError) as info:
        Ledger(path)
    assert info.value.key == "state.path" and "newer" in str(info.value)


def test_readonly_ledger_of_a_missing_file_is_empty_and_creates_nothing(tmp_path):
    ledger = Ledger(tmp_path / "none" / "s.db", readonly=True)
    assert ledger.all() == []
    assert not (tmp_path / "none").exists()


def test_a_ledger_of_schema_1_opens_and_keeps_its_rows(tmp_path):
    """Schema 2 drops columns that were written and never read; a ledger of an older run keeps every row."""
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[1])
        conn.execute("PRAGMA user_version=1")
        conn.execute(
            "INSERT INTO files (path, table_id, state, seen_size, seen_mtime_ns, seen_inode, seen_sha256, sha256, "
            "columns, rows, bytes, seconds, last_load_at, pending_kind, attempts, updated_at) "
            "VALUES ('a/b.csv', 'in.c-a.b', 'synced', 10, 123, 7, 'h1', 'h1', '[\"id\"]', 3, 10, 0.5, 5.0, "
            "'create', 2, 5.0)"
        )
    conn.close()
    old = Ledger(path, readonly=True)  # `status` beside a daemon that has not migrated it yet
    assert [(r.path, r.state, r.seen, r.rows) for r in old.all()] == [("a/b.csv", "synced", FP, 3)]
    old.close()
    ledger = Ledger(path)
    row = ledger.get("a/b.csv")
    assert row is not None and (row.state, row.seen, row.sha256, row.columns, row.rows) == (
        LedgerState.SYNCED,
        FP,
        "h1",
        ("id",),
        3,
    )
    ledger.record_failed("a/b.csv", "in.c-a.b", FP, "HTTP 503", retry_at=100.0)
    assert ledger.integrity_ok()
    ledger.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = {r[1] for r in conn.execute("PRAGMA table_info(files)")}
    conn.close()
    assert not columns & {"seen_sha256", "bytes", "seconds", "pending_kind", "attempts"}


def test_ledger_states_are_the_strings_the_database_and_status_json_show():
    assert [s.value for s in LedgerState] == ["synced", "pending", "failed", "skipped"]
    assert json.dumps({"state": LedgerState.FAILED}) == '{"state": "failed"}'
