"""Rescans over real files in a temporary folder: the report only, no scheduler, no Keboola."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from keboola_sync.fileid import Fingerprint, fingerprint
from keboola_sync.layout import Layout
from keboola_sync.rescan import Rescan, RescanNotes, RescanReport, ScanContext, folder_health
from keboola_sync.state import FileRecord, LedgerState

STABLE = 2.0


def record(path: str, seen: Fingerprint | None, state: str = "synced") -> FileRecord:
    return FileRecord(
        path=path, table_id=None, state=LedgerState(state), seen=seen, sha256=None, columns=None, header=None,
        rows=None, last_load_at=None, pending=None, pending_sha256=None, pending_columns=None, file_id=None,
        file_uploaded_at=None, job_id=None, error=None, next_retry_at=None,
    )  # fmt: skip


def changed_since_recorded(rel_path: str, fp: Fingerprint, rec: FileRecord | None, now: float) -> bool:
    return rec is None or rec.seen != fp


def write(root: Path, rel_path: str, text: str = "id\n1\n", age: float = 0.0) -> Path:
    path = root / rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def scan(
    root: Path,
    *,
    layout: Layout | None = None,
    records: dict[str, FileRecord] | None = None,
    since: float | None = None,
    announced: frozenset[str] = frozenset(),
    first_scan: bool = False,
) -> RescanReport:
    context = ScanContext(
        records=records or {},
        needs_work=changed_since_recorded,
        now_wall=time.time(),
        stable_seconds=STABLE,
        since=since,
        announced=announced,
        first_scan=first_scan,
    )
    return Rescan(root, layout or Layout(), context).full()


def test_a_settled_change_no_event_announced_is_a_missed_event(tmp_path: Path) -> None:
    write(tmp_path, "sales/quiet.csv", age=60)  # changed after the previous scan, settled since
    write(tmp_path, "sales/announced.csv", age=60)
    write(tmp_path, "sales/fresh.csv")  # still inside its stable window: not judged yet
    report = scan(tmp_path, since=time.time() - 120, announced=frozenset({"sales/announced.csv"}))
    assert report.missed == ["sales/quiet.csv"]
    assert sorted(c.rel_path for c in report.changed) == ["sales/announced.csv", "sales/fresh.csv", "sales/quiet.csv"]
    assert report.seen == 3


def test_no_missed_events_without_a_previous_scan_or_for_unchanged_files(tmp_path: Path) -> None:
    path = write(tmp_path, "sales/a.csv", age=60)
    assert scan(tmp_path).missed == []
    records = {"sales/a.csv": record("sales/a.csv", fingerprint(path))}
    report = scan(tmp_path, records=records, since=time.time() - 120)
    assert report.changed == [] and report.missed == []
    assert report.seen == 1


def test_files_older_than_the_window_are_settled_on_the_first_scan_only(tmp_path: Path) -> None:
    path = write(tmp_path, "sales/old.csv", age=60)
    write(tmp_path, "sales/new.csv")
    first = {c.rel_path: c.settled for c in scan(tmp_path, first_scan=True).changed}
    assert first == {"sales/old.csv": fingerprint(path), "sales/new.csv": None}
    later = {c.rel_path: c.settled for c in scan(tmp_path).changed}
    assert later == {"sales/old.csv": None, "sales/new.csv": None}


def test_ignore_patterns_apply_to_folders(tmp_path: Path) -> None:
    write(tmp_path, "sales/a.csv")
    write(tmp_path, "Archive_2023/a.csv")
    write(tmp_path, ".git/a.csv")
    layout = Layout(ignore_patterns=("archive*",))
    report = scan(tmp_path, layout=layout)
    assert report.folders == ["sales"]
    assert [c.rel_path for c in report.changed] == ["sales/a.csv"]
    # The same rule for a folder an event announces while the daemon runs (issue 11).
    context = ScanContext(records={}, needs_work=changed_since_recorded, now_wall=time.time(), stable_seconds=STABLE)
    live = Rescan(tmp_path, layout, context).folders(["Archive_2023", "sales"])
    assert live.folders == ["sales"]
    assert [c.rel_path for c in live.changed] == ["sales/a.csv"]


def test_ignore_patterns_apply_to_files(tmp_path: Path) -> None:
    write(tmp_path, "sales/a.csv")
    write(tmp_path, "sales/backup_a.csv")
    write(tmp_path, "sales/~$a.csv")
    report = scan(tmp_path, layout=Layout(ignore_patterns=("backup_*",)))
    assert [c.rel_path for c in report.changed] == ["sales/a.csv"]
    assert report.ignored == []  # ignored on purpose: nothing to tell the user


def test_names_a_user_may_not_expect_to_be_ignored_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "root.csv")
    write(tmp_path, "notes.txt")
    write(tmp_path, "sales/orders.xlsx")
    (tmp_path / "sales" / "2024").mkdir()
    (tmp_path / "sales" / ".cache").mkdir()
    report = scan(tmp_path)
    reasons = {i.rel_path: i.reason for i in report.ignored}
    assert sorted(reasons) == ["root.csv", "sales/2024/", "sales/orders.xlsx"]
    assert reasons["root.csv"] == "CSV files directly in the watched folder are not synced; put them in a folder"
    assert reasons["sales/2024/"] == "folders inside folders are not synced (only first-level folders are buckets)"


def test_notes_say_each_ignored_name_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, "root.csv")
    notes = RescanNotes()
    with caplog.at_level(logging.INFO, logger="keboola_sync.daemon"):
        notes.say(scan(tmp_path))
        notes.say(scan(tmp_path))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["ignoring root.csv: CSV files directly in the watched folder are not synced; put them in a folder"]


def test_ledger_rows_whose_file_is_gone_are_reported_missing(tmp_path: Path) -> None:
    write(tmp_path, "sales/a.csv")
    records = {"sales/gone.csv": record("sales/gone.csv", None)}
    assert scan(tmp_path, records=records).missing == ["sales/gone.csv"]


def test_folder_health(tmp_path: Path) -> None:
    missing = tmp_path / "unmounted"
    assert folder_health(missing, synced_before=True) == f"the watched folder {missing} is missing (unmounted volume?)"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert folder_health(empty, synced_before=False) is None
    assert folder_health(empty, synced_before=True) == (
        f"the watched folder {empty} is empty although files were synced from it (unmounted volume?)"
    )
    write(empty, "sales/a.csv")
    assert folder_health(empty, synced_before=True) is None


def test_an_unhealthy_folder_is_not_walked(tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    report = scan(watched, records={"sales/a.csv": record("sales/a.csv", None)})
    assert report.health is not None and "is empty although files were synced" in report.health
    assert report.changed == [] and report.folders == []


def test_a_folder_deleted_while_scanned_is_not_an_error(tmp_path: Path) -> None:
    context = ScanContext(records={}, needs_work=changed_since_recorded, now_wall=time.time(), stable_seconds=STABLE)
    report = Rescan(tmp_path, Layout(), context).folders(["gone"])
    assert report.folders == ["gone"] and report.readable == [] and report.unreadable == []


# --- files as people make them (issue 12 item 15) ----------------------------------------------------
def test_a_symbolic_link_to_a_folder_is_said_once_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "x.csv")
    watched = tmp_path / "watched"
    write(watched, "sales/a.csv")
    (watched / "linked").symlink_to(elsewhere)
    (watched / "sales" / "archive").symlink_to(elsewhere)
    (watched / ".hidden-link").symlink_to(elsewhere)
    report = scan(watched)
    assert report.folders == ["sales"]
    assert [c.rel_path for c in report.changed] == ["sales/a.csv"]
    ignored = {i.rel_path: i.reason for i in report.ignored}
    assert set(ignored) == {"linked/", "sales/archive/"}
    assert "symbolic link to a folder, which is not followed" in ignored["linked/"]
    assert "move or copy the folder itself" in ignored["linked/"]
    assert "folders inside folders are not synced" in ignored["sales/archive/"]


def test_a_csv_replaced_by_a_folder_is_reported_as_no_longer_a_file(tmp_path: Path) -> None:
    write(tmp_path, "sales/a.csv")
    (tmp_path / "sales" / "b.csv").mkdir()
    (tmp_path / "sales" / "c.csv").symlink_to(tmp_path / "sales" / "b.csv")
    records = {p: record(p, None, "skipped") for p in ("sales/b.csv", "sales/c.csv")}
    report = scan(tmp_path, records=records)
    assert sorted(report.not_files) == ["sales/b.csv", "sales/c.csv"]
    assert [c.rel_path for c in report.changed] == ["sales/a.csv"]
    assert scan(tmp_path).not_files == []  # a folder without a ledger row is only a sub-folder


def test_a_deleted_watched_folder_is_not_blamed_on_the_mount(tmp_path: Path) -> None:
    missing = tmp_path / "deleted"
    assert folder_health(missing, synced_before=True, deleted=True) == (
        f"the watched folder {missing} was deleted; waiting for it to be created again"
    )
    missing.mkdir()
    assert folder_health(missing, synced_before=True, deleted=True) is None  # created again, still empty


def test_a_symbolic_link_loop_is_a_file_entry_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path, "sales/a.csv")
    (tmp_path / "sales" / "loop.csv").symlink_to("loop.csv")
    (tmp_path / "looped").symlink_to("looped")
    report = scan(tmp_path)
    assert sorted(c.rel_path for c in report.changed) == ["sales/a.csv", "sales/loop.csv"]
