"""lock.py, the ledger lock and the spool's run directories, on real files and real flocks.

flock belongs to an open file description, so two opens in one process conflict exactly as two processes
do: the tests need no second process (the e2e tests in test_one_daemon.py use real ones)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from keboola_sync.config import Config, StateConfig
from keboola_sync.lock import FileLock, Holder, read_holder
from keboola_sync.preflight import StartupError, ledger_lock_path, lock_ledger
from keboola_sync.spool import claim_run_dir, release_run_dir


def test_a_held_lock_cannot_be_taken_twice_and_is_free_after_release(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first = FileLock.try_acquire(path)
    assert first is not None
    assert FileLock.try_acquire(path) is None
    first.release()
    again = FileLock.try_acquire(path)
    assert again is not None
    again.release()


def test_the_holder_is_written_and_read_back(tmp_path: Path) -> None:
    lock = FileLock.try_acquire(tmp_path / "x.lock")
    assert lock is not None
    lock.write_holder()
    holder = read_holder(tmp_path / "x.lock")
    assert holder.pid == os.getpid()
    assert holder.command is not None and holder.command.startswith("keboola-sync")
    assert holder.since is not None
    assert holder.describe().startswith(f"pid {os.getpid()}, ")
    lock.release()


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '{"pid": "x", "since": "y"}'])
def test_an_unreadable_holder_is_described_as_unknown(tmp_path: Path, content: str) -> None:
    (tmp_path / "x.lock").write_text(content)
    holder = read_holder(tmp_path / "x.lock")
    assert holder == Holder(pid=None, command=None, host=None, since=None)
    assert holder.describe() == "pid unknown"


def test_a_second_ledger_lock_names_the_holder_and_the_fix(tmp_path: Path) -> None:
    config = Config(state=StateConfig(path=tmp_path / "state" / "state.db"))
    first = lock_ledger(config)
    assert ledger_lock_path(config) == tmp_path / "state" / "state.db.lock"
    with pytest.raises(StartupError) as refused:
        lock_ledger(config)
    text = str(refused.value)
    assert text.startswith("state.path: another keboola-sync process (pid ")
    assert f"pid {os.getpid()}" in text and str(config.state.path) in text and "Stop it first" in text
    first.release()
    lock_ledger(config).release()  # free again: nothing stale is left behind


def test_run_directories_are_private_and_only_dead_ones_are_cleaned(tmp_path: Path, caplog) -> None:
    live_dir, live_lock = claim_run_dir(tmp_path)
    live_spool = live_dir / "orders-a1B2c3D4.csv.gz"
    live_spool.write_bytes(b"live")
    dead_dir, dead_lock = claim_run_dir(tmp_path)
    (dead_dir / ".orders-Zz9_yy8x.part").write_bytes(b"dead")
    dead_lock.release()  # its process died (the OS drops the lock)
    (tmp_path / "orders-q1w2e3r4.csv").write_bytes(b"left by an older version")
    (tmp_path / "notes.txt").write_text("not ours")
    assert live_dir != dead_dir

    with caplog.at_level(logging.INFO, logger="keboola_sync.daemon"):
        third_dir, third_lock = claim_run_dir(tmp_path)
    assert live_spool.exists(), "a live process's spool is never removed"
    assert not dead_dir.exists()
    assert not (tmp_path / "orders-q1w2e3r4.csv").exists()
    assert (tmp_path / "notes.txt").exists()
    assert f"removed 2 spool file(s) left in {tmp_path} by an earlier run" in caplog.text

    release_run_dir(third_dir, third_lock)
    release_run_dir(live_dir, live_lock)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keboola-sync.lock", "notes.txt"]


def test_a_filesystem_without_locks_starts_with_a_warning(tmp_path: Path, monkeypatch, caplog) -> None:
    """Some network and FUSE mounts answer flock with ENOLCK: start anyway, and say what is not guarded."""
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    config = Config(state=StateConfig(path=tmp_path / "state.db"))
    with caplog.at_level(logging.WARNING, logger="keboola_sync.daemon"):
        lock = lock_ledger(config)
    assert lock.unsupported is not None
    assert f"cannot lock {tmp_path / 'state.db.lock'} (No locks available)" in caplog.text
    run_dir, run_lock = claim_run_dir(tmp_path / "spool")  # the guard runs unguarded, as before locks
    release_run_dir(run_dir, run_lock)
    lock.release()
