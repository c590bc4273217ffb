"""Loses nothing, loads nothing needlessly, never loops (issues 12 and 13), through `sync --once` and the
running daemon: real files, the emulator over HTTP, the real kbcstorage client."""

from __future__ import annotations

import json
import os
import time
import uuid

from support.daemon import table_rows
from support.emulator import IN, wait_for


def uid() -> str:
    return uuid.uuid4().hex[:8]


def test_a_rewrite_that_keeps_size_and_mtime_is_loaded(daemon_factory, emulator):
    """`cp -p`, `touch -r` and backup restores put the old mtime back: size, mtime and inode stay equal,
    only the ctime tells (issue 12 item 6)."""
    folder = f"ctime{uid()}"
    daemon = daemon_factory()
    path = daemon.write(f"{folder}/prices.csv", "id,price\n1,10\n")
    assert daemon.run("sync", "--once").returncode == 0
    before = os.stat(path)

    with open(path, "r+b") as handle:  # same inode, same size
        handle.write(b"id,price\n1,99\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)

    assert daemon.run("sync", "--once").returncode == 0
    assert table_rows(emulator, f"{IN}{folder}.prices") == [["id", "price"], ["1", "99"]]

    # A ctime-only change (chmod) is read and hashed, but nothing is loaded again.
    imports = emulator.stats()["jobs"].get("tableImport", 0)
    path.chmod(0o640)
    assert daemon.run("sync", "--once").returncode == 0
    assert emulator.stats()["jobs"].get("tableImport", 0) == imports


def test_an_unchanged_header_never_blocks_a_load(daemon_factory, make_emulator):
    """Letters outside Windows-1250 are named by Keboola's server locale (§12), which we cannot predict: our
    rule says `Ørsted` -> `Orsted`, a server in the C locale says `rsted`. Once a table was loaded from a
    header, the same header loads again whatever the columns are called (issue 13 item 2); a changed
    header is still compared, and refused before anything remote changes."""
    emulator = make_emulator(extra_args=["--column-locale", "C"])
    folder = f"hdr{uid()}"
    table = f"{IN}{folder}.energy"
    daemon = daemon_factory(emulator_=emulator)
    daemon.write(f"{folder}/energy.csv", "id,Ørsted\n1,10\n")
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-2000:]
    assert table_rows(emulator, table) == [["id", "rsted"], ["1", "10"]]

    daemon.write(f"{folder}/energy.csv", "id,Ørsted\n1,10\n2,20\n")
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-2000:]
    assert table_rows(emulator, table) == [["id", "rsted"], ["1", "10"], ["2", "20"]]

    daemon.write(f"{folder}/energy.csv", "id,Vestas\n1,30\n")  # a changed header: compared, refused
    assert daemon.run("sync", "--once").returncode == 1
    assert "the header no longer matches table" in daemon.log()
    assert table_rows(emulator, table) == [["id", "rsted"], ["1", "10"], ["2", "20"]]


def test_two_files_whose_names_differ_only_in_case_are_one_table(daemon_factory, emulator):
    """Keboola's table names are case-insensitive (§12): `Orders.csv` and `orders.csv` are one table. One
    loads, the other is skipped with the rename advice, and nothing is retried in a loop (issue 13 item 4)."""
    folder = f"case{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/Orders.csv", "id\n1\n")
    daemon.write(f"{folder}/orders.csv", "id\n2\n")
    before = emulator.stats()["jobs"]
    assert daemon.run("sync", "--once").returncode == 1
    log = daemon.log()
    assert log.count("already loads. Rename one of the two files") == 1
    tables = [t["id"] for t in emulator.client().tables.list() if t["id"].startswith(f"{IN}{folder}.")]
    assert len(tables) == 1
    after_first = emulator.stats()["jobs"]
    assert sum(after_first.values()) - sum(before.values()) == 1  # one create, no failed attempt

    assert daemon.run("sync", "--once").returncode == 1  # still skipped, and nothing sent again
    assert emulator.stats()["jobs"] == after_first


