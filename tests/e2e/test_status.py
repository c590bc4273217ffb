"""`keboola-sync status` (issue 16 item 5): whether a daemon runs on this ledger and what it does, the full
error wrapped to the terminal (never cut), a missing watched folder as exit code 2, and `--json` with the
same facts. (What loads now, with its phase, is driven by a slow job in tests/e2e/test_monitoring.py.)"""

from __future__ import annotations

import json
import subprocess
import uuid

from support.daemon import Daemon, wait_table
from support.emulator import IN, wait_for


def test_status_tells_the_daemon_the_full_error_and_a_missing_folder(daemon_factory, emulator):
    folder = f"ss{uuid.uuid4().hex[:6]}"
    daemon: Daemon = daemon_factory()
    daemon.write(f"{folder}/good.csv", "id\n1\n")
    daemon.write(f"{folder}/bad.csv", b"id,city\n1,Z\xfcrich\n")

    first = daemon.run("status")
    assert first.returncode == 0
    assert first.stdout.splitlines()[0] == f"daemon: not running (no heartbeat file at {daemon.health_file})"

    daemon.start()
    wait_table(emulator, f"{IN}{folder}.good", [["id"], ["1"]])
    assert daemon.proc is not None
    running = f"daemon: running (pid {daemon.proc.pid}, heartbeat "
    wait_for(lambda: daemon.run("status").stdout.startswith(running), timeout=20, message="status sees the daemon")
    out = daemon.run("status").stdout
    assert "\nnow: idle\n" in out

    # The whole error, wrapped under its column at the terminal's width, nothing cut.
    rows = {r["file"]: r for r in map(json.loads, daemon.run("status", "--json").stdout.splitlines())}
    error = rows[f"{folder}/bad.csv"]["error"]
    assert len(error) > 120

    def shown(columns: int) -> list[str]:
        """The error's lines as `status` printed them in a terminal `columns` wide (asserting the width)."""
        result = subprocess.run(
            daemon.command("status"), env={**daemon.env(), "COLUMNS": str(columns)}, capture_output=True, text=True
        )
        lines = result.stdout.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{folder}/bad.csv "))
        first = lines[start]
        column = first.index(error.split()[0]) if error.split()[0] in first else 4  # beside, or under the row
        block = [first[column:]] if column != 4 else []
        for line in lines[start + 1 :]:
            if line[:column].strip():
                break
            block.append(line[column:])
        assert all(len(line) <= columns for line in lines[start : start + 1 + len(block)]), lines
        return block

    wide, narrow = shown(220), shown(90)  # beside the row; under the row (too little room beside it)
    assert len(wide) > 1 and " ".join(part.strip() for part in wide) == error
    assert len(narrow) > 2 and " ".join(part.strip() for part in narrow) == error

    # --json: the same facts, the old fields kept.
    row = rows[f"{folder}/good.csv"]
    assert row["state"] == "synced" and row["rows"] == 1 and row["now"] is None and row["retry_at"] is None
    assert row["daemon"]["running"] is True and row["daemon"]["pid"] == daemon.proc.pid

    # A watched folder that is gone is an error, not an empty table.
    daemon.watch.rename(daemon.tmp / "moved")
    gone = daemon.run("status")
    assert gone.returncode == 2
    assert f"the watched folder {daemon.watch} does not exist" in gone.stderr
    assert daemon.run("status", "--json").returncode == 2
    (daemon.tmp / "moved").rename(daemon.watch)

    assert daemon.stop() == 0
    assert daemon.run("status").stdout.startswith("daemon: not running (stopped ")
