"""The product, end to end: real files, the real watchdog observer, the real kbcstorage client and the
emulator over HTTP (issue 3)."""

from __future__ import annotations

import signal
import uuid

from support.daemon import csv_rows, table_rows, wait_table
from support.emulator import IN, wait_for


def uid() -> str:
    return uuid.uuid4().hex[:8]


def test_folder_becomes_bucket_and_csv_becomes_table(daemon_factory, emulator):
    folder = f"sales{uid()}"
    daemon = daemon_factory()
    (daemon.watch / folder).mkdir()
    daemon.start()
    client = emulator.client()
    wait_for(
        lambda: any(b["id"] == f"{IN}{folder}" for b in client.buckets.list()),
        timeout=20,
        message="bucket created for an empty folder",
    )

    daemon.write(f"{folder}/orders.csv", "id,amount\n1,10\n2,20\n")
    wait_table(emulator, f"{IN}{folder}.orders", [["id", "amount"], ["1", "10"], ["2", "20"]])
    log = daemon.wait_log(f"created {folder}/orders.csv -> {IN}{folder}.orders")
    assert "2 rows" in log

    # A change is a FULL load: the old rows are gone.
    daemon.write(f"{folder}/orders.csv", "id,amount\n3,30\n")
    wait_table(emulator, f"{IN}{folder}.orders", [["id", "amount"], ["3", "30"]])
    daemon.wait_log(f"loaded {folder}/orders.csv -> {IN}{folder}.orders")
    jobs = emulator.stats()["jobs"]
    assert jobs.get("tableImport", 0) >= 1

    assert daemon.stop() == 0, daemon.log()[-3000:]
    assert "stopped" in daemon.log()


def test_dialects_bom_and_quoted_newlines(daemon_factory, emulator):
    folder = f"dialects{uid()}"
    daemon = daemon_factory()
    files = {
        "comma.csv": ("id,name\n1,Alice\n2,Bob\n", ","),
        "semicolon.csv": ("id;name\n1;Alice\n2;Bob\n", ";"),
        "tab.csv": ("id\tname\n1\tAlice\n2\tBob\n", "\t"),
        "pipe.csv": ("id|name\n1|Alice\n2|Bob\n", "|"),
        "quoted.csv": ('id,note\n1,"line one\nline two"\n2,"has ""quotes"", and a comma"\n', ","),
        "crlf.csv": ("id,name\r\n1,Alice\r\n2,Bob\r\n", ","),
    }
    for name, (text, _) in files.items():
        daemon.write(f"{folder}/{name}", text)
    daemon.write(f"{folder}/bom.csv", b"\xef\xbb\xbfid,name\n1,Zo\xc3\xab\n")
    result = daemon.run("sync", "--once")
    assert result.returncode == 0, daemon.log()[-3000:]
    for name, (text, delimiter) in files.items():
        table = f"{IN}{folder}.{name.removesuffix('.csv')}"
        assert table_rows(emulator, table) == csv_rows(text.replace("\r\n", "\n"), delimiter), name
    assert table_rows(emulator, f"{IN}{folder}.bom") == [["id", "name"], ["1", "Zoë"]]


def test_header_change_is_skipped_and_nothing_remote_changes(daemon_factory, emulator):
    folder = f"hdr{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/people.csv", "id,name\n1,Alice\n")
    assert daemon.run("sync", "--once").returncode == 0
    table = f"{IN}{folder}.people"
    imports_before = emulator.stats()["jobs"].get("tableImport", 0)

    daemon.write(f"{folder}/people.csv", "id,full_name\n2,Bob\n")
    result = daemon.run("sync", "--once")
    assert result.returncode == 1
    log = daemon.log()
    line = next(ln for ln in log.splitlines() if "skipped" in ln and "people.csv" in ln)
    assert "missing columns: name" in line and "new columns: full_name" in line
    assert table_rows(emulator, table) == [["id", "name"], ["1", "Alice"]]
    assert emulator.stats()["jobs"].get("tableImport", 0) == imports_before

    status = daemon.run("status")
    assert status.returncode == 0
    row = next(ln for ln in status.stdout.splitlines() if "people.csv" in ln)
    assert "skipped" in row and table in row

    # Same columns in another order load fine (Keboola matches by name).
    daemon.write(f"{folder}/people.csv", "name,id\nCarol,3\n")
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-2000:]
    assert table_rows(emulator, table) == [["id", "name"], ["3", "Carol"]]


def test_non_utf8_is_skipped_while_the_others_load(daemon_factory, emulator):
    folder = f"enc{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/latin1.csv", "id,city\n1,Zürich\n".encode("latin-1"))
    daemon.write(f"{folder}/good.csv", "id,city\n1,Praha\n")
    result = daemon.run("sync", "--once")
    assert result.returncode == 1
    assert table_rows(emulator, f"{IN}{folder}.good") == [["id", "city"], ["1", "Praha"]]
    assert table_rows(emulator, f"{IN}{folder}.latin1") is None
    lines = [ln for ln in daemon.log().splitlines() if "latin1.csv" in ln and "skipped" in ln]
    assert len(lines) == 1, lines
    assert "UTF-8" in lines[0]

    # Fixed -> picked up again.
    daemon.write(f"{folder}/latin1.csv", "id,city\n1,Zürich\n")
    assert daemon.run("sync", "--once").returncode == 0
    assert table_rows(emulator, f"{IN}{folder}.latin1") == [["id", "city"], ["1", "Zürich"]]


