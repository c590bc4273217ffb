"""`sync --once --dry-run` and `plan` (issue 16 item 3): what a sync would do, file by file, with read-only
calls only; Keboola, the ledger and the spool stay exactly as they were."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from support.daemon import Daemon
from support.emulator import IN


def uid() -> str:
    return uuid.uuid4().hex[:6]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and mtime: what "untouched" means for a folder."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def remote(emulator) -> tuple[list[str], list[tuple[str, int | None]]]:
    client = emulator.client()
    buckets = sorted(b["id"] for b in client.buckets.list())
    tables = sorted((t["id"], t.get("rowsCount")) for t in client.tables.list())
    return buckets, tables


def writes(stats: dict) -> dict[str, int]:
    return {k: v for k, v in stats["requests"].items() if not k.startswith("GET ")}


def block(stdout: str, path: str) -> str:
    """The line (or two, for a skip) the dry run printed about one path."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if path in line.split(" -> ")[0].split(":")[0].split():
            rest = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith(" ") else ""
            return f"{line}\n{rest}".strip()
    raise AssertionError(f"nothing printed about {path}:\n{stdout}")


def test_dry_run_says_what_a_sync_would_do_and_changes_nothing(daemon_factory, emulator):
    old, new = f"dr{uid()}", f"dn{uid()}"
    daemon: Daemon = daemon_factory()
    daemon.write(f"{old}/same.csv", "id,name\n1,a\n")
    daemon.write(f"{old}/changed.csv", "id,name\n1,a\n")
    daemon.write(f"{old}/header.csv", "id,name\n1,a\n")
    daemon.write(f"{old}/dropped.csv", "id\n1\n2\n")
    daemon.write(f"{old}/bad.csv", b"id,city\n1,Z\xfcrich\n")
    assert daemon.run("sync", "--once").returncode == 1  # bad.csv is skipped
    emulator.client().tables.delete(f"{IN}{old}.dropped")  # deleted in Keboola behind the daemon's back
    daemon.write(f"{old}/changed.csv", "id,name\n1,a\n2,b\n")
    daemon.write(f"{old}/header.csv", "id,name,extra\n1,a,x\n")
    daemon.write(f"{new}/fresh.csv", "id,name,price\n1,a,2.5\n")
    daemon.write(f"{new}/notes.txt", "not a table")

    ledger_before, spool_before, remote_before = digest(daemon.state), tree(daemon.tmp / "spool"), remote(emulator)
    stats_before = emulator.stats()

    result = daemon.run("sync", "--once", "--dry-run")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr  # a file would be skipped: as `sync --once`
    assert "nothing is written to Keboola, the ledger or the spool" in out
    assert block(out, f"{new}/") == f"create bucket {new}/ -> {IN}{new}: a new folder"
    assert block(out, f"{new}/fresh.csv").startswith(
        f"create table  {new}/fresh.csv -> {IN}{new}.fresh: a new file, columns: 3, 22 bytes"
    )
    assert "notes.txt" not in out
    assert block(out, f"{old}/same.csv") == f"nothing       {old}/same.csv -> {IN}{old}.same: in sync, rows: 1"
    assert block(out, f"{old}/changed.csv").startswith(
        f"full load     {old}/changed.csv -> {IN}{old}.changed: changed since the last load, columns: 2, 16 bytes"
    )
    assert block(out, f"{old}/dropped.csv") == (
        f"create table  {old}/dropped.csv -> {IN}{old}.dropped: Keboola's table is missing (deleted in Keboola)"
    )
    # A skip shows the very line the daemon would log.
    header = block(out, f"{old}/header.csv")
    assert header.startswith(f"skip          {old}/header.csv -> {IN}{old}.header\n")
    assert header.splitlines()[1].strip() == (
        f"skipped {old}/header.csv: the header no longer matches table {IN}{old}.header; new columns: extra. "
        "Nothing was changed in Keboola. Restore the header, or drop the table in Keboola to recreate it from "
        "the file, or set csv.on_header_change: load"
    )
    bad = block(out, f"{old}/bad.csv")
    assert bad.startswith(f"skip          {old}/bad.csv -> {IN}{old}.bad (unchanged since it was skipped; ")
    assert bad.splitlines()[1].strip().startswith(f"skipped {old}/bad.csv: ") and "UTF-8" in bad
    assert out.splitlines()[-1] == (
        "dry run: 1 create bucket, 2 create table, 1 full load, 1 nothing, 2 skip; nothing was changed"
    )

    # `plan` is the same command.
    again = daemon.run("plan")
    assert again.returncode == 1 and again.stdout == out

    # Nothing changed: not Keboola (only reads were sent), not the ledger, not the spool.
    assert remote(emulator) == remote_before
    assert writes(emulator.stats()) == writes(stats_before)
    assert emulator.stats()["requests"] != stats_before["requests"]  # it did ask (GETs)
    assert digest(daemon.state) == ledger_before
    assert tree(daemon.tmp / "spool") == spool_before
    assert daemon.run("sync", "--once").returncode == 1  # the real sync still has all of it to do
    assert digest(daemon.state) != ledger_before


def test_dry_run_exit_codes(daemon_factory, emulator):
    folder = f"dx{uid()}"
    daemon: Daemon = daemon_factory()
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    first = daemon.run("plan")
    assert first.returncode == 0, first.stdout + first.stderr  # would load fine
    assert not daemon.state.exists()  # the ledger is not even created
    assert not (daemon.tmp / "spool").exists()
    assert daemon.run("sync", "--once").returncode == 0
    assert daemon.run("plan").stdout.splitlines()[-1] == "dry run: 1 nothing; nothing was changed"

    missing = daemon_factory({"watch": {"path": str(daemon.tmp / "nowhere")}}, name="missing")
    result = missing.run("sync", "--once", "--dry-run")
    assert result.returncode == 2 and "does not exist" in result.stdout + result.stderr

    wrong = daemon_factory(name="wrong", env={"KBC_STORAGE_API_TOKEN": "wrong-token"})
    result = wrong.run("plan")
    assert result.returncode == 2 and "refused the token" in result.stdout + result.stderr
    assert os.listdir(wrong.watch) == []
