"""What the daemon does about a rescan's report: pause while the folder cannot be trusted, act on the rest.

A rescan (`rescan.Rescan`) only walks the folder and reports; this acts on the report: health first (an
unmounted volume must not look like deletions), the watch re-armed on a watched folder created again,
buckets for new folders, the changed files handed to the scheduler, and a switch to polling when events
were missed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from .decide import judged_by_the_table
from .live import FollowsLiveConfig, LiveConfig
from .rescan import Rescan, RescanNotes, RescanReport, ScanContext, folder_health
from .scheduler import Scheduler
from .sync import SyncService

if TYPE_CHECKING:  # `sync --once` runs without a watcher and never imports watchdog
    from .watcher import Watcher

log = logging.getLogger("keboola_sync.daemon")


class RescanActor(FollowsLiveConfig):
    """The state a rescan carries to the next: the last scan's time, and whether the watched folder was
    deleted and its watch must be re-armed."""

    def __init__(self, live: LiveConfig, rescan_now: threading.Event) -> None:
        self.live = live
        self._rescan_now = rescan_now
        self._notes = RescanNotes()
        self._last_scan_wall: float | None = None
        self._scanned_once = False
        self._root_gone = threading.Event()  # set by the watcher: the watched folder itself was deleted
        self._root_deleted = False  # ... and no first-level folder has been seen in it since
        self._rearm = False  # ... and the watch has not been re-armed on the folder created again

    def rescan(self, service: SyncService, scheduler: Scheduler, watcher: Watcher | None) -> None:
        """A full rescan, and what the daemon does about its report."""
        records = {r.path: r for r in service.ledger.all()}
        self._take_root_gone()
        # Health first: while paused, the previous scan's time and the events seen since are kept.
        health = folder_health(self.config.watch.path, synced_before=bool(records), deleted=self._root_deleted)
        if not self._check_health(health, scheduler, watcher):
            return
        now_wall = time.time()
        since, self._last_scan_wall = self._last_scan_wall, now_wall
        events_seen = scheduler.take_events_seen()
        context = ScanContext(
            records=records,
            needs_work=service.needs_work,
            now_wall=now_wall,
            stable_seconds=self.config.watch.stable_seconds,
            since=since,
            announced=frozenset(events_seen | scheduler.known()),
            first_scan=since is None and not self._scanned_once,
            root_deleted=self._root_deleted,
        )
        report = Rescan(self.config.watch.path, self.layout, context).full()
        if not self._check_health(report.health, scheduler, watcher):
            return
        self._root_deleted = self._root_deleted and not report.folders
        self._act(report, scheduler, service)
        if report.root_error:
            return
        self._scanned_once = True
        if any(judged_by_the_table(r) for r in records.values()):
            scheduler.queue_table_check()  # tables deleted in Keboola behind our back come back
        if report.missed and watcher is not None and watcher.mode == "native" and self.config.watch.observer == "auto":
            watcher.switch_to_polling(
                f"a rescan found {len(report.missed)} changed file(s) that no file event announced "
                f"(e.g. {report.missed[0]}); events do not arrive reliably on this mount"
            )

    def on_root_gone(self) -> None:
        """Called on the watcher's thread: only sets events, the main loop reacts (`_take_root_gone`)."""
        self._root_gone.set()
        self._rescan_now.set()

    def _take_root_gone(self) -> None:
        """The watched folder itself was deleted: say so once, and re-arm the watch when it exists again."""
        if not self._root_gone.is_set():
            return
        self._root_gone.clear()
        log.warning(
            "the watched folder %s was deleted or replaced; watching it again as soon as it exists",
            self.config.watch.path,
        )
        self._root_deleted = self._rearm = True
        # Files made before the watch is re-armed announced themselves to nobody: not missed events.
        self._last_scan_wall = None

    def _check_health(self, problem: str | None, scheduler: Scheduler, watcher: Watcher | None) -> bool:
        """Pause while the folder cannot be trusted (an unmounted volume must not look like deletions)."""
        if problem:
            if scheduler.paused != problem:
                log.error("%s; pausing: nothing is loaded and nothing in Keboola is touched until it is back", problem)
            scheduler.paused = problem
            return False
        rearm, self._rearm = self._rearm, False
        if scheduler.paused:
            log.info("the watched folder %s is back; resuming", self.config.watch.path)
            scheduler.paused = None
            rearm = True
        elif rearm:
            log.info("the watched folder %s exists again; watching it", self.config.watch.path)
        if rearm and watcher is not None:
            watcher.start()
        return True

    def new_folders(self, service: SyncService, scheduler: Scheduler) -> None:
        """Folders events announced: their buckets, and the files moved in with them (which may bring
        no events of their own)."""
        if scheduler.paused:
            return
        folders = scheduler.take_new_folders()
        if not folders:
            return
        prefixes = tuple(f + "/" for f in folders)
        context = ScanContext(
            records={r.path: r for r in service.ledger.all() if r.path.startswith(prefixes)},
            needs_work=service.needs_work,
            now_wall=time.time(),
            stable_seconds=self.config.watch.stable_seconds,
        )
        self._act(Rescan(self.config.watch.path, self.layout, context).folders(folders), scheduler, service)

    def _act(self, report: RescanReport, scheduler: Scheduler, service: SyncService) -> None:
        self._notes.say(report)
        for rel_path in report.not_files:  # a CSV replaced by a folder: no verdict about it may linger
            service.ledger.forget_path(rel_path)
            log.info(
                "forgot %s: a folder has taken its name (its table in Keboola is kept)",
                rel_path,
                extra={"file": rel_path},
            )
        for folder in report.folders:
            scheduler.queue_folder(folder)
        for change in report.changed:
            scheduler.notify(change.rel_path, settled=change.settled)
