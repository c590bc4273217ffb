"""The daemon's own disks (issue 12, items 10 and 11): a full ledger volume, and a ledger deleted or
replaced while the daemon runs. Real processes, real files, a real (tiny) filesystem, the emulator over
HTTP; every wait is a condition with a timeout.

A full volume is a tmpfs of a few MB mounted over the state folder and filled up: chmod does not stop
root (the tests run as root, as in CI), and a read-only remount is refused while the daemon holds the
ledger open for writing, so "full" is what can be made real here; both end in the same SQLite error path.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.daemon import wait_table
from support.emulator import wait_for

LEDGER_ERROR = "cannot write the state database"


def uid() -> str:
    return uuid.uuid4().hex[:8]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Write until the filesystem says it is full (big chunks, then page by page to the last byte)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"x" * chunk)
    finally:
        os.close(fd)


def test_a_full_ledger_volume_is_said_once_naming_state_path_and_recovers(daemon_factory, emulator):
    folder = f"full{uid()}"
    daemon = daemon_factory()
    with tmpfs(daemon.state.parent, "8m") as state_dir:  # the ledger, its lock and the health file
        daemon.write(f"{folder}/a.csv", "id\n1\n")
        daemon.start()
        wait_table(emulator, f"in.c-{folder}.a", [["id"], ["1"]])
        fill(state_dir / "filler")
        prepared = emulator.stats()["files_prepared"]
        for i in range(4):
            daemon.write(f"{folder}/f{i}.csv", f"id\n{i}\n")
        daemon.wait_log(LEDGER_ERROR)
        # Every file is tried again and again (two rescans' worth), with no new line.
        wait_for(lambda: emulator.stats()["files_prepared"] >= prepared + 8, timeout=60, message="repeated attempts")
        log = daemon.log()
        errors = [line for line in log.splitlines() if LEDGER_ERROR in line]
        assert len(errors) == 1, errors
        assert str(daemon.state) in errors[0] and "state.path" in errors[0] and "Free space" in errors[0]
        assert " ERROR " in errors[0]
        assert "Traceback" not in log
        assert log.count("cannot write the health file") <= 1
        assert daemon.alive

        (state_dir / "filler").unlink()
        daemon.wait_log("can be written again; loads go on")
        for i in range(4):
            wait_table(emulator, f"in.c-{folder}.f{i}", [["id"], [str(i)]])
        assert daemon.log().count(LEDGER_ERROR) == 1
        assert daemon.stop() == 0
        status = daemon.run("status")  # the ledger lives on the tmpfs
        assert status.returncode == 0 and status.stdout.count("synced") == 5, status.stdout


def test_a_ledger_deleted_while_running_is_noticed_and_created_again(daemon_factory, emulator):
    folder = f"gone{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    daemon.start()
    wait_table(emulator, f"in.c-{folder}.a", [["id"], ["1"]])
    os.remove(daemon.state)
    daemon.wait_log("was deleted while the daemon was running; creating it again")
    wait_for(daemon.state.exists, timeout=10)
    daemon.write(f"{folder}/b.csv", "id\n2\n")
    wait_table(emulator, f"in.c-{folder}.b", [["id"], ["2"]])

    def both_synced() -> bool:  # read from the file at state.path, not from the process
        out = daemon.run("status").stdout
        return out.count("synced") == 2

    wait_for(both_synced, timeout=30, message="status from the new ledger")
    assert daemon.log().count("was deleted while the daemon was running") == 1
    assert "Traceback" not in daemon.log()
    assert daemon.stop() == 0


def test_a_ledger_replaced_while_running_is_followed(daemon_factory, emulator):
    folder = f"swap{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    daemon.start()
    wait_table(emulator, f"in.c-{folder}.a", [["id"], ["1"]])
    backup = daemon.tmp / "backup.db"
    with contextlib.closing(sqlite3.connect(daemon.state)) as live, contextlib.closing(sqlite3.connect(backup)) as copy:
        live.backup(copy)  # a backup restored over the ledger (a new file renamed into place)
    os.replace(backup, daemon.state)
    daemon.wait_log("was replaced by another file while the daemon was running; opening the file now there")
    daemon.write(f"{folder}/b.csv", "id\n2\n")
    wait_table(emulator, f"in.c-{folder}.b", [["id"], ["2"]])
    wait_for(lambda: daemon.run("status").stdout.count("synced") == 2, timeout=30, message="status")
    assert "Traceback" not in daemon.log()
    assert daemon.stop() == 0


def test_a_ledger_replaced_by_something_else_stops_with_exit_2(daemon_factory, emulator):
    folder = f"junk{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    daemon.start()
    wait_table(emulator, f"in.c-{folder}.a", [["id"], ["1"]])
    junk = daemon.tmp / "junk"
    junk.write_bytes(b"this is not a database, but it is long enough to look like a file header" * 20)
    os.replace(junk, daemon.state)
    assert daemon.proc.wait(timeout=30) == 2
    log = daemon.log()
    assert "was replaced by another file while the daemon was running" in log
    assert f"cannot open the state database {daemon.state}" in log
    assert "Traceback" not in log
