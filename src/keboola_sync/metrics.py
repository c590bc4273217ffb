"""What the daemon has done so far, as numbers: loads by outcome, bytes sent, retries, upload and job times.

Why plain counters and not prometheus_client objects: the daemon counts whether or not anyone scrapes it,
and most people never turn the monitoring endpoint on. Counting here costs a lock and an addition, and
`keboola-sync health`/`status` import nothing more; `monitor.py` turns a snapshot into the Prometheus text
format (with prometheus_client) only when `monitoring.listen` is set.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Upload and job durations span a 1 KB file (well under a second) to a 5 GB one (many minutes).
DURATION_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass
class Histogram:
    """Cumulative-bucket histogram in Prometheus' sense (`le` upper bounds, +Inf implied)."""

    bounds: tuple[float, ...] = DURATION_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """[(le, count of observations <= le), ..., ("+Inf", all)] as the text format wants them."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.total)


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of every number, taken under the lock, for one scrape."""

    loads: dict[str, int]
    uploaded_bytes: int
    retries: dict[str, int]
    upload_seconds: Histogram
    job_seconds: Histogram
    queue_length: int
    last_keboola_contact: float
    observer_mode: str


@dataclass
class Loading:
    """One load in progress, as the status page and `status` show it."""

    file: str
    phase: str  # reading (the one pass over the file), uploading, importing (Keboola's job)
    started: float  # time.monotonic() of the phase's start
    done: int = 0
    total: int = 0

    def describe(self, now: float) -> dict[str, Any]:
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed if self.phase == "uploading" and self.done else 0.0
        eta = (self.total - self.done) / rate if rate and self.total >= self.done else None
        return {
            "file": self.file,
            "phase": self.phase,
            "bytes": self.done,
            "total": self.total,
            "rate": round(rate, 1),
            "eta": round(eta, 1) if eta is not None else None,
            "seconds": round(elapsed, 1),
        }


class Metrics:
    """Thread-safe counters; the scheduler's workers, the storage door and the main loop all write here.

    It is also the storage door's meter (storage.Meter): uploads report their bytes as they go, so the
    same object knows what is loading now and how far along it is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loads: Counter[str] = Counter()
        self._uploaded_bytes = 0
        self._retries: Counter[str] = Counter()
        self._upload_seconds = Histogram()
        self._job_seconds = Histogram()
        self._queue_length = 0
        self._last_keboola_contact = 0.0
        self._observer_mode = ""
        self._loading: dict[str, Loading] = {}

    # -- what loads now (scheduler hooks, then the uploads' progress) ------------------------------

    def load_started(self, rel_path: str) -> None:
        with self._lock:
            self._loading[rel_path] = Loading(rel_path, "reading", time.monotonic())

    def load_ended(self, rel_path: str, outcome: str | None) -> None:
        """`outcome` None: the load ended in an unexpected error (logged by the scheduler)."""
        with self._lock:
            self._loading.pop(rel_path, None)
            self._loads[outcome or "error"] += 1

    def now_loading(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [job.describe(now) for _, job in sorted(self._loading.items())]

    # -- storage.Meter: called by the storage door ------------------------------------------------

    def upload_progress(self, label: str, done: int, total: int) -> None:
        """`label` is the file's path (storage labels uploads with it); `done` counts from 0."""
        with self._lock:
            job = self._loading.get(label)
            if job is None:
                return
            if job.phase != "uploading":
                job.phase, job.started = "uploading", time.monotonic()
            job.done, job.total = done, max(total, done)

    def upload_finished(self, label: str, nbytes: int, seconds: float) -> None:
        with self._lock:
            self._uploaded_bytes += nbytes
            self._upload_seconds.observe(seconds)
            job = self._loading.get(label)
            if job is not None:  # next: Keboola's job reads the file into the table
                job.phase, job.started, job.done, job.total = "importing", time.monotonic(), nbytes, nbytes

    def job_finished(self, seconds: float) -> None:
        self.observe_job(seconds)

    def retried(self, reason: str) -> None:
        self.count_retry(reason)

    # -- counters ----------------------------------------------------------------------------------

    def count_outcome(self, outcome: str) -> None:
        with self._lock:
            self._loads[outcome] += 1

    def count_retry(self, reason: str) -> None:
        with self._lock:
            self._retries[reason] += 1

    def add_uploaded(self, nbytes: int, seconds: float) -> None:
        with self._lock:
            self._uploaded_bytes += nbytes
            self._upload_seconds.observe(seconds)

    def observe_job(self, seconds: float) -> None:
        with self._lock:
            self._job_seconds.observe(seconds)

    def set_queue_length(self, length: int) -> None:
        with self._lock:
            self._queue_length = length

    def keboola_contact(self, at: float) -> None:
        with self._lock:
            self._last_keboola_contact = max(self._last_keboola_contact, at)

    def set_observer_mode(self, mode: str) -> None:
        with self._lock:
            self._observer_mode = mode

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                loads=dict(self._loads),
                uploaded_bytes=self._uploaded_bytes,
                retries=dict(self._retries),
                upload_seconds=self._upload_seconds.copy(),
                job_seconds=self._job_seconds.copy(),
                queue_length=self._queue_length,
                last_keboola_contact=self._last_keboola_contact,
                observer_mode=self._observer_mode,
            )
