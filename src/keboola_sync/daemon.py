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
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType

from . import __version__
from .config import Config
from .decide import judged_by_the_table
from .errors import LedgerUnwritable
from .health import Health
from .layout import Layout
from .live import ConfigFiles, LiveConfig, advice_for, in_container, set_token_advice
from .preflight import StartupError, check_folder, claim_spool, connect, lock_ledger
from .reload import Reloader
from .rescan import Rescan, RescanNotes, RescanReport, ScanContext, folder_health
from .scheduler import Scheduler
from .spool import release_run_dir
from .state import Ledger
from .storage import Abandoned, Storage, StorageError, TokenInfo
from .sync import Outcome, Status, SyncService
from .telemetry import Telemetry
from .watcher import Watcher

__all__ = ["Daemon", "StartupError", "check_folder", "connect"]  # the last three: re-exported from preflight

log = logging.getLogger("keboola_sync.daemon")

# How long a stop during start-up waits for the main thread (which may be inside one Keboola request that
# cannot be interrupted) before the process leaves without it: nothing is loading yet, so nothing is lost.
STARTUP_STOP_GRACE_SECONDS = 2.0


class Daemon:
    """`run` and `sync --once` share everything but the watcher and the exit condition."""

    def __init__(self, config: Config, files: ConfigFiles | None = None) -> None:
        # The configuration in force, swapped whole when config.yaml changes (`run` with `files` only).
        self.live = LiveConfig(config)
        self.files = files
        self.stop = threading.Event()
        self._reload_now = threading.Event()  # SIGHUP: load config.yaml again
        self.abandon = threading.Event()
        self._rescan_now = threading.Event()
        self._hurry = threading.Event()  # a second signal: leave now
        self._signal_name = ""
        self._stop_said = False
        self._loading = threading.Event()  # start-up is over: workers may be loading
        self._finished = threading.Event()  # run() has returned
        self._say_lock = threading.Lock()
        self._notes = RescanNotes()
        self._last_scan_wall: float | None = None
        self._scanned_once = False
        self._root_gone = threading.Event()  # set by the watcher: the watched folder itself was deleted
        self._root_deleted = False  # ... and no first-level folder has been seen in it since
        self._rearm = False  # ... and the watch has not been re-armed on the folder created again
        self.telemetry = Telemetry(config)  # metrics, the monitoring endpoint, notifications
        self.on_started: Callable[[], None] | None = None  # told once start-up is over (startup.StartupWait)

    @property
    def config(self) -> Config:
        return self.live.config

    @property
    def layout(self) -> Layout:
        return self.live.layout

    # -- signals ---------------------------------------------------------------------------------------

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        """SIGHUP reloads the configuration (as Prometheus does); the main loop does the work."""
        self._reload_now.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Only sets events: logging (its locks) and timers are not safe inside a signal handler."""
        if self.stop.is_set():
            self._hurry.set()
            return
        self._signal_name = signal.Signals(signum).name
        self.stop.set()

    def install_signal_handlers(self, early: Iterable[int] = ()) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads the configuration. `early`: signals received before the
        daemon existed (held by the CLI while the modules load); they count as if they came now."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hangup)
        for signum in early:
            (self._on_hangup if signum == signal.SIGHUP else self._on_signal)(signum, None)
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

    def _on_root_gone(self) -> None:
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
            storage, info = connect(cfg, self.abandon, meter=self.telemetry.metrics)
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
        if self.on_started is not None:
            self.on_started()
        try:
            ledger = Ledger(cfg.state.path)
            try:
                return self._run_with(storage, info, ledger, run_dir, once=once)
            finally:
                ledger.close()
        finally:
            release_run_dir(run_dir, spool_lock)

    def _stopped(self) -> int:
        """Start-up ends early because a stop was asked for: exit 0, nothing half-done."""
        self._say_startup_stop()
        log.info("stopped")
        return 0

    def _run_with(self, storage: Storage, info: TokenInfo, ledger: Ledger, run_dir: Path, *, once: bool) -> int:
        cfg = self.config
        # Buckets without `c-` on projects with `disable-legacy-bucket-prefix` (§12): predicted from the
        # token's and the index's features; the ids Keboola returns (kept in the ledger) win anyway.
        self.live.use_bucket_prefix("c-" if info.legacy_bucket_prefix else "")
        self.telemetry.start(ledger)
        try:
            # Spools go to this process's own locked sub-directory: another daemon sharing spool_dir (with
            # another ledger) never removes them, and this one never removes the other's.
            service = SyncService(self.live, storage, ledger, spool_dir=run_dir)
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
                stable_seconds=lambda: self.config.watch.stable_seconds,
                workers=cfg.upload.concurrency,
                stop=self.stop,
                hooks=self.telemetry,
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
                    on_root_gone=self._on_root_gone,
                )
                log.info("watching with %s observer: %s", watcher.mode, watcher.reason)
                watcher.start()
            self.rescan(service, scheduler, watcher)
            if once:
                return self._run_once(service, scheduler)
            reloader = None
            if self.files is not None:
                set_token_advice(advice_for(self.files.env_file, os.environ, in_container=in_container()))
                reloader = Reloader(
                    self.live,
                    self.files,
                    storage=storage,
                    ledger=ledger,
                    scheduler=scheduler,
                    watcher=watcher,
                    rescan_now=self._rescan_now.set,
                )
            self._loop(service, scheduler, watcher, storage, health, reloader)
            code = self._shutdown(scheduler, watcher, health)
            return 2 if ledger.lost is not None else code
        finally:
            self.telemetry.stop()

    def _run_once(self, service: SyncService, scheduler: Scheduler) -> int:
        tick = self._tick_seconds()
        while not self.stop.is_set():
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
                bad.append(Outcome(record.path, Status(record.state), record.error or ""))
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
        self,
        service: SyncService,
        scheduler: Scheduler,
        watcher: Watcher | None,
        storage: Storage,
        health: Health,
        reloader: Reloader | None = None,
    ) -> None:
        next_scan = time.monotonic() + self._jittered(self.config.watch.rescan_seconds)
        next_beat = 0.0
        next_keepalive = time.monotonic() + self._keepalive_every()
        keepalive: threading.Thread | None = None
        while not self.stop.is_set():
            if self._ledger_lost(service.ledger):
                break
            now = time.monotonic()
            if reloader is not None:
                self._reload(reloader, now)
            cfg = self.config  # read each turn: a reload changes intervals at once
            keepalive_every = self._keepalive_every()
            if self._rescan_now.is_set() or now >= next_scan:
                self._rescan_now.clear()
                self.rescan(service, scheduler, watcher)
                # While paused (folder missing), look again soon so the daemon resumes promptly.
                next_scan = now + (
                    cfg.watch.polling_interval_seconds if scheduler.paused else self._jittered(cfg.watch.rescan_seconds)
                )
            self.new_folders(service, scheduler)
            scheduler.tick()
            self.telemetry.tick(
                queue_length=scheduler.pending_count,
                observer=watcher.mode if watcher else None,
                last_contact=storage.last_contact,
            )
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
                    loading=self.telemetry.activity(),
                )
            self.stop.wait(self._tick_seconds())

    def _reload(self, reloader: Reloader, now: float) -> None:
        if self._reload_now.is_set():
            self._reload_now.clear()
            reloader.reload("SIGHUP")
        reloader.poll(now)

    def _keepalive_every(self) -> float:
        daemon = self.config.daemon
        return max(daemon.heartbeat_seconds, daemon.keboola_max_silence_seconds / 3)

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
