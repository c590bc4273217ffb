"""Parallel gzip, the way pigz does it: one ordinary gzip member, compressed on several threads.

Why: the compressor is the slowest part of the pass (about as fast as the disk on one core), and it would
otherwise leave the second core idle. Why not isal's own `igzip_threaded`: it owns the output file and
its writer thread, while the spool needs each compressed block in its hands (to count the bytes on disk
for the overlapped upload and to hash the source in file order); and it measured no faster
(docs/benchmarks.md, "Parallel gzip").
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor

from isal import isal_zlib

ISAL_MAX_LEVEL = 3  # isal's levels are 0-3; config allows 0-9 (4-9 use zlib: smaller, much slower)
# A gzip member header: magic, deflate, no flags, no mtime (the bytes depend on the data only), no extra
# flags, OS "unknown" (RFC 1952 §2.3).
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
DEFLATE_WINDOW = 32 << 10
# An empty final deflate block (fixed Huffman, BFINAL=1, just the end-of-block code), as pigz ends with.
DEFLATE_LAST_EMPTY_BLOCK = b"\x03\x00"
MAX_GZIP_THREADS = 4


class ParallelGzip:
    """One gzip member compressed on several threads, the way pigz does it.

    Each chunk becomes raw deflate blocks of its own, primed with the last 32 KiB of the data before it
    (so the ratio is what a single stream gets) and ended with a sync flush (so the blocks simply
    concatenate). The header, CRC-32 and length are written around
    them, so the result is an ordinary single-member .gz that every gunzip reads. isal and zlib release
    the GIL while they compress, so the threads really run in parallel.
    """

    def __init__(self, level: int, threads: int) -> None:
        self._level = level
        workers = threads or min(os.cpu_count() or 1, MAX_GZIP_THREADS)
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="keboola-sync-gzip")
        self._previous = b""  # the last DEFLATE_WINDOW bytes submitted, the next block's dictionary
        self._crc = 0
        self._size = 0
        # Wall and CPU time the workers spent compressing: their ratio is the share of a core they really
        # got, which `upload.gzip_level: auto` counts on for the next level (gzipauto.py).
        self._timing = threading.Lock()
        self.wall_seconds = 0.0
        self.cpu_seconds = 0.0

    @property
    def level(self) -> int:
        return self._level

    @level.setter
    def level(self, level: int) -> None:
        """Blocks are compressed independently, so each may have its own level and the result is still
        one valid member: `upload.gzip_level: auto` sets it once the first chunk is seen."""
        self._level = level

    def submit(self, chunk: bytes) -> Future[bytes]:
        """Start compressing `chunk`; called in file order, from one thread."""
        dictionary = self._previous
        self._previous = (
            (dictionary + chunk)[-DEFLATE_WINDOW:] if len(chunk) < DEFLATE_WINDOW else (chunk[-DEFLATE_WINDOW:])
        )
        return self._pool.submit(self._timed_block, chunk, dictionary, self._level)

    def _timed_block(self, chunk: bytes, dictionary: bytes, level: int) -> bytes:
        wall, cpu = time.perf_counter(), time.thread_time()
        block = deflate_block(chunk, dictionary, level)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        with self._timing:
            self.wall_seconds += wall
            self.cpu_seconds += cpu
        return block

    def account(self, chunk: bytes) -> None:
        """Add `chunk` to the trailer's CRC-32 and length; called in file order."""
        self._crc = isal_zlib.crc32(chunk, self._crc)
        self._size += len(chunk)

    @staticmethod
    def header() -> bytes:
        return GZIP_HEADER

    def trailer(self) -> bytes:
        return DEFLATE_LAST_EMPTY_BLOCK + struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def deflate_block(chunk: bytes, dictionary: bytes, level: int) -> bytes:
    """Raw deflate of one chunk, primed with `dictionary`, ending on a byte boundary (sync flush).
    Levels 0-3 use ISA-L; 4-9 use zlib, for users who trade speed for a smaller upload."""
    if level <= ISAL_MAX_LEVEL:
        if dictionary:
            compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, 9, 0, dictionary)
        else:
            compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
        return compressor.compress(chunk) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)
    if dictionary:
        zcompressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    else:
        zcompressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return zcompressor.compress(chunk) + zcompressor.flush(zlib.Z_SYNC_FLUSH)
