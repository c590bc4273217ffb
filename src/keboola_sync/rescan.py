"""Walk the watched folder and report what is there: it never decides and never calls Keboola.

A rescan stats every CSV (it never reads one), so a restart over 10,000 unchanged files finishes in
seconds. It returns a `RescanReport`; the daemon and the scheduler act on it (pause, hint files, create
buckets, switch the watcher to polling). `RescanNotes` says once what a report shows a user may not
expect (ignored names, unreadable folders).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .fileid import Fingerprint, is_folder, observe
from .layout import Ignored, Layout, Rejected, Target
from .state import FileRecord

log = logging.getLogger("keboola_sync.daemon")

NeedsWork = Callable[[str, Fingerprint, FileRecord | None, float], bool]


def folder_health(root: Path, *, synced_before: bool, deleted: bool = False) -> str | None:
    """Why the folder cannot be trusted right now (missing, not readable, emptied), or None.

    `deleted`: the watcher saw the folder itself deleted, so its absence (or its emptiness once it is
    created again) is what someone did, not an unmounted volume, and is said so."""
    try:
        if not root.is_dir():
            if deleted:
                return f"the watched folder {root} was deleted; waiting for it to be created again"
            return f"the watched folder {root} is missing (unmounted volume?)"
        has_entries = any(True for _ in os.scandir(root))
    except OSError as exc:
        return f"the watched folder {root} cannot be read: {exc}"
    if not has_entries and synced_before and not deleted:
        return f"the watched folder {root} is empty although files were synced from it (unmounted volume?)"
    return None


@dataclass(frozen=True)
class Change:
    """A file that needs work. `settled`: its fingerprint, when it was found at start-up already older
    than the stable window (the scheduler then waits for one more identical stat only)."""

    rel_path: str
    settled: Fingerprint | None = None


@dataclass(frozen=True)
class Unreadable:
    folder: str
    problem: str
    fix: str


@dataclass
class RescanReport:
    """What one walk found. `health` set means nothing else was looked at."""

    health: str | None = None
    root_error: str | None = None  # the watched folder could not be listed
    folders: list[str] = field(default_factory=list)  # first-level folders that are synced
    readable: list[str] = field(default_factory=list)  # folders listed without error
    unreadable: list[Unreadable] = field(default_factory=list)
    seen: int = 0  # files looked at
    changed: list[Change] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # changed since the last scan, no event announced it
    missing: list[str] = field(default_factory=list)  # in the ledger, not on disk
    ignored: list[Ignored] = field(default_factory=list)  # notable ignored names
    not_files: list[str] = field(default_factory=list)  # in the ledger, now a folder (or a link to one)


@dataclass(frozen=True)
class ScanContext:
    """What the walk compares against: the ledger, the previous scan, the paths events announced."""

    records: Mapping[str, FileRecord]
    needs_work: NeedsWork
    now_wall: float
    stable_seconds: float
    since: float | None = None  # wall time of the previous full scan (None: no missed-event check)
    announced: frozenset[str] = frozenset()  # paths events or the scheduler already know about
    first_scan: bool = False
    root_deleted: bool = False  # the watcher saw the folder itself deleted (see folder_health)


class Rescan:
    """One walk over the root or over some first-level folders."""

    def __init__(self, root: Path, layout: Layout, context: ScanContext) -> None:
        self.root = root
        self.layout = layout
        self.ctx = context
        self.report = RescanReport()

    def full(self) -> RescanReport:
        self.report.health = folder_health(
            self.root, synced_before=bool(self.ctx.records), deleted=self.ctx.root_deleted
        )
        if self.report.health:
            return self.report
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except OSError as exc:
            self.report.root_error = f"cannot list {self.root}: {exc}"
            return self.report
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folder = self.layout.folder(entry.name)
                if not isinstance(folder, Ignored):
                    self.report.folders.append(entry.name)
                    self._scan_folder(entry.name)
                elif folder.notable:
                    self.report.ignored.append(Ignored(entry.name + "/", folder.reason, notable=True))
                continue
            target = self.layout.linked_folder(entry.name) if is_folder(entry) else self.layout.classify(entry.name)
            if isinstance(target, Ignored) and target.notable:
                self.report.ignored.append(target)
        return self.report

    def folders(self, names: Iterable[str]) -> RescanReport:
        for name in names:
            if not self.layout.folder_ignored(name):
                self.report.folders.append(name)
                self._scan_folder(name)
        return self.report

    def _scan_folder(self, folder: str) -> None:
        try:
            entries = list(os.scandir(self.root / folder))
        except (FileNotFoundError, NotADirectoryError):
            log.debug("folder %s is gone (deleted or renamed); nothing in Keboola is touched", folder)
            return
        except OSError as exc:
            fix = (
                f"Make it readable: chmod a+rx '{folder}'"
                if exc.errno in (errno.EACCES, errno.EPERM)
                else "Check the folder and the mount"
            )
            problem = f"folder {folder} cannot be read ({exc.strerror or exc}); its files are not synced"
            self.report.unreadable.append(Unreadable(folder, problem, fix))
            return
        self.report.readable.append(folder)
        names: set[str] = set()
        for entry in entries:
            rel_path = f"{folder}/{entry.name}"
            names.add(rel_path)
            if is_folder(entry):  # a folder, or a link to one: never a file, whatever its name
                self._subfolder(rel_path)
                continue
            self._scan_file(rel_path, entry)
        prefix = folder + "/"
        self.report.missing.extend(p for p in self.ctx.records if p.startswith(prefix) and p not in names)

    def _subfolder(self, rel_path: str) -> None:
        sub = self.layout.subfolder(rel_path)
        if sub.notable:
            self.report.ignored.append(Ignored(rel_path + "/", sub.reason, notable=True))
        record = self.ctx.records.get(rel_path)
        if record is not None and not record.in_flight:  # a CSV replaced by a folder of its name
            self.report.not_files.append(rel_path)

    def _scan_file(self, rel_path: str, entry: os.DirEntry[str]) -> None:
        """A file changed since the previous full scan (and settled) that no event announced and nobody
        is loading is a missed event: the watcher may need polling."""
        target = self.layout.classify(rel_path)
        if isinstance(target, Ignored):
            if target.notable:
                self.report.ignored.append(target)
            return
        self.report.seen += 1
        ctx = self.ctx
        record = ctx.records.get(rel_path)
        try:
            st = entry.stat(follow_symlinks=True)
            fp = Fingerprint.of(st)
        except OSError:  # a broken link or no permission: sync reports it once per version
            seen = observe(self.root / rel_path)
            if seen is not None and ctx.needs_work(rel_path, seen, record, ctx.now_wall):
                self.report.changed.append(Change(rel_path))
            return
        if not self._needs_work(target, rel_path, fp, record):
            return
        settled_before = ctx.now_wall - 2 * ctx.stable_seconds - 1
        if ctx.since is not None and rel_path not in ctx.announced and ctx.since < st.st_mtime < settled_before:
            self.report.missed.append(rel_path)
        old_enough = ctx.now_wall - st.st_mtime >= ctx.stable_seconds
        self.report.changed.append(Change(rel_path, fp if ctx.first_scan and old_enough else None))

    def _needs_work(self, target: Target | Rejected, rel_path: str, fp: Fingerprint, record: FileRecord | None) -> bool:
        return isinstance(target, Rejected) or self.ctx.needs_work(rel_path, fp, record, self.ctx.now_wall)


class RescanNotes:
    """Says once what reports show: ignored names a user may not expect, folders that cannot be read."""

    def __init__(self) -> None:
        self._noted: set[str] = set()
        self._unreadable: dict[str, str] = {}

    def say(self, report: RescanReport) -> None:
        if report.root_error:
            log.error("%s", report.root_error)
        for ignored in report.ignored:
            if ignored.rel_path not in self._noted:
                self._noted.add(ignored.rel_path)
                log.info(
                    "ignoring %s: %s",
                    ignored.rel_path,
                    ignored.reason,
                    extra={"file": ignored.rel_path, "outcome": "ignored"},
                )
        for bad in report.unreadable:
            if self._unreadable.get(bad.folder) != bad.problem:
                self._unreadable[bad.folder] = bad.problem
                log.warning("%s. %s", bad.problem, bad.fix, extra={"folder": bad.folder})
        for folder in report.readable:
            if self._unreadable.pop(folder, None):
                log.info("folder %s can be read again", folder, extra={"folder": folder})