def test_large_file_is_gzipped_for_upload(daemon_factory, emulator):
    folder = f"big{uid()}"
    daemon = daemon_factory({"upload": {"gzip_threshold_mb": 0.01}})
    rows = [["id", "text"]] + [[str(i), f"row number {i} " + "x" * 40] for i in range(2000)]
    daemon.write(f"{folder}/large.csv", "".join(f"{a},{b}\n" for a, b in rows))
    daemon.write(f"{folder}/small.csv", "id\n1\n")
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-2000:]
    client = emulator.client()
    names = [f["name"] for f in client.files.list(limit=100) if "keboola-sync" in f.get("tags", [])]
    assert any(n.startswith("large") and n.endswith(".csv.gz") for n in names), names
    assert any(n.startswith("small") and n.endswith(".csv") for n in names), names
    table = client.tables.detail(f"{IN}{folder}.large")
    assert table["rowsCount"] == 2000
    assert "gzip" in next(ln for ln in daemon.log().splitlines() if "large.csv ->" in ln)
    assert "uploading the finished file" not in daemon.log()  # the upload overlapped the compression

    # A big file whose header changed is skipped before anything is uploaded: nothing remote is touched.
    prepared = emulator.stats()["files_prepared"]
    daemon.write(f"{folder}/large.csv", "id,renamed\n" + "".join(f"{a},{b}\n" for a, b in rows[1:] * 2))
    assert daemon.run("sync", "--once").returncode == 1
    assert emulator.stats()["files_prepared"] == prepared
    assert client.tables.detail(f"{IN}{folder}.large")["rowsCount"] == 2000


def test_restart_does_not_reload_unchanged_files(daemon_factory, emulator):
    folder = f"restart{uid()}"
    daemon = daemon_factory()
    for i in range(5):
        daemon.write(f"{folder}/t{i}.csv", f"id\n{i}\n")
    assert daemon.run("sync", "--once").returncode == 0
    prepared = emulator.stats()["files_prepared"]

    # A touch without a change is not a change either.
    path = daemon.watch / folder / "t0.csv"
    path.write_bytes(path.read_bytes())
    daemon.start()
    daemon.wait_log("watching with")
    wait_for(lambda: daemon.health_file.exists(), timeout=20)
    daemon.write(f"{folder}/marker.csv", "id\n9\n")
    wait_table(emulator, f"{IN}{folder}.marker", [["id"], ["9"]])
    assert emulator.stats()["files_prepared"] == prepared + 1  # only the new file
    assert daemon.stop(signal.SIGINT) == 0


def test_files_untouched_for_long_are_not_held_back_at_start_up(daemon_factory, emulator):
    """A file whose mtime is older than stable_seconds when the daemon starts is loaded after one more
    identical stat, not after a whole stable window; a fresh file still waits the window, counted from its
    last write (its mtime, issue 18.1)."""
    import os
    import time
    from datetime import datetime

    folder = f"old{uid()}"
    daemon = daemon_factory({"watch": {"stable_seconds": 6}})
    old = daemon.write(f"{folder}/old.csv", "id\n1\n")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    fresh = daemon.write(f"{folder}/fresh.csv", "id\n2\n")
    fresh_saved = fresh.stat().st_mtime
    assert daemon.run("sync", "--once").returncode == 0
    stamps = {}
    for line in daemon.log().splitlines():
        for key, needle in (
            ("start", "keboola-sync 0."),
            ("old", f"{folder}/old.csv ->"),
            ("fresh", f"{folder}/fresh.csv ->"),
        ):
            if needle in line:
                stamps[key] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    assert stamps["old"] - stamps["start"] < 6, stamps
    # The window counts from the save, not from the start (a slow start-up on a busy machine is part of it);
    # log stamps are truncated to the millisecond.
    assert stamps["fresh"] - fresh_saved >= 6 - 0.001, (stamps, fresh_saved)


def test_folder_in_ignore_patterns_created_while_running_gets_no_bucket(daemon_factory, emulator):
    """watch.ignore_patterns applies to folders that appear while the daemon runs, not only to the
    ones a rescan finds: an ignored folder never becomes a bucket (issue 11)."""
    ignored, synced = f"archive{uid()}", f"sales{uid()}"
    daemon = daemon_factory({"watch": {"ignore_patterns": ["archive*"]}}).start()
    daemon.wait_log("watching with")
    (daemon.watch / ignored).mkdir()
    daemon.write(f"{ignored}/orders.csv", "id\n1\n")
    # The control folder appears after the ignored one; once its table is loaded, the folder job of
    # the ignored folder (queued first, on the event) has long run.
    daemon.write(f"{synced}/orders.csv", "id\n2\n")
    wait_table(emulator, f"{IN}{synced}.orders", [["id"], ["2"]])
    bucket_ids = {b["id"] for b in emulator.client().buckets.list()}
    assert f"{IN}{synced}" in bucket_ids
    assert f"{IN}{ignored}" not in bucket_ids, daemon.log()[-3000:]
    assert daemon.stop() == 0, daemon.log()[-3000:]
