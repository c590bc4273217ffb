"""Lifecycle: start-up, the main loop (rescans, health, keep-alive), and graceful shutdown.

The rooms it runs: `preflight` (start-up checks), `scheduler` (stability window, one load per table,
workers), `rescan` (walks the folder and reports) and `rescan_actor` (acts on the report), `signals`
(handlers only set events; the reactions and their log lines happen outside the handler).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .config import Config
from .errors import LedgerUnwritable
from .health import Health
from .live import ConfigFiles, FollowsLiveConfig, LiveConfig, advice_for, in_container, set_token_advice
from .preflight import StartupError, check_folder, claim_spool, connect, lock_ledger
from .rescan_actor import RescanActor
from .scheduler import Scheduler
from .signals import Signals
from .spool import release_run_dir
from .state import Ledger
from .storage import Abandoned, Storage, StorageError, TokenInfo
from .sync import Outcome, Status, SyncService
from .telemetry import Telemetry

if TYPE_CHECKING:  # `run` only: `sync --once` never imports watchdog (issue 18.3)
    from .reload import Reloader
    from .watcher import Watcher

__all__ = ["Daemon", "StartupError", "check_folder", "connect"]  # the last three: re-exported from preflight

log = logging.getLogger("keboola_sync.daemon")

# How often `sync --once` asks whether its loads are done (a lock and three checks, no file system call).
ONCE_IDLE_POLL_SECONDS = 0.02


class Daemon(FollowsLiveConfig):
    """`run` and `sync --once` share everything but the watcher and the exit condition."""

    def __init__(self, config: Config, files: ConfigFiles | None = None) -> None:
        # The configuration in force, swapped whole when config.yaml changes (`run` with `files` only).
        self.live = LiveConfig(config)
        self.files = files
        self.signals = Signals(self.live)  # stop and reload events, said once (signals.py)
        self.stop = self.signals.stop
        self.abandon = self.signals.abandon
        self._rescan_now = threading.Event()
        self.rescans = RescanActor(self.live, self._rescan_now)  # acting on rescan reports (rescan_actor.py)
        self.telemetry = Telemetry(config)  # metrics, the monitoring endpoint, notifications
        self.on_started: Callable[[], None] | None = None  # told once start-up is over (startup.StartupWait)

    def install_signal_handlers(self, early: Iterable[int] = ()) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads the configuration (see `signals`)."""
        self.signals.install(early)

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
            self.signals.finished.set()

    def _run_locked(self, *, once: bool) -> int:
        cfg = self.config
        check_folder(cfg.watch.path)
        if self.stop.is_set():
            return self._stopped()
        try:
            storage, info = connect(cfg, self.abandon, meter=self.telemetry.metrics, preload=True)
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
        self.signals.say_startup_stop()
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
                self.signals.acknowledge_stop()
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
            self.signals.loading.set()  # from here a stop finishes what is in flight (graceful shutdown)
            scheduler.start_workers()
            health = Health(cfg)
            watcher = None
            if not once:
                from .watcher import Watcher

                watcher = Watcher(
                    cfg.watch.path,
                    setting=cfg.watch.observer,
                    polling_interval=cfg.watch.polling_interval_seconds,
                    on_file=lambda p: scheduler.notify(p, from_event=True),
                    on_folder=scheduler.notify_folder,
                    on_overflow=lambda: self._rescan_now.set(),
                    on_root_gone=self.rescans.on_root_gone,
                )
                log.info("watching with %s observer: %s", watcher.mode, watcher.reason)
                watcher.start()
            self.rescans.rescan(service, scheduler, watcher)
            if once:
                return self._run_once(service, scheduler)
            reloader = None
            if self.files is not None:
                from .reload import Reloader

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
        next_tick = 0.0
        while not self.stop.is_set():
            if self.signals.ledger_lost(service.ledger):
                break
            if scheduler.paused:
                log.error("sync --once: %s", scheduler.paused)
                return 1
            now = time.monotonic()
            if now >= next_tick:  # files waiting for their stable window are looked at once a tick
                self.rescans.new_folders(service, scheduler)
                scheduler.tick()
                # The next look when the earliest window ends (at most a tick away).
                next_tick = time.monotonic() + scheduler.next_wait(tick)
            if scheduler.idle():
                break
            # Asked more often than a tick: the run ends when its last load does, not up to a tick later.
            self.stop.wait(max(0.0, min(ONCE_IDLE_POLL_SECONDS, next_tick - time.monotonic())))
        if self.stop.is_set():
            self.signals.acknowledge_stop()
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
            if self.signals.ledger_lost(service.ledger):
                break
            now = time.monotonic()
            if reloader is not None:
                self._reload(reloader, now)
            cfg = self.config  # read each turn: a reload changes intervals at once
            keepalive_every = self._keepalive_every()
            if self._rescan_now.is_set() or now >= next_scan:
                self._rescan_now.clear()
                self.rescans.rescan(service, scheduler, watcher)
                # While paused (folder missing), look again soon so the daemon resumes promptly.
                next_scan = now + (
                    cfg.watch.polling_interval_seconds if scheduler.paused else self._jittered(cfg.watch.rescan_seconds)
                )
            self.rescans.new_folders(service, scheduler)
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
            self.stop.wait(scheduler.next_wait(self._tick_seconds()))

    def _reload(self, reloader: Reloader, now: float) -> None:
        if self.signals.reload_now.is_set():
            self.signals.reload_now.clear()
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
        self.signals.acknowledge_stop()
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