def test_after_a_header_change_dropping_the_table_as_advised_recreates_it(daemon_factory, emulator):
    """The skip line says "drop the table in Keboola to recreate it from the file": doing exactly that
    must work at the next sync, without touching the file (issue 12 item 3)."""
    folder = f"drop{uid()}"
    table = f"{IN}{folder}.sales"
    daemon = daemon_factory()
    daemon.write(f"{folder}/sales.csv", "id,amount\n1,10\n")
    assert daemon.run("sync", "--once").returncode == 0
    daemon.write(f"{folder}/sales.csv", "id,total\n1,99\n")
    assert daemon.run("sync", "--once").returncode == 1
    assert "drop the table in Keboola to recreate it from the file" in daemon.log()

    emulator.client().tables.delete(table)
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-2000:]
    assert table_rows(emulator, table) == [["id", "total"], ["1", "99"]]


def test_when_the_file_that_loads_a_table_goes_away_the_skipped_one_loads(daemon_factory, emulator):
    """Two files, one table: the later is skipped with "Rename one of the two files". Once the first is
    renamed away (as advised), the other loads, and the table no longer holds the vanished file's rows
    (issue 12 item 4)."""
    folder = f"rival{uid()}"
    table = f"{IN}{folder}.orders"
    daemon = daemon_factory()
    daemon.write(f"{folder}/orders.csv", "id\n1\n")
    assert daemon.run("sync", "--once").returncode == 0
    daemon.write(f"{folder}/Orders.csv", "id\n2\n")
    assert daemon.run("sync", "--once").returncode == 1
    assert table_rows(emulator, table) == [["id"], ["1"]]

    (daemon.watch / folder / "orders.csv").rename(daemon.watch / folder / "old-orders.txt")
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-2000:]
    tables = [t["id"] for t in emulator.client().tables.list() if t["id"].lower() == table.lower()]
    assert len(tables) == 1
    assert table_rows(emulator, tables[0]) == [["id"], ["2"]]


def _someone_elses_table(emulator, tmp_path, bucket: str, name: str, text: str) -> str:
    """A table made with the official client, as a colleague or another tool would: no keboola-sync mark."""
    client = emulator.client()
    stage, _, short = bucket.partition(".")
    client.buckets.create(short.removeprefix("c-"), stage=stage)
    source = tmp_path / f"{name}-theirs.csv"
    source.write_text(text, encoding="utf-8")
    return str(client.tables.create(bucket, name, str(source)))


def test_a_table_that_someone_else_made_is_never_overwritten_unless_adopted(daemon_factory, emulator, tmp_path):
    """Issue 12 item 1: the daemon loads only tables it created (marked with table metadata of provider
    keboola-sync); another table of the same name is skipped with one line naming the way to hand it over."""
    folder = f"finance{uid()}"
    table = f"{IN}{folder}.revenue"
    _someone_elses_table(emulator, tmp_path, f"{IN}{folder}", "revenue", "id,amount\n1,10\n2,20\n3,30\n")
    daemon = daemon_factory()
    daemon.write(f"{folder}/revenue.csv", "id,amount\n9,99\n")

    assert daemon.run("sync", "--once").returncode == 1
    assert table_rows(emulator, table) == [["id", "amount"], ["1", "10"], ["2", "20"], ["3", "30"]]
    assert daemon.log().count("was not created by keboola-sync, so it is not overwritten") == 1
    assert "mapping.existing_tables: adopt" in daemon.log()

    daemon.write_config({"mapping": {"existing_tables": "adopt"}})
    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-2000:]
    assert table_rows(emulator, table) == [["id", "amount"], ["9", "99"]]
    metadata = {m["key"]: m["value"] for m in emulator.client().tables.detail(table)["metadata"]}
    assert metadata["keboola-sync.owner"] == "keboola-sync"
    assert metadata["keboola-sync.source"] == f"{folder}/revenue.csv"


