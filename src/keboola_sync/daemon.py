"""Lifecycle: start-up, the main loop (rescans, health, keep-alive), signals and graceful shutdown.

The rooms it runs: `preflight` (start-up checks), `scheduler` (stability window, one load per table,
workers), `rescan` (walks the folder and reports; the daemon acts on the report). Signal handlers only
set events; the reactions and their log lines happen outside the handler.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from types import FrameType

from . import __version__
from .config import Config
from .errors import LedgerUnwritable
from .health import Health
from .layout import Layout
from .preflight import StartupError, check_folder, claim_spool, connect, lock_ledger
from .rescan import Rescan, RescanNotes, RescanReport, ScanContext, folder_health
from .scheduler import Scheduler
from .spool import release_run_dir
from .state import Ledger
from .storage import Abandoned, Storage, StorageError
from .sync import Outcome, SyncService
from .watcher import Watcher

__all__ = ["Daemon", "StartupError", "check_folder", "connect"]  # the last three: re-exported from preflight

log = logging.getLogger("keboola_sync.daemon")

# How long a stop during start-up waits for the main thread (which may be inside one Keboola request that
# cannot be interrupted) before the process leaves without it: nothing is loading yet, so nothing is lost.
STARTUP_STOP_GRACE_SECONDS = 2.0


class Daemon:
    """`run` and `sync --once` share everything but the watcher and the exit condition."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.layout = Layout.from_config(config)
        self.stop = threading.Event()
        self.abandon = threading.Event()
        self._rescan_now = threading.Event()
        self._hurry = threading.Event()  # a second signal: leave now
        self._signal_name = ""
        self._stop_said = False
        self.hangup = threading.Event()  # SIGHUP: read by the main loop (`_take_hangup`)
        self._loading = threading.Event()  # start-up is over: workers may be loading
        self._finished = threading.Event()  # run() has returned
        self._say_lock = threading.Lock()
        self._notes = RescanNotes()
        self._last_scan_wall: float | None = None
        self._scanned_once = False

    # -- signals ---------------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Only sets events: logging (its locks) and timers are not safe inside a signal handler."""
        if signum == signal.SIGHUP:
            self.hangup.set()  # read by the main loop (`_take_hangup`), never acted on here
            return
        if self.stop.is_set():
            self._hurry.set()
            return
        self._signal_name = signal.Signals(signum).name
        self.stop.set()

    def install_signal_handlers(self, early: Iterable[int] = ()) -> None:
        """`early`: signals received before the daemon existed (held by the CLI while the modules load);
        they count as if they came now."""
        for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(handled, self._on_signal)
        for signum in early:
            self._on_signal(signum, None)
        # The main thread may sit in a Keboola call (start-up, resolving the previous run) when a signal
        # comes: this thread reacts at once, the loops react too, whoever is first says it once.
        threading.Thread(target=self._react_to_signals, name="signals", daemon=True).start()

    def _react_to_signals(self) -> None:
        self.stop.wait()
        if not self._loading.is_set():
            self._stop_during_startup()
        self._acknowledge_stop()
        self._hurry.wait()
        log.warning("second signal: stopping now; the next start finishes what was in flight")
        self._leave_now()

    def _leave_now(self) -> None:
        self.abandon.set()
        logging.shutdown()
        os._exit(0)

    def _stop_during_startup(self) -> None:
        """Nothing is loading yet, so nothing has to be finished: every wait on Keboola is given up at once.
        The main thread returns at its next step; one stuck inside a request (a slow token check) cannot
        be interrupted, so after a short grace the process leaves without it. The ledger is consistent at
        any moment (every change is one SQLite transaction), and the next start begins again."""
        if not self._say_startup_stop():
            return
        if self._finished.wait(STARTUP_STOP_GRACE_SECONDS) or self._loading.is_set():
            return
        log.info(
            "start-up did not end within %.0f s of the stop request; leaving without it", STARTUP_STOP_GRACE_SECONDS
        )
        log.info("stopped")
        self._leave_now()

    def _say_startup_stop(self) -> bool:
        """Say a stop during start-up once (False if already said) and give up every wait on Keboola."""
        with self._say_lock:
            if self._stop_said:
                return False
            self._stop_said = True
        log.info("received %s during start-up: stopping; nothing was loading yet", self._signal_name or "SIGTERM")
        self.abandon.set()
        return True

    def _take_hangup(self) -> None:
        """SIGHUP, read by the main loop between ticks: the one place a configuration reload will go.
        Until then it stops gracefully, as SIGTERM does, and says why in one line (a silent death with
        exit 129 while `health` still says ok was the old behaviour)."""
        if not self.hangup.is_set():
            return
        self.hangup.clear()
        with self._say_lock:
            if self._stop_said or self.stop.is_set():
                return
            self._stop_said = True
            self._signal_name = "SIGHUP"
            self.stop.set()
        log.warning(
            "received SIGHUP: reloading the configuration is not supported yet, so stopping as for SIGTERM "
            "(finishing loads in flight, up to %.0f s); start keboola-sync again to apply a changed configuration",
            self.config.daemon.shutdown_timeout_seconds,
        )
        self._start_abandon_countdown()

    def _ledger_lost(self, ledger: Ledger) -> bool:
        """state.path was replaced by something that cannot be opened (the ledger said so): stop, finishing
        what is in flight, and exit 2."""
        if ledger.lost is None:
            return False
        with self._say_lock:
            said, self._stop_said = self._stop_said, True
        self.stop.set()
        if not said:
            self._start_abandon_countdown()
        return True

    def _acknowledge_stop(self) -> None:
        """Say the stop once and start the countdown after which waiting on Keboola is given up."""
        with self._say_lock:
            if self._stop_said or not self.stop.is_set():
                return
            self._stop_said = True
        timeout = self.config.daemon.shutdown_timeout_seconds
        log.info(
            "received %s: finishing loads in flight (up to %.0f s), starting nothing new",
            self._signal_name or "a stop request",
            timeout,
        )
        self._start_abandon_countdown()

    def _start_abandon_countdown(self) -> None:
        # Whatever is still waiting on Keboola when the time is up gives up (the ledger keeps the job).
        timer = threading.Timer(self.config.daemon.shutdown_timeout_seconds, self.abandon.set)
        timer.daemon = True
        timer.start()

    # -- rescans ---------------------------------------------------------------------------------------

    def rescan(self, service: SyncService, scheduler: Scheduler, watcher: Watcher | None) -> None:
        """A full rescan, and what the daemon does about its report."""
        records = {r.path: r for r in service.ledger.all()}
        # Health first: while paused, the previous scan's time and the events seen since are kept.
        if not self._check_health(
            folder_health(self.config.watch.path, synced_before=bool(records)), scheduler, watcher
        ):
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
        )
        report = Rescan(self.config.watch.path, self.layout, context).full()
        if not self._check_health(report.health, scheduler, watcher):
            return
        self._act(report, scheduler)
        if report.root_error:
            return
        self._scanned_once = True
        if any(r.state == "synced" for r in records.values()):
            scheduler.queue_table_check()  # tables deleted in Keboola behind our back come back
        if report.missed and watcher is not None and watcher.mode == "native" and self.config.watch.observer == "auto":
            watcher.switch_to_polling(
                f"a rescan found {len(report.missed)} changed file(s) that no file event announced "
                f"(e.g. {report.missed[0]}); events do not arrive reliably on this mount"
            )

    def _check_health(self, problem: str | None, scheduler: Scheduler, watcher: Watcher | None) -> bool:
        """Pause while the folder cannot be trusted (an unmounted volume must not look like deletions)."""
        if problem:
            if scheduler.paused != problem:
                log.error("%s; pausing: nothing is loaded and nothing in Keboola is touched until it is back", problem)
            scheduler.paused = problem
            return False
        if scheduler.paused:
            log.info("the watched folder %s is back; resuming", self.config.watch.path)
            scheduler.paused = None
            if watcher is not None:
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
        self._act(Rescan(self.config.watch.path, self.layout, context).folders(folders), scheduler)

    def _act(self, report: RescanReport, scheduler: Scheduler) -> None:
        self._notes.say(report)
        for folder in report.folders:
            scheduler.queue_folder(folder)
        for change in report.changed:
            scheduler.notify(change.rel_path, settled=change.settled)

    def run(self, *, once: bool = False) -> int:
        # First of all: a second process on this ledger stops here, before it touches Keboola, the
        # spool directory or the ledger (issue 12, item 8).
        ledger_lock = lock_ledger(self.config)
        try:
            return self._run_locked(once=once)
        except StartupError:
            if self.stop.is_set():
                return self._stopped()  # asked to stop while a start-up check was failing: not a config error
            raise
        finally:
            ledger_lock.release()
            self._finished.set()

    def _run_locked(self, *, once: bool) -> int:
        cfg = self.config
        check_folder(cfg.watch.path)
        if self.stop.is_set():
            return self._stopped()
        try:
            storage, info = connect(cfg, self.abandon)
        except Abandoned:
            return self._stopped()
        if self.stop.is_set():
            return self._stopped()
        storage.warm_up()
        log.info(
            "keboola-sync %s: project %s (%s), watching %s -> stage %s",
            __version__,
            info.project_name,
            info.project_id,
            cfg.watch.path,
            cfg.keboola.stage,
        )
        run_dir, spool_lock = claim_spool(cfg)
        # Spools go to this process's own locked sub-directory: another daemon sharing spool_dir (with
        # another ledger) never removes them, and this one never removes the other's.
        self.config = replace(cfg, upload=replace(cfg.upload, spool_dir=run_dir))
        try:
            ledger = Ledger(cfg.state.path)
            try:
                return self._run_with(storage, ledger, once=once)
            finally:
                ledger.close()
        finally:
            release_run_dir(run_dir, spool_lock)

    def _stopped(self) -> int:
        """Start-up ends early because a stop was asked for: exit 0, nothing half-done."""
        self._say_startup_stop()
        log.info("stopped")
        return 0

    def _run_with(self, storage: Storage, ledger: Ledger, *, once: bool) -> int:
        cfg = self.config
        service = SyncService(cfg, storage, ledger)
        try:
            service.resolve_in_flight()
        except LedgerUnwritable as exc:  # at start-up a ledger that cannot be written is a start-up error
            raise StartupError("state.path", f"{exc}. Free space on its volume or make it writable") from exc
        except Abandoned:
            self._acknowledge_stop()
            log.info("stopped while resolving loads of the previous run; the next start goes on")
            return 0
        if self.stop.is_set():
            return self._stopped()
        scheduler = Scheduler(
            service,
            cfg.watch.path,
            stable_seconds=cfg.watch.stable_seconds,
            workers=cfg.upload.concurrency,
            stop=self.stop,
        )
        self._loading.set()  # from here a stop finishes what is in flight (graceful shutdown)
        scheduler.start_workers()
        health = Health(cfg)
        watcher = None
        if not once:
            watcher = Watcher(
                cfg.watch.path,
                setting=cfg.watch.observer,
                polling_interval=cfg.watch.polling_interval_seconds,
                on_file=lambda p: scheduler.notify(p, from_event=True),
                on_folder=scheduler.notify_folder,
                on_overflow=lambda: self._rescan_now.set(),
            )
            log.info("watching with %s observer: %s", watcher.mode, watcher.reason)
            watcher.start()
        self.rescan(service, scheduler, watcher)
        if once:
            return self._run_once(service, scheduler)
        self._loop(service, scheduler, watcher, storage, health)
        code = self._shutdown(scheduler, watcher, health)
        return 2 if ledger.lost is not None else code

    def _run_once(self, service: SyncService, scheduler: Scheduler) -> int:
        tick = self._tick_seconds()
        while not self.stop.is_set():
            self._take_hangup()
            if self._ledger_lost(service.ledger):
                break
            if scheduler.paused:
                log.error("sync --once: %s", scheduler.paused)
                return 1
            self.new_folders(service, scheduler)
            scheduler.tick()
            if scheduler.idle():
                break
            self.stop.wait(tick)
        if self.stop.is_set():
            self._acknowledge_stop()
            scheduler.wait_idle(self.config.daemon.shutdown_timeout_seconds)
            self.abandon.set()
        if service.ledger.lost is not None:
            return 2  # said by the ledger
        bad = [o for o in scheduler.counters.outcomes.values() if o.status in ("failed", "skipped", "abandoned")]
        # Files judged earlier and still bad count too: the exit code describes the folder, not this run.
        for record in service.ledger.all():
            if (
                record.state in ("failed", "skipped")
                and record.path not in scheduler.counters.outcomes
                and (self.config.watch.path / record.path).exists()
            ):
                bad.append(Outcome(record.path, record.state, record.error or ""))
        c = scheduler.counters
        log.info(
            "sync --once done: %d loaded, %d unchanged, %d skipped, %d failed",
            c.loaded,
            c.unchanged,
            len([b for b in bad if b.status == "skipped"]),
            len([b for b in bad if b.status != "skipped"]),
        )
        return 1 if bad else 0

    def _tick_seconds(self) -> float:
        return max(0.05, min(0.5, self.config.watch.stable_seconds / 4))

    def _loop(
        self, service: SyncService, scheduler: Scheduler, watcher: Watcher | None, storage: Storage, health: Health
    ) -> None:
        cfg = self.config
        tick = self._tick_seconds()
        next_scan = time.monotonic() + self._jittered(cfg.watch.rescan_seconds)
        next_beat = 0.0
        keepalive_every = max(cfg.daemon.heartbeat_seconds, cfg.daemon.keboola_max_silence_seconds / 3)
        next_keepalive = time.monotonic() + keepalive_every
        keepalive: threading.Thread | None = None
        while not self.stop.is_set():
            self._take_hangup()
            if self._ledger_lost(service.ledger):
                break
            now = time.monotonic()
            if self._rescan_now.is_set() or now >= next_scan:
                self._rescan_now.clear()
                self.rescan(service, scheduler, watcher)
                # While paused (folder missing), look again soon so the daemon resumes promptly.
                next_scan = now + (
                    cfg.watch.polling_interval_seconds if scheduler.paused else self._jittered(cfg.watch.rescan_seconds)
                )
            self.new_folders(service, scheduler)
            scheduler.tick()
            if now >= next_keepalive and not (keepalive and keepalive.is_alive()):
                next_keepalive = now + keepalive_every
                if time.time() - (storage.last_contact or 0) > keepalive_every:
                    # In its own thread: a hanging network must not stall the scheduler or the heartbeat.
                    keepalive = threading.Thread(target=self._ping, args=(storage,), name="keepalive", daemon=True)
                    keepalive.start()
            if now >= next_beat:
                next_beat = now + cfg.daemon.heartbeat_seconds
                service.ledger.check_replaced()  # a ledger deleted while idle is noticed too
                c = scheduler.counters
                health.write(
                    last_keboola_ok_at=storage.last_contact,
                    observer=watcher.mode if watcher else None,
                    paused=scheduler.paused,
                    pending=scheduler.pending_count,
                    loaded=c.loaded,
                    failed=c.failed,
                    skipped=c.skipped,
                )
            self.stop.wait(tick)

    @staticmethod
    def _ping(storage: Storage) -> None:
        try:
            storage.ping()
        except StorageError as exc:
            log.warning("Keboola is not answering: %s", exc)

    @staticmethod
    def _jittered(seconds: float) -> float:
        """Syncthing's 3/4-5/4 randomisation keeps many daemons from rescanning in step."""
        return seconds * random.uniform(0.75, 1.25)

    def _shutdown(self, scheduler: Scheduler, watcher: Watcher | None, health: Health) -> int:
        self._acknowledge_stop()
        if watcher is not None:
            watcher.stop()
        finished = scheduler.wait_idle(self.config.daemon.shutdown_timeout_seconds)
        if not finished:
            log.warning(
                "loads still in flight after %.0f s; abandoning them (the next start resolves them with Keboola)",
                self.config.daemon.shutdown_timeout_seconds,
            )
            self.abandon.set()
            scheduler.wait_idle(2.0)
        health.write(stopped=True, last_keboola_ok_at=None)
        log.info("stopped")
        return 0
