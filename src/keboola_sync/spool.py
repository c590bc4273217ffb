"""The spool: a private copy of the file (gzipped when big) that the upload reads, even while it is written.

Why a copy: the upload must not be corrupted by a later save of the source, and the hash the pass
computes must be exactly the bytes uploaded. Why readable while written: a multi-GB upload should
overlap the compression, not wait for it; `SpoolReader` follows the writer's progress and hands out
windows of what is already on disk. Why names of our own: after a crash the leftovers are ours to remove
(`clean_spool`), and nothing else in the spool directory is touched. Nothing is ever written next to the
source: spools go to `spool_dir` as a temp name + os.replace.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import SpoolError
from .gzipauto import AUTO, AUTO_LEVEL
from .layout import sanitize_name
from .lock import FileLock, held
from .pgzip import ParallelGzip
from .window import FileWindow

log = logging.getLogger("keboola_sync.daemon")  # the start-up cleanup has always logged as the daemon

QUEUE_CHUNKS = 3  # chunks buffered between the reader and the compressor (bounds memory at ~12 MiB)
# Spool files SpoolWriter makes (mkstemp: a stem, "-", 8 random characters, then the ending).
SPOOL_NAME = re.compile(r"^\.?.+-[A-Za-z0-9_]{8}\.(part|csv|csv\.gz)$")
# Each process spools into its own sub-directory (mkdtemp: "run-" and 8 random characters), locked by it.
RUN_DIR_NAME = re.compile(r"^run-[A-Za-z0-9_]{8}$")
RUN_LOCK = ".lock"
SPOOL_GUARD = ".keboola-sync.lock"  # held for milliseconds while a run directory is made or leftovers removed


@dataclass(frozen=True)
class Spool:
    """A finished spool, ready to upload."""

    path: Path  # in spool_dir; ends ".csv" or ".csv.gz" (Keboola gunzips by NAME, §4.6)
    gzipped: bool
    size: int  # bytes to upload

    def discard(self) -> None:
        """Delete the spool (after the upload, or when it is no longer needed)."""
        self.path.unlink(missing_ok=True)


def clean_spool(spool_dir: Path, *, keep: Path | None = None) -> None:
    """Spools left behind by a killed process would fill the disk over time; only ours are removed, and
    never a live process's: a run directory is removed only when its lock can be taken (its process is
    dead). Call it holding the spool directory's guard (`claim_run_dir` does)."""
    removed = _remove_spool_files(spool_dir)
    for entry in os.scandir(spool_dir):
        path = Path(entry.path)
        if path != keep and RUN_DIR_NAME.match(entry.name) and entry.is_dir(follow_symlinks=False):
            removed += _remove_dead_run_dir(path)
    if removed:
        log.info("removed %d spool file(s) left in %s by an earlier run", removed, spool_dir)


def _remove_spool_files(folder: Path) -> int:
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0  # gone already (a tmpfs cleaned by the OS)
    for entry in entries:
        if entry.is_file(follow_symlinks=False) and SPOOL_NAME.match(entry.name):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _remove_dead_run_dir(run_dir: Path) -> int:
    """The spools of a process that is gone (its lock is free); a live one's directory is left alone."""
    try:
        lock = FileLock.try_acquire(run_dir / RUN_LOCK)
    except OSError:
        return 0
    if lock is None:
        return 0  # its process is alive
    try:
        removed = _remove_spool_files(run_dir)
        with contextlib.suppress(OSError):
            (run_dir / RUN_LOCK).unlink()
            run_dir.rmdir()
    finally:
        lock.release()
    return removed


