"""The log file survives what people do to it while the daemon runs (issue 12 item 12): the real daemon,
the real emulator, the log directory removed under it."""

from __future__ import annotations

import shutil
import uuid

from support.daemon import wait_table
from support.emulator import IN


def test_a_removed_log_directory_is_created_again_and_gets_the_next_lines(daemon_factory, emulator):
    folder = f"logs{uuid.uuid4().hex[:8]}"
    daemon = daemon_factory({"logging": {"max_bytes": 4096, "backup_count": 2}})
    daemon.write(f"{folder}/first.csv", "id\n1\n")
    daemon.start()
    daemon.wait_log(f"created {folder}/first.csv")

    shutil.rmtree(daemon.log_file.parent)  # e.g. a clean-up script, or a volume remounted
    daemon.write(f"{folder}/second.csv", "id\n2\n")
    wait_table(emulator, f"{IN}{folder}.second", [["id"], ["2"]])
    log = daemon.wait_log(f"created {folder}/second.csv -> in.c-{folder}.second")
    assert f"created {folder}/first.csv" not in log  # a new file, not the old one found again
    assert daemon.log_file.is_file()

    # Rotation at logging.max_bytes still works on the reopened file (DEBUG lines fill 4 KiB quickly).
    daemon.write(f"{folder}/third.csv", "id\n3\n")
    daemon.wait_log(f"created {folder}/third.csv")
    for i in range(4, 12):
        daemon.write(f"{folder}/t{i}.csv", f"id\n{i}\n")
    daemon.wait_log(f"created {folder}/t11.csv")
    rotated = daemon.log_file.with_name(daemon.log_file.name + ".1")
    assert rotated.is_file()
    assert daemon.log_file.stat().st_size <= 4096 and rotated.stat().st_size <= 4096
    assert daemon.stop() == 0
