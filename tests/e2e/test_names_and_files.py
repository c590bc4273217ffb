"""Names and files as people make them (issue 12 items 13-15), the cases that need a process of their own:
the filesystem changing under a running daemon. The names and special files that one `sync --once` can
judge are entries of the corpus in test_bad_inputs.py (NFD names, control characters, FIFOs, sockets,
devices, links to folders).

Real daemon as a subprocess, real files, the real watchdog observer, the emulator over HTTP.
"""

from __future__ import annotations

import json
import shutil
import uuid
from typing import Any

from support.daemon import Daemon, table_rows, wait_table
from support.emulator import IN, wait_for

VALID = "id,name\n1,Alice\n2,Bob\n"
VALID_ROWS = [["id", "name"], ["1", "Alice"], ["2", "Bob"]]


def uid() -> str:
    return uuid.uuid4().hex[:8]


def status_rows(daemon: Daemon) -> dict[str, dict[str, Any]]:
    result = daemon.run("status", "--json")
    assert result.returncode == 0, result.stderr
    return {json.loads(ln)["file"]: json.loads(ln) for ln in result.stdout.splitlines() if ln.strip()}


def lines_with(daemon: Daemon, needle: str, *levels: str) -> list[str]:
    return [ln for ln in daemon.log().splitlines() if needle in ln and any(f" {lv} " in ln for lv in levels)]


def test_a_csv_replaced_by_a_folder_leaves_no_verdict_behind(daemon_factory, emulator):
    """A skipped CSV replaced by a folder of its name used to keep its `skipped` row, so `sync --once`
    exited 1 forever; a synced one replaced under a running daemon was judged as a file and skipped
    ("Is a directory"). Now the row is dropped, the folder is an ignored sub-folder, the table stays."""
    folder = f"dirs{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/bad.csv", b"")  # skipped: empty
    daemon.write(f"{folder}/good.csv", VALID)
    daemon.write(f"{folder}/keep.csv", VALID)
    assert daemon.run("sync", "--once").returncode == 1
    assert status_rows(daemon)[f"{folder}/bad.csv"]["state"] == "skipped"

    bad = daemon.watch / folder / "bad.csv"
    bad.unlink()
    bad.mkdir()
    (bad / "inside.csv").write_text(VALID)
    result = daemon.run("sync", "--once")
    assert result.returncode == 0, daemon.log()[-3000:]
    assert f"{folder}/bad.csv" not in status_rows(daemon)
    assert len(lines_with(daemon, f"forgot {folder}/bad.csv: a folder has taken its name", "INFO")) == 1

    # The same under a running daemon, for a file that was loaded: the event must not judge the folder.
    daemon.start()
    daemon.wait_log("watching with")
    good = daemon.watch / folder / "good.csv"
    good.unlink()
    good.mkdir()
    daemon.wait_log(f"forgot {folder}/good.csv: a folder has taken its name")
    daemon.wait_log(f"ignoring {folder}/good.csv/: folders inside folders are not synced")
    assert lines_with(daemon, f"{folder}/good.csv", "WARNING", "ERROR") == []
    bad_lines = lines_with(daemon, f"{folder}/bad.csv", "WARNING", "ERROR")
    assert len(bad_lines) == 1 and "the file is empty" in bad_lines[0], bad_lines  # the first run's, once
    assert f"{folder}/good.csv" not in status_rows(daemon)
    assert status_rows(daemon)[f"{folder}/keep.csv"]["state"] == "synced"
    assert table_rows(emulator, f"{IN}{folder}.good") == VALID_ROWS  # nothing in Keboola is touched
    assert daemon.alive
    assert daemon.stop() == 0
    assert daemon.run("sync", "--once").returncode == 0
    assert "Traceback" not in daemon.log() + daemon.output()


def test_the_watched_folder_replaced_while_running_is_watched_again(daemon_factory, emulator):
    """`rm -rf` of the watched folder and a new one under the same name: the watch is re-armed within
    seconds (rescans are 10 minutes apart here, so only the watch can see the new files), and nothing
    blames the mount or switches to polling."""
    first, second = f"before{uid()}", f"after{uid()}"
    daemon = daemon_factory({"watch": {"rescan_seconds": 600}})
    daemon.write(f"{first}/a.csv", VALID)
    daemon.start()
    wait_table(emulator, f"{IN}{first}.a", VALID_ROWS)
    daemon.wait_log(f"created {first}/a.csv")

    shutil.rmtree(daemon.watch)
    daemon.watch.mkdir()
    daemon.write(f"{second}/b.csv", VALID)
    wait_table(emulator, f"{IN}{second}.b", VALID_ROWS, timeout=20)
    # A file made after the folder came back arrives through the re-armed watch (no rescan is due).
    daemon.write(f"{second}/c.csv", VALID)
    wait_table(emulator, f"{IN}{second}.c", VALID_ROWS, timeout=20)

    log = daemon.log()
    assert len(lines_with(daemon, "was deleted or replaced; watching it again as soon as it exists", "WARNING")) == 1
    assert "unmounted volume" not in log
    assert lines_with(daemon, "switching to polling:", "WARNING") == []
    assert table_rows(emulator, f"{IN}{first}.a") == VALID_ROWS  # deleting files never touches Keboola
    wait_for(lambda: daemon.run("health").returncode == 0, timeout=20, message="a healthy daemon")
    assert daemon.alive
    assert daemon.stop() == 0
    assert "Traceback" not in log + daemon.output()