def test_a_lost_ledger_reloads_nothing_that_keboola_already_holds(daemon_factory, emulator):
    """Issue 12 item 5: "move the ledger aside: the next run re-checks every file against Keboola and
    reloads only what differs" — the content hash kept on the table makes that true."""
    folder = f"lost{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    daemon.write(f"{folder}/b.csv", "id\n2\n")
    assert daemon.run("sync", "--once").returncode == 0
    daemon.write(f"{folder}/b.csv", "id\n3\n")  # changed while the ledger is gone
    for leftover in daemon.state.parent.glob(daemon.state.name + "*"):
        leftover.unlink()
    jobs = emulator.stats()["jobs"]

    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-2000:]
    assert f"{folder}/a.csv: table {IN}{folder}.a already holds this content" in daemon.log()
    after = emulator.stats()["jobs"]
    assert after.get("tableImport", 0) - jobs.get("tableImport", 0) == 1  # b.csv only
    assert table_rows(emulator, f"{IN}{folder}.b") == [["id"], ["3"]]


def test_a_table_loaded_by_someone_else_is_made_equal_to_its_file_again(daemon_factory, emulator, tmp_path):
    """Issue 12 item 7: "every table ends up equal to the last stable content of its file"."""
    folder = f"foreign{uid()}"
    table = f"{IN}{folder}.stock"
    daemon = daemon_factory()
    daemon.write(f"{folder}/stock.csv", "id,qty\n1,5\n")
    assert daemon.run("sync", "--once").returncode == 0
    # Keboola's lastImportDate has whole seconds: an import by someone else within the second of ours is
    # indistinguishable (README, by design). Wait for the clock to move on before making one.
    loaded_at = emulator.client().tables.detail(table)["lastImportDate"]
    wait_for(lambda: time.strftime("%Y-%m-%dT%H:%M:%S") > loaded_at[:19], timeout=3, interval=0.05)
    other = tmp_path / "other.csv"
    other.write_text("id,qty\n7,700\n", encoding="utf-8")
    emulator.client().tables.load(table, str(other), is_incremental=True)
    assert len(table_rows(emulator, table)) == 3

    assert daemon.run("sync", "--once").returncode == 0, daemon.log()[-2000:]
    assert "was loaded in Keboola by something other than keboola-sync" in daemon.log()
    assert table_rows(emulator, table) == [["id", "qty"], ["1", "5"]]

    imports = emulator.stats()["jobs"].get("tableImport", 0)
    assert daemon.run("sync", "--once").returncode == 0  # and then it stays quiet
    assert emulator.stats()["jobs"].get("tableImport", 0) == imports


def test_a_job_error_keboola_does_not_explain_never_becomes_a_loop(daemon_factory, emulator):
    """Issue 13 item 5: a job error with a code we cannot classify is `failed` with Keboola's own message,
    said once, and tried again at growing spacing — at most one import per retry interval, never one per
    round."""
    folder = f"unknown{uid()}"
    daemon = daemon_factory({"retry": {"failed_retry_seconds": 1, "failed_retry_max_seconds": 4}})
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    emulator.set_faults(fail_jobs=1.0, fail_jobs_code="storage.something.neverDocumented")
    try:
        daemon.start()
        daemon.wait_log(f"failed {folder}/a.csv")
        started = time.monotonic()
        base = sum(emulator.stats()["jobs"].values())
        # Three more tries, one job each: after waits of 1, 2 and 4 s (doubling), so no sooner than ~7 s.
        # A loop would send them within a second.
        wait_for(lambda: sum(emulator.stats()["jobs"].values()) >= base + 3, timeout=30, interval=0.1)
        assert time.monotonic() - started >= 6.0
        assert daemon.log().count(f"ERROR keboola_sync.sync: failed {folder}/a.csv") == 1
        status = {r["file"]: r for r in map(json.loads, daemon.run("status", "--json").stdout.splitlines())}
        assert status[f"{folder}/a.csv"]["state"] == "failed"
        assert "injected by keboola-emulator" in status[f"{folder}/a.csv"]["error"]
    finally:
        emulator.reset_faults()
    assert daemon.stop() == 0
