"""Turns path hints into loads: the stability window, one load per table, and the workers.

One loop (Syncthing's `folder.Serve`, style-anchors §4): path hints arrive from events and rescans; a
path is dispatched once its size/mtime/inode stayed the same for `watch.stable_seconds` and no other
load of its table is running; changes that arrive meanwhile collapse into one more load of the newest
content. Workers are daemon threads, so a stuck network call can never hold the process past
`daemon.shutdown_timeout_seconds`. The clock and the stat are injectable so unit tests can script time
and fingerprints without sleeping.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .errors import LedgerUnwritable
from .fileid import Fingerprint, observe
from .layout import Ignored, Rejected, Target
from .storage import Abandoned, StorageError
from .sync import Outcome

log = logging.getLogger("keboola_sync.daemon")

# The shortest sleep of the daemon's loop between two ticks (next_wait).
MIN_WAIT_SECONDS = 0.01


class Service(Protocol):
    """What the scheduler needs from the sync service (`sync.SyncService`)."""

    def target_for(self, rel_path: str) -> Target | Ignored | Rejected: ...

    def sync(self, rel_path: str) -> Outcome: ...

    def bucket_known(self, folder: str) -> bool: ...

    def ensure_folder(self, folder: str) -> str | None: ...

    def tables_dropped_remotely(self) -> Iterable[str]: ...


@dataclass(frozen=True)
class LoadFile:
    """Load one stable file; `table_key` holds its table's slot until the load ends."""

    rel_path: str
    table_key: str


@dataclass(frozen=True)
class CreateBucket:
    """Check or create the bucket of a new first-level folder (on a worker: Keboola never blocks the loop)."""

    folder: str


@dataclass(frozen=True)
class CheckTables:
    """Look for tables deleted in Keboola behind our back; their files are loaded again."""


@dataclass(frozen=True)
class Retire:
    """The worker that takes this leaves: upload.concurrency was lowered while running. Queued behind the
    jobs already waiting, so a lower count takes effect as loads finish, never by cutting one short."""


Job = LoadFile | CreateBucket | CheckTables


@dataclass
class _Candidate:
    fp: Fingerprint | None
    since: float  # clock time the current fingerprint was first seen


@dataclass
class Counters:
    loaded: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome.rel_path] = outcome
        if outcome.status in ("loaded", "created"):
            self.loaded += 1
        elif outcome.status == "skipped":
            self.skipped += 1
        elif outcome.status == "failed":
            self.failed += 1
        elif outcome.status == "unchanged":
            self.unchanged += 1


class LoadHooks:
    """Told when a load starts and how it ended (the daemon's metrics and notifications); no-ops here.
    Called on the worker thread: they must return at once and never raise."""

    def started(self, rel_path: str) -> None:
        pass

    def ended(self, rel_path: str, outcome: Outcome | None) -> None:
        """`outcome` None: the load ended in an unexpected error (logged here)."""


def quiet_for(fp: Fingerprint | None, wall_now: float, stable_seconds: float) -> float:
    """How long the file has not been written, by its mtime, capped at `stable_seconds` (0 for none).

    An mtime in the future (another machine's clock on a network mount) gives no credit. An mtime in the
    past by more than the window (a file renamed in, `cp -p`, `rsync -t`) counts as the whole window, so
    the file goes at the next identical stat, as a file found settled at start-up does."""
    if fp is None:
        return 0.0
    age = wall_now - fp.mtime_ns / 1e9
    return min(max(age, 0.0), stable_seconds) if age >= 0 else 0.0