def claim_run_dir(spool_dir: Path) -> tuple[Path, FileLock]:
    """This process's own sub-directory of `spool_dir`, locked for the life of the process, after the
    leftovers of dead processes are removed. Two daemons with different ledgers may share `spool_dir`
    (its default is one /tmp folder): each only ever writes and cleans what no live process holds.
    The guard makes "create my directory and lock it" and "remove unlocked directories" exclusive, so a
    directory is never seen between its creation and its lock."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    with held(spool_dir / SPOOL_GUARD):
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=spool_dir))
        lock = FileLock.try_acquire(run_dir / RUN_LOCK)
        assert lock is not None, "a directory made a moment ago under the guard is not locked by anyone"
        lock.write_holder()
        clean_spool(spool_dir, keep=run_dir)
    return run_dir, lock


def release_run_dir(run_dir: Path, lock: FileLock) -> None:
    """At a clean exit: remove this process's directory (spools left by an abandoned upload included)."""
    _remove_spool_files(run_dir)
    with contextlib.suppress(OSError):
        (run_dir / RUN_LOCK).unlink()
        run_dir.rmdir()
    lock.release()


def spool_stem(path: Path) -> str:
    """A readable, safe stem for the spool's name (the upload's file name in Keboola shows it)."""
    stem = path.name
    for suffix in (".gz", ".csv", ".tsv", ".txt"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return sanitize_name(stem)[:60] or "data"


class SpoolReader:
    """Reads the spool while the pass is still writing it, so the upload overlaps the compression.

    The uploader asks `wait_for` until the bytes of its next part exist, then reads them through a
    `window`; both raise if the pass fails (the upload is then abandoned)."""

    def __init__(self, writer: SpoolWriter) -> None:
        self._writer = writer
        self._file = open(writer.tmp_path, "rb")  # noqa: SIM115 - closed by close(); survives the rename
        self.name = writer.stem + (".csv.gz" if writer.gzipped else ".csv")
        # The uploader's pace, for `upload.gzip_level: auto`: from its first request for bytes, less the
        # time it waited for the compressor.
        self._first_wait: float | None = None
        self._starved = 0.0

    def wait_for(self, end: int) -> tuple[int, bool]:
        """Block until the spool holds `end` bytes or is complete: (bytes written, complete?)."""
        writer = self._writer
        now = time.monotonic()
        if self._first_wait is None:
            self._first_wait = now
        try:
            with writer.progress:
                while True:
                    if writer.failed is not None:
                        raise OSError(f"the spool was abandoned: {writer.failed}")
                    if writer.done or writer.written >= end:
                        return writer.written, writer.done
                    writer.progress.wait(0.5)
        finally:
            self._starved += time.monotonic() - now

    def uploaded(self) -> None:
        """The upload of the whole spool succeeded: its bytes over the time spent sending them (not
        waiting for the compressor) is the uplink's rate, which the next load's gzip level follows.
        Waits that overlapped parts still in flight make the rate look higher, never lower: an error
        that leans to a faster level, whose upload then measures the uplink better."""
        if self._first_wait is None or not self._writer.done:
            return
        sending = time.monotonic() - self._first_wait - self._starved
        AUTO_LEVEL.uplink.observe(self._writer.written, sending)

    def window(self, start: int, length: int) -> FileWindow:
        """A seekable, read-only view of [start, start + length) for one multipart part."""
        return FileWindow(self._file.fileno(), start, length)

    @property
    def abandoned(self) -> bool:
        """The pass stopped (bad file, file changed, spool trouble): whatever read this is moot."""
        return self._writer.failed is not None

    def close(self) -> None:
        self._file.close()


class SpoolWriter:
    """Copies or compresses chunks into a temp file in a worker thread; commit = fsync-free rename."""

    def __init__(self, spool_dir: Path, stem: str, gzipped: bool, level: int | str, threads: int = 0) -> None:
        self.spool_dir = spool_dir
        self.stem = stem
        self.gzipped = gzipped
        # `auto` (gzipauto): the level is chosen when the first chunk arrives, from the measured uplink.
        self._auto = gzipped and level == AUTO
        self._threads = threads
        self._gzip = ParallelGzip(level if isinstance(level, int) else 0, threads) if gzipped else None
        self.sha = hashlib.sha256()  # of the chunks as they come, i.e. of the source file
        # Each entry: the chunk, and (gzip) the future of its compressed block, already running.
        self._queue: queue.Queue[tuple[bytes, Future[bytes] | None] | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._counted = False  # this pass is counted in AUTO_LEVEL's passes running now
        try:
            spool_dir.mkdir(parents=True, exist_ok=True)  # a tmpfs cleaned by the OS comes back
            fd, name = tempfile.mkstemp(prefix=f".{stem}-", suffix=".part", dir=spool_dir)
        except OSError as exc:
            raise SpoolError(spool_dir, exc) from exc
        self._tmp = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb", buffering=0)
        self._written = 0
        # What a SpoolReader follows: bytes on disk so far, and whether the writer ended well or badly.
        self.progress = threading.Condition()
        self.written = 0
        self.done = False
        self.failed: BaseException | None = None

    @property
    def tmp_path(self) -> Path:
        return self._tmp

    def reader(self) -> SpoolReader:
        """A reader of what is written so far, for an upload that starts before the pass ends."""
        return SpoolReader(self)

    def _announce(self, *, done: bool = False, failed: BaseException | None = None) -> None:
        with self.progress:
            self.written = self._written
            self.done = self.done or done
            self.failed = self.failed or failed
            self.progress.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="keboola-sync-spool", daemon=True)
        self._thread.start()

    def put(self, chunk: bytes) -> None:
        """Queue the next chunk (its compression starts at once); blocks when QUEUE_CHUNKS are waiting."""
        if self._error is not None:
            raise self._error  # e.g. the spool disk is full: stop reading a big file at once
        if self._auto and self._gzip is not None:
            self._auto = False
            self._gzip.level = AUTO_LEVEL.begin(chunk, self._threads)
            self._counted = True
        self._queue.put((chunk, self._gzip.submit(chunk) if self._gzip is not None else None))

    def finish(self) -> None:
        """Wait until every chunk is on disk; re-raise here what failed on the worker thread."""
        self._stop()
        if self._error is not None:
            self._announce(failed=self._error)
            raise self._error
        self._announce(done=True)

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._gzip is not None:
            self._gzip.close()
            if self._counted:
                self._counted = False
                AUTO_LEVEL.end(self._gzip.cpu_seconds, self._gzip.wall_seconds)

    def _work(self) -> None:
        """Writes blocks in file order: a copied chunk as is, a compressed one when its future is done.
        After a failure it keeps draining the queue, so the reader never blocks on a dead worker."""
        gzip = self._gzip
        if gzip is not None:
            self._guarded(self._write, gzip.header())
        while (item := self._queue.get()) is not None:
            if self._error is None:
                self._guarded(self._put_block, *item)
        if gzip is not None and self._error is None:
            self._guarded(self._write, gzip.trailer())

    def _put_block(self, chunk: bytes, block: Future[bytes] | None) -> None:
        self.sha.update(chunk)
        if block is not None and self._gzip is not None:
            self._gzip.account(chunk)
            data = block.result()
        else:
            data = chunk
        if data:
            self._write(data)

    def _guarded(self, step: Callable[..., None], *args: object) -> None:
        """Runs one step of the worker; a failure is kept and re-raised in the reader's thread."""
        try:
            step(*args)
        except OSError as exc:
            self._error = SpoolError(self.spool_dir, exc)
        except BaseException as exc:
            self._error = exc

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # an unbuffered write may be partial
            written = self._file.write(view)
            view = view[written:]
        self._written += len(data)
        self._announce()

    def commit(self) -> Spool:
        """Give the finished temp file its final name (Keboola gunzips by the ".gz" ending, §4.6)."""
        suffix = ".csv.gz" if self.gzipped else ".csv"
        try:
            self._file.close()
            fd, final = tempfile.mkstemp(prefix=f"{self.stem}-", suffix=suffix, dir=self.spool_dir)
            os.close(fd)
            os.replace(self._tmp, final)
        except OSError as exc:
            raise SpoolError(self.spool_dir, exc) from exc
        return Spool(path=Path(final), gzipped=self.gzipped, size=self._written)

    def abort(self) -> None:
        """The pass stopped: tell a reader, stop the threads, and leave nothing in spool_dir."""
        self._announce(failed=self._error or RuntimeError("the pass stopped"))
        try:
            self._stop()
        finally:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
