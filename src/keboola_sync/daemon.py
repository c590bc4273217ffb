"""Lifecycle: start-up checks, the scheduler, rescans, health, signals and graceful shutdown.

The scheduler is one loop (Syncthing's `folder.Serve`, style-anchors §4): path hints arrive from events
and rescans; a path is dispatched once its size/mtime/inode stayed the same for `watch.stable_seconds`
and no other load of its table is running; changes that arrive meanwhile collapse into one more load of
the newest content. Workers are daemon threads, so a stuck network call can never hold the process past
`daemon.shutdown_timeout_seconds`.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from . import __version__
from .config import Config
from .errors import ConfigError
from .fileid import Fingerprint, observe
from .health import Health
from .layout import Ignored, Rejected, Target, is_ignored_name
from .spool import clean_spool
from .state import Ledger
from .storage import Abandoned, Storage, StorageError, TokenInfo, TokenRejected
from .sync import Outcome, SyncService
from .watcher import Watcher

log = logging.getLogger("keboola_sync.daemon")


class StartupError(ConfigError):
    """Start-up cannot go on (bad token, unreachable stack, missing folder): exit code 2."""


@dataclass
class _Candidate:
    fp: Fingerprint | None
    since: float  # monotonic time the current fingerprint was first seen


@dataclass
class Counters:
    loaded: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    outcomes: dict[str, Outcome] = field(default_factory=dict)


def connect(config: Config, abandon: threading.Event | None = None) -> tuple[Storage, TokenInfo]:
    """Verify the token and that it may write (§1.3). Any problem is a StartupError naming the fix."""
    token = config.require_token()
    storage = Storage(
        config.keboola.url,
        token,
        keboola=config.keboola,
        retry=config.retry,
        upload=config.upload,
        progress_seconds=config.logging.progress_seconds,
        abandon=abandon,
    )
    try:
        info = storage.verify_token()
    except TokenRejected as exc:
        raise StartupError(
            "KBC_STORAGE_API_TOKEN",
            f"Keboola at {config.keboola.url} refused the token ({exc.code or exc.status}). "
            "Check KBC_STORAGE_API_TOKEN in .env and that KBC_STORAGE_API_HOST is the stack of "
            "your project",
        ) from exc
    except StorageError as exc:
        raise StartupError(
            "keboola.url",
            f"cannot reach Keboola at {config.keboola.url}: {exc}. Check KBC_STORAGE_API_HOST "
            "(or keboola.url) and the network",
        ) from exc
    writable = [b for b, p in info.bucket_permissions.items() if p in ("write", "manage")]
    if not info.can_manage_buckets and not writable:
        raise StartupError(
            "KBC_STORAGE_API_TOKEN",
            "the token can neither create buckets nor write to any bucket. Create a token "
            "with 'Full access to all buckets' (canManageBuckets) in Keboola",
        )
    if not info.can_manage_buckets:
        log.warning(
            "the token cannot create buckets; only folders whose buckets exist and are writable (%s) will sync",
            ", ".join(writable),
        )
    return storage, info


def check_folder(path: Path) -> None:
    if not path.exists():
        raise StartupError(
            "watch.path",
            f"the watched folder {path} does not exist. Create it or fix watch.path (in Docker: the WATCH_DIR mount)",
        )
    if not path.is_dir():
        raise StartupError("watch.path", f"{path} is not a folder. Point watch.path at a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise StartupError("watch.path", f"the watched folder {path} cannot be read. Fix its permissions")


class Scheduler:
    """Turns path hints into loads (see module docstring)."""

    def __init__(self, config: Config, service: SyncService, stop: threading.Event) -> None:
        self.config = config
        self.service = service
        self.root = config.watch.path
        self._stop = stop
        self._lock = threading.Lock()
        self._candidates: dict[str, _Candidate] = {}
        self._in_flight: set[str] = set()  # table ids being loaded
        # ("file", rel_path) | ("folder", name) | ("tables", "")
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue()
        self._folder_jobs: set[str] = set()
        self._table_check_queued = False
        self._busy = 0
        self._folders_pending: set[str] = set()
        self._events_seen: set[str] = set()  # paths announced by an event since the last full scan
        self._running: set[str] = set()  # paths being loaded now
        self._last_scan_wall: float | None = None
        self._scanned_once = False
        self._noted_ignored: set[str] = set()
        self._unreadable_folders: dict[str, str] = {}
        self.counters = Counters()
        self.paused: str | None = None
        self._workers = [
            threading.Thread(target=self._work, name=f"load-{i}", daemon=True) for i in range(config.upload.concurrency)
        ]
        self._idle = threading.Condition(self._lock)

    def start_workers(self) -> None:
        for worker in self._workers:
            worker.start()

    # -- hints ---------------------------------------------------------------------------------------

    def notify(self, rel_path: str, *, from_event: bool = False, settled: Fingerprint | None = None) -> None:
        """A hint that `rel_path` may need work. `settled`: the fingerprint of a file found at start-up
        whose mtime is already older than stable_seconds; it is dispatched after one more identical stat
        instead of a full stable window (a file still being written changes between the two stats, and
        the one streaming pass checks its fingerprint again)."""
        with self._lock:
            if from_event:
                self._events_seen.add(rel_path)
            if rel_path not in self._candidates:
                now = time.monotonic()
                since = now - self.config.watch.stable_seconds if settled is not None else now
                self._candidates[rel_path] = _Candidate(fp=settled, since=since)

    def notify_folder(self, folder: str) -> None:
        with self._lock:
            self._folders_pending.add(folder)

    # -- the loop ------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Dispatch what is stable; called every fraction of stable_seconds by the daemon loop."""
        if self.paused:
            return
        with self._lock:
            folders, self._folders_pending = self._folders_pending, set()
        for folder in sorted(folders):
            if not self.service.folder_ignored(folder):
                self._queue_folder(folder)
                self.scan_folder(folder)  # files moved in with a folder may bring no events of their own
        now = time.monotonic()
        stable = self.config.watch.stable_seconds
        with self._lock:
            items = list(self._candidates.items())
        for rel_path, cand in items:
            fp = observe(self.root / rel_path)
            with self._lock:
                if rel_path not in self._candidates:
                    continue
                if fp != cand.fp:
                    cand.fp, cand.since = fp, now
                    continue
                if fp is None:  # deleted: nothing to load, and deleting never touches Keboola
                    del self._candidates[rel_path]
                    continue
                if now - cand.since < stable:
                    continue
            target = self.service.target_for(rel_path)
            table_key = target.table_id if isinstance(target, Target) else rel_path
            with self._lock:
                if table_key in self._in_flight or rel_path not in self._candidates:
                    continue
                del self._candidates[rel_path]
                self._in_flight.add(table_key)
                self._running.add(rel_path)
                self._busy += 1
            self._queue.put(("file", rel_path))

    def _queue_folder(self, folder: str) -> None:
        """Bucket creation for a new folder runs on a worker too: Keboola calls never block the loop."""
        if self.service.bucket_known(folder):
            return
        with self._lock:
            if folder in self._folder_jobs:
                return
            self._folder_jobs.add(folder)
            self._busy += 1
        self._queue.put(("folder", folder))

    def _queue_table_check(self) -> None:
        with self._lock:
            if self._table_check_queued:
                return
            self._table_check_queued = True
            self._busy += 1
        self._queue.put(("tables", ""))

    def _check_tables(self) -> None:
        try:
            if not self._stop.is_set():
                for rel_path in self.service.tables_dropped_remotely():
                    self.notify(rel_path)
        except (StorageError, Abandoned) as exc:
            log.warning("cannot list the tables in Keboola (%s); checking again at the next rescan", exc)
        except Exception:  # the daemon never dies of a check
            log.exception("unexpected error while checking the tables in Keboola")
        finally:
            with self._lock:
                self._table_check_queued = False
                self._busy -= 1
                self._idle.notify_all()

    def _ensure_folder(self, folder: str) -> None:
        try:
            if not self._stop.is_set():
                self.service.ensure_folder(folder)
        except Abandoned:
            pass
        except StorageError as exc:
            log.error(
                "cannot create the bucket for folder %s: %s; trying again at the next rescan or load",
                folder,
                exc,
                extra={"folder": folder},
            )
        except Exception:  # the daemon never dies of one folder
            log.exception("unexpected error while creating the bucket for folder %s", folder)
        finally:
            with self._lock:
                self._folder_jobs.discard(folder)
                self._busy -= 1
                self._idle.notify_all()

    def _work(self) -> None:
        while True:
            kind, rel_path = self._queue.get()
            if kind == "folder":
                self._ensure_folder(rel_path)
                continue
            if kind == "tables":
                self._check_tables()
                continue
            target = self.service.target_for(rel_path)
            table_key = target.table_id if isinstance(target, Target) else rel_path
            try:
                if self._stop.is_set():
                    continue  # not started: the next start finds it again by fingerprint
                outcome = self.service.sync(rel_path)
                self._count(outcome)
                if outcome.status == "changed":
                    self.notify(rel_path)
            except Exception:  # the daemon never dies of one file
                log.exception("unexpected error while syncing %s; it is tried again at the next rescan", rel_path)
            finally:
                with self._lock:
                    self._in_flight.discard(table_key)
                    self._running.discard(rel_path)
                    self._busy -= 1
                    self._idle.notify_all()

    def _count(self, outcome: Outcome) -> None:
        with self._lock:
            self.counters.outcomes[outcome.rel_path] = outcome
            if outcome.status in ("loaded", "created"):
                self.counters.loaded += 1
            elif outcome.status == "skipped":
                self.counters.skipped += 1
            elif outcome.status == "failed":
                self.counters.failed += 1
            elif outcome.status == "unchanged":
                self.counters.unchanged += 1

    def idle(self) -> bool:
        with self._lock:
            return not self._candidates and self._busy == 0 and not self._folders_pending

    def wait_idle(self, timeout: float) -> bool:
        """Used by shutdown: wait for loads in flight to finish."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.2))
        return True

    @property
    def pending_count(self) -> int:
        with self._lock:
            return len(self._candidates) + self._busy

    # -- rescans -------------------------------------------------------------------------------------

    def folder_health(self) -> str | None:
        """Why the folder cannot be trusted right now (missing, not readable, emptied), or None."""
        root = self.root
        try:
            if not root.is_dir():
                return f"the watched folder {root} is missing (unmounted volume?)"
            has_entries = any(True for _ in os.scandir(root))
        except OSError as exc:
            return f"the watched folder {root} cannot be read: {exc}"
        if not has_entries and self.service.ledger.all():
            return f"the watched folder {root} is empty although files were synced from it (unmounted volume?)"
        return None

    def full_scan(self, *, watcher: Watcher | None = None) -> None:
        """Stat every CSV; hint those that need work. Never reads a file, never calls Keboola, so a
        restart over 10,000 unchanged files finishes in seconds."""
        problem = self.folder_health()
        if problem:
            if self.paused != problem:
                log.error("%s; pausing: nothing is loaded and nothing in Keboola is touched until it is back", problem)
            self.paused = problem
            return
        if self.paused:
            log.info("the watched folder %s is back; resuming", self.root)
            self.paused = None
            if watcher is not None:
                watcher.start()
        records = {r.path: r for r in self.service.ledger.all()}
        missed: list[str] = []
        now_wall = time.time()
        with self._lock:
            events_seen, self._events_seen = self._events_seen, set()
            since, self._last_scan_wall = self._last_scan_wall, now_wall
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except OSError as exc:
            log.error("cannot list %s: %s", self.root, exc)
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if is_ignored_name(entry.name, self.config.watch.ignore_patterns):
                    continue
                folder = entry.name
                if self.service.folder_ignored(folder):
                    continue
                self._queue_folder(folder)
                self._scan_files(folder, records, events_seen, now_wall, since, missed)
            else:
                self._note_ignored(entry.name)
        self._scanned_once = True
        if any(r.state == "synced" for r in records.values()):
            self._queue_table_check()  # tables deleted in Keboola behind our back come back
        if missed and watcher is not None and watcher.mode == "native" and self.config.watch.observer == "auto":
            watcher.switch_to_polling(
                f"a rescan found {len(missed)} changed file(s) that no file event announced "
                f"(e.g. {missed[0]}); events do not arrive reliably on this mount"
            )

    def scan_folder(self, folder: str) -> None:
        records = {r.path: r for r in self.service.ledger.all() if r.path.startswith(folder + "/")}
        self._scan_files(folder, records, set(), time.time(), None, [])

    def _scan_files(
        self, folder: str, records: dict, events_seen: set[str], now_wall: float, since: float | None, missed: list[str]
    ) -> None:
        """Hint every file that needs work. A file changed since the previous full scan (and settled)
        that no event announced and nobody is loading is a missed event: the watcher may need polling."""
        try:
            entries = list(os.scandir(self.root / folder))
        except (FileNotFoundError, NotADirectoryError):
            log.debug("folder %s is gone (deleted or renamed); nothing in Keboola is touched", folder)
            return
        except OSError as exc:
            problem = f"folder {folder} cannot be read ({exc.strerror or exc}); its files are not synced"
            if self._unreadable_folders.get(folder) != problem:
                self._unreadable_folders[folder] = problem
                fix = (
                    f"Make it readable: chmod a+rx '{folder}'"
                    if exc.errno in (errno.EACCES, errno.EPERM)
                    else "Check the folder and the mount"
                )
                log.warning("%s. %s", problem, fix, extra={"folder": folder})
            return
        if self._unreadable_folders.pop(folder, None):
            log.info("folder %s can be read again", folder, extra={"folder": folder})
        now = time.time()
        for entry in entries:
            rel_path = f"{folder}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                self._note_ignored(rel_path + "/")
                continue
            target = self.service.target_for(rel_path)
            if isinstance(target, Ignored):
                if target.notable:
                    self._note_ignored(rel_path, target.reason)
                continue
            try:
                st = entry.stat(follow_symlinks=True)
                fp = Fingerprint.of(st)
            except OSError:  # a broken link or no permission: sync reports it once per version
                fp = observe(self.root / rel_path)
                if fp is not None and self.service.needs_work(rel_path, fp, records.get(rel_path), now):
                    self.notify(rel_path)
                continue
            if isinstance(target, Rejected) or self.service.needs_work(rel_path, fp, records.get(rel_path), now):
                with self._lock:
                    known = rel_path in self._candidates or rel_path in self._running
                settled = now_wall - 2 * self.config.watch.stable_seconds - 1
                if not known and since is not None and rel_path not in events_seen and since < st.st_mtime < settled:
                    missed.append(rel_path)
                first_scan = since is None and not self._scanned_once
                old_enough = now_wall - st.st_mtime >= self.config.watch.stable_seconds
                self.notify(rel_path, settled=fp if first_scan and old_enough else None)

    def _note_ignored(self, rel_path: str, reason: str | None = None) -> None:
        """Things a user may not expect to be ignored are said once, at INFO."""
        if rel_path in self._noted_ignored:
            return
        self._noted_ignored.add(rel_path)
        if reason is None:
            if rel_path.endswith("/"):
                reason = "folders inside folders are not synced (only first-level folders are buckets)"
            elif rel_path.lower().endswith(tuple(self.config.watch.csv_extensions)):
                reason = "CSV files directly in the watched folder are not synced; put them in a folder"
            else:
                return
        log.info("ignoring %s: %s", rel_path, reason, extra={"file": rel_path, "outcome": "ignored"})


class Daemon:
    """`run` and `sync --once` share everything but the watcher and the exit condition."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop = threading.Event()
        self.abandon = threading.Event()
        self._rescan_now = threading.Event()
        self._signals = 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            timeout = self.config.daemon.shutdown_timeout_seconds
            log.info(
                "received %s: finishing loads in flight (up to %.0f s), starting nothing new",
                signal.Signals(signum).name,
                timeout,
            )
            self.stop.set()
            # Whatever is still waiting on Keboola when the time is up gives up (the ledger keeps the job).
            timer = threading.Timer(timeout, self.abandon.set)
            timer.daemon = True
            timer.start()
        else:
            log.warning("second signal: stopping now; the next start finishes what was in flight")
            self.abandon.set()
            logging.shutdown()
            os._exit(0)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def run(self, *, once: bool = False) -> int:
        cfg = self.config
        check_folder(cfg.watch.path)
        storage, info = connect(cfg, self.abandon)
        storage.warm_up()
        log.info(
            "keboola-sync %s: project %s (%s), watching %s -> stage %s",
            __version__,
            info.project_name,
            info.project_id,
            cfg.watch.path,
            cfg.keboola.stage,
        )
        cfg.upload.spool_dir.mkdir(parents=True, exist_ok=True)
        clean_spool(cfg.upload.spool_dir)
        ledger = Ledger(cfg.state.path)
        try:
            service = SyncService(cfg, storage, ledger)
            try:
                service.resolve_in_flight()
            except Abandoned:
                log.info("stopped while resolving loads of the previous run; the next start goes on")
                return 0
            if self.stop.is_set():
                return 0
            scheduler = Scheduler(cfg, service, self.stop)
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
            scheduler.full_scan(watcher=watcher)
            if once:
                return self._run_once(scheduler, ledger)
            self._loop(scheduler, watcher, storage, health)
            return self._shutdown(scheduler, watcher, health)
        finally:
            ledger.close()

    def _run_once(self, scheduler: Scheduler, ledger: Ledger) -> int:
        tick = self._tick_seconds()
        while not self.stop.is_set():
            if scheduler.paused:
                log.error("sync --once: %s", scheduler.paused)
                return 1
            scheduler.tick()
            if scheduler.idle():
                break
            self.stop.wait(tick)
        if self.stop.is_set():
            scheduler.wait_idle(self.config.daemon.shutdown_timeout_seconds)
            self.abandon.set()
        bad = [o for o in scheduler.counters.outcomes.values() if o.status in ("failed", "skipped", "abandoned")]
        # Files judged earlier and still bad count too: the exit code describes the folder, not this run.
        for record in ledger.all():
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

    def _loop(self, scheduler: Scheduler, watcher: Watcher | None, storage: Storage, health: Health) -> None:
        cfg = self.config
        tick = self._tick_seconds()
        next_scan = time.monotonic() + self._jittered(cfg.watch.rescan_seconds)
        next_beat = 0.0
        keepalive_every = max(cfg.daemon.heartbeat_seconds, cfg.daemon.keboola_max_silence_seconds / 3)
        next_keepalive = time.monotonic() + keepalive_every
        keepalive: threading.Thread | None = None
        while not self.stop.is_set():
            now = time.monotonic()
            if self._rescan_now.is_set() or now >= next_scan:
                self._rescan_now.clear()
                scheduler.full_scan(watcher=watcher)
                # While paused (folder missing), look again soon so the daemon resumes promptly.
                next_scan = now + (
                    cfg.watch.polling_interval_seconds if scheduler.paused else self._jittered(cfg.watch.rescan_seconds)
                )
            scheduler.tick()
            if now >= next_keepalive and not (keepalive and keepalive.is_alive()):
                next_keepalive = now + keepalive_every
                if time.time() - (storage.last_contact or 0) > keepalive_every:
                    # In its own thread: a hanging network must not stall the scheduler or the heartbeat.
                    keepalive = threading.Thread(target=self._ping, args=(storage,), name="keepalive", daemon=True)
                    keepalive.start()
            if now >= next_beat:
                next_beat = now + cfg.daemon.heartbeat_seconds
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
