"""What every cloud uploader shares: the shape of a file still being written, the uploader interface,
and the progress line of a long upload.

Keboola's files/prepare answer says which cloud the project's file storage is on (§5.1); `keboola.Storage`
picks one uploader per cloud from it: `s3upload.S3Uploader`, `absupload.AbsUploader`, `gcsupload.GcsUploader`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..config import UploadConfig
from ..window import FileWindow
from .errors import Abandoned
from .retry import RetryPolicy

T = TypeVar("T")

log = logging.getLogger("keboola_sync.storage")


class Readable(Protocol):
    """A part body: what an HTTP client needs to send (and, on a retry, re-send) a slice of a file."""

    def read(self, size: int = -1) -> bytes: ...

    def seek(self, offset: int, whence: int = 0) -> int: ...

    def tell(self) -> int: ...

    def __len__(self) -> int:
        """The body's size: requests sends it as the Content-Length and streams the body."""
        ...


class GrowingFile(Protocol):
    """A spool the CSV pass is still writing (csvfile.SpoolReader): the upload overlaps the compression."""

    def wait_for(self, end: int) -> tuple[int, bool]:
        """Block until `end` bytes exist or the file is complete: (bytes written, complete?)."""
        ...

    def window(self, start: int, length: int) -> Readable:
        """A read-only view of [start, start + length), safe to read while other windows are read."""
        ...

    @property
    def abandoned(self) -> bool:
        """The writer gave up: whatever is uploaded from it is moot."""
        ...

    def close(self) -> None: ...


class FinishedFile:
    """A finished file seen as a GrowingFile that is already complete, so one multipart code path (with
    its per-part retries) serves finished spools and growing ones alike. Parts are read with pread from one
    descriptor, several at once, nothing held in memory. Use it as a context manager."""

    def __init__(self, path: Path, size: int) -> None:
        self._size = size
        self._fd = os.open(path, os.O_RDONLY)

    def __enter__(self) -> FinishedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(self, end: int) -> tuple[int, bool]:
        return self._size, True

    def window(self, start: int, length: int) -> Readable:
        return FileWindow(self._fd, start, length)

    @property
    def abandoned(self) -> bool:
        return False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Uploader(Protocol):
    """Puts a file where a files/prepare answer (`prepared`) says; raises on failure (the caller's retry
    policy classifies and retries). The Keboola file id is the caller's: it is in `prepared`."""

    def upload_file(self, prepared: Mapping[str, Any], path: Path, size: int, label: str) -> None:
        """Upload a finished file."""
        ...

    def upload_growing(self, prepared: Mapping[str, Any], source: GrowingFile, size_hint: int, label: str) -> None:
        """Upload a file while it is still being written, part by part as its bytes appear."""
        ...


class Meter(Protocol):
    """Where the storage door reports what it did, for the daemon's metrics (metrics.Metrics is one).
    Every method is called on the thread doing the work and must return at once."""

    def upload_progress(self, label: str, done: int, total: int) -> None: ...

    def upload_finished(self, label: str, nbytes: int, seconds: float) -> None: ...

    def job_finished(self, seconds: float) -> None: ...

    def retried(self, reason: str) -> None: ...


class NoMeter:
    """The meter of a Storage nobody watches (the CLI's commands, tests)."""

    def upload_progress(self, label: str, done: int, total: int) -> None:
        pass

    def upload_finished(self, label: str, nbytes: int, seconds: float) -> None:
        pass

    def job_finished(self, seconds: float) -> None:
        pass

    def retried(self, reason: str) -> None:
        pass


class UploadProgress:
    """Logs bytes, rate and ETA of a long upload every `interval` seconds (boto3 calls it from threads),
    reports every step to the meter, and stops the upload at shutdown."""

    def __init__(
        self, label: str, total: int, interval: float, abandon: threading.Event, meter: Meter | None = None
    ) -> None:
        self._label, self._total, self._interval, self._abandon = label, total, interval, abandon
        self._meter = meter or NoMeter()
        self._done = 0
        self._lock = threading.Lock()
        self._start = self._last = time.monotonic()

    def __call__(self, nbytes: int) -> None:
        if self._abandon.is_set():
            raise Abandoned(f"upload of {self._label} abandoned at shutdown")
        with self._lock:
            self._done += nbytes
            self._meter.upload_progress(self._label, self._done, self._total)
            now = time.monotonic()
            if now - self._last < self._interval:
                return
            self._last = now
            done = self._done
        rate = done / max(now - self._start, 1e-6)
        eta = (self._total - done) / rate if rate > 0 else float("inf")
        log.info(
            "uploading %s: %.1f/%.1f MB (%d%%), %.1f MB/s, ETA %.0f s",
            self._label,
            done / 1e6,
            self._total / 1e6,
            100 * done // max(self._total, 1),
            rate / 1e6,
            eta,
            extra={"file": self._label, "uploaded_bytes": done, "total_bytes": self._total},
        )


class CloudUploader:
    """What every cloud's uploader keeps: the settings (swapped whole on a configuration reload), the stop
    event, the one retry policy each of its requests runs under, and the meter its progress goes to."""

    def __init__(
        self,
        *,
        request_timeout: float,
        upload: UploadConfig,
        progress_seconds: float,
        abandon: threading.Event,
        policy: RetryPolicy | None = None,
        meter: Meter | None = None,
    ) -> None:
        self._request_timeout = request_timeout
        self._upload = upload
        self._progress_seconds = progress_seconds
        self._abandon = abandon
        self._policy = policy
        self._meter = meter
        self._setup()

    def _setup(self) -> None:
        """What a cloud's uploader needs besides the common settings (its clients, their lock)."""

    def use_settings(self, request_timeout: float, upload: UploadConfig, progress_seconds: float) -> None:
        """A reloaded configuration: uploads that start from now on use it."""
        self._request_timeout = request_timeout
        self._upload = upload
        self._progress_seconds = progress_seconds

    def _run(self, what: str, call: Callable[[], T]) -> T:
        """One request under the retry policy (once, without one: the caller retries)."""
        return call() if self._policy is None else self._policy.run(what, call)