class Scheduler:
    """Turns path hints into jobs (see module docstring)."""

    def __init__(
        self,
        service: Service,
        root: Path,
        *,
        stable_seconds: float | Callable[[], float],
        workers: int,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        stat: Callable[[Path], Fingerprint | None] = observe,
        hooks: LoadHooks | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self._hooks = hooks or LoadHooks()
        self.root = root
        # A callable is read per use: the daemon passes the reloadable watch.stable_seconds.
        self._stable_seconds = stable_seconds
        self._stop = stop
        self._clock = clock
        self._wall = wall  # the clock file mtimes are compared with (quiet_for)
        self._stat = stat
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._candidates: dict[str, _Candidate] = {}
        self._in_flight: set[str] = set()  # table keys being loaded
        self._running: set[str] = set()  # paths being loaded now
        self._folder_jobs: set[str] = set()
        self._table_check_queued = False
        self._busy = 0  # jobs queued or running
        self._queue: queue.Queue[Job | Retire] = queue.Queue()
        self._folders_pending: set[str] = set()
        self._events_seen: set[str] = set()  # paths announced by an event since the last full scan
        self.counters = Counters()
        self.paused: str | None = None  # why nothing is dispatched (the folder cannot be trusted)
        self._worker_count = workers
        self._workers_started = 0

    @property
    def stable_seconds(self) -> float:
        value = self._stable_seconds
        return value() if callable(value) else value

    def start_workers(self) -> None:
        self._start_workers(self._worker_count)

    def _start_workers(self, count: int) -> None:
        for _ in range(count):
            name = f"load-{self._workers_started}"
            self._workers_started += 1
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def set_workers(self, count: int) -> None:
        """A reloaded upload.concurrency: start the missing workers, or ask the extra ones to leave once
        they are free. Called from the daemon's loop only."""
        more = count - self._worker_count
        self._worker_count = count
        if more > 0:
            self._start_workers(more)
        for _ in range(-more):
            self._queue.put(Retire())

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
                now = self._clock()
                since = now - self.stable_seconds if settled is not None else now
                self._candidates[rel_path] = _Candidate(fp=settled, since=since)
                log.debug("%s: noticed (%s)", rel_path, "event" if from_event else "rescan or load")

    def notify_folder(self, folder: str) -> None:
        with self._lock:
            self._folders_pending.add(folder)

    def take_new_folders(self) -> list[str]:
        """Folders announced by events since the last call, for the daemon to look into."""
        with self._lock:
            folders, self._folders_pending = self._folders_pending, set()
        return sorted(folders)

    def take_events_seen(self) -> set[str]:
        """Paths events announced since the last full scan (a rescan tells missed events from these)."""
        with self._lock:
            seen, self._events_seen = self._events_seen, set()
        return seen

    def known(self) -> set[str]:
        """Paths waiting for their stable window or being loaded now."""
        with self._lock:
            return set(self._candidates) | self._running

    # -- the loop ------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Dispatch what is stable; called every fraction of stable_seconds by the daemon loop."""
        if self.paused:
            return
        now = self._clock()
        with self._lock:
            items = list(self._candidates.items())
        for rel_path, cand in items:
            fp = self._stat(self.root / rel_path)
            if not self._settled(rel_path, cand, fp, now):
                continue
            target = self.service.target_for(rel_path)
            table_key = target.table_id.lower() if isinstance(target, Target) else rel_path  # §12: case-insensitive
            with self._lock:
                if table_key in self._in_flight or rel_path not in self._candidates:
                    continue  # one load per table: the newest content goes once this one ends
                del self._candidates[rel_path]
                self._in_flight.add(table_key)
                self._running.add(rel_path)
                self._busy += 1
            log.debug("%s: stable, dispatched", rel_path)
            self._queue.put(LoadFile(rel_path, table_key))

    def next_wait(self, longest: float) -> float:
        """How long the daemon's loop may sleep before the next tick: until the earliest window ends, so a
        file goes the moment it has been quiet for stable_seconds rather than up to a tick later; at most
        `longest` (the ordinary tick, which also stats new candidates and confirms settled ones), at least
        MIN_WAIT_SECONDS. Windows already over (a table busy loading) do not shorten the sleep."""
        now = self._clock()
        stable = self.stable_seconds
        with self._lock:
            ends = [c.since + stable - now for c in self._candidates.values() if c.fp is not None]
        return max(MIN_WAIT_SECONDS, min([longest, *(end for end in ends if end > 0)]))

    def _settled(self, rel_path: str, cand: _Candidate, fp: Fingerprint | None, now: float) -> bool:
        with self._lock:
            if rel_path not in self._candidates:
                return False
            if fp != cand.fp:
                # The window runs from the file's last write, not from our first look at it: a file
                # renamed in with an old mtime (or saved a moment before its event was handled) has been
                # quiet that long already. One more identical stat is still required.
                cand.fp = fp
                cand.since = now - quiet_for(fp, self._wall(), self.stable_seconds)
                return False
            if fp is None:  # deleted: nothing to load, and deleting never touches Keboola
                del self._candidates[rel_path]
                return False
            return now - cand.since >= self.stable_seconds

    def queue_folder(self, folder: str) -> None:
        if self.service.bucket_known(folder):
            return
        with self._lock:
            if folder in self._folder_jobs:
                return
            self._folder_jobs.add(folder)
            self._busy += 1
        self._queue.put(CreateBucket(folder))

    def queue_table_check(self) -> None:
        with self._lock:
            if self._table_check_queued:
                return
            self._table_check_queued = True
            self._busy += 1
        self._queue.put(CheckTables())

    # -- workers -------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if isinstance(job, Retire):
                return
            self.run_job(job)

    def run_next(self) -> bool:
        """Run one queued job on the calling thread (what a worker does); False if none is queued."""
        try:
            job = self._queue.get_nowait()
        except queue.Empty:
            return False
        if not isinstance(job, Retire):
            self.run_job(job)
        return True

    def run_job(self, job: Job) -> None:
        try:
            if isinstance(job, LoadFile):
                self._load(job)
            elif isinstance(job, CreateBucket):
                self._ensure_folder(job.folder)
            else:
                self._check_tables()
        finally:
            with self._lock:
                if isinstance(job, LoadFile):
                    self._in_flight.discard(job.table_key)
                    self._running.discard(job.rel_path)
                elif isinstance(job, CreateBucket):
                    self._folder_jobs.discard(job.folder)
                else:
                    self._table_check_queued = False
                self._busy -= 1
                self._idle.notify_all()

    def _load(self, job: LoadFile) -> None:
        if self._stop.is_set():
            return  # not started: the next start finds it again by fingerprint
        self._hooks.started(job.rel_path)
        try:
            outcome = self.service.sync(job.rel_path)
        except LedgerUnwritable:
            return  # the ledger said it once; the next rescan finds the file again by fingerprint
        except Exception:  # the daemon never dies of one file
            log.exception("unexpected error while syncing %s; it is tried again at the next rescan", job.rel_path)
            self._hooks.ended(job.rel_path, None)
            return
        with self._lock:
            self.counters.count(outcome)
        self._hooks.ended(job.rel_path, outcome)
        if outcome.status == "changed":
            self.notify(job.rel_path)

    def _check_tables(self) -> None:
        try:
            if not self._stop.is_set():
                for rel_path in self.service.tables_dropped_remotely():
                    self.notify(rel_path)
        except (StorageError, Abandoned) as exc:
            log.warning("cannot list the tables in Keboola (%s); checking again at the next rescan", exc)
        except LedgerUnwritable:
            pass  # the ledger said it once; checked again at the next rescan
        except Exception:  # the daemon never dies of a check
            log.exception("unexpected error while checking the tables in Keboola")

    def _ensure_folder(self, folder: str) -> None:
        try:
            if not self._stop.is_set():
                self.service.ensure_folder(folder)
        except (Abandoned, LedgerUnwritable):
            pass  # shutdown, or the ledger said it once: tried again at the next rescan or load
        except StorageError as exc:
            log.error(
                "cannot create the bucket for folder %s: %s; trying again at the next rescan or load",
                folder,
                exc,
                extra={"folder": folder},
            )
        except Exception:  # the daemon never dies of one folder
            log.exception("unexpected error while creating the bucket for folder %s", folder)

    # -- state for the daemon ------------------------------------------------------------------------

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
