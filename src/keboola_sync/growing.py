"""What a streaming uploader reads from: a spool that may still be growing, and a finished file as one.

The Azure and GCS uploaders (abs_upload.py, gcs_upload.py) take any object with this shape, so they
serve both the overlapped upload (the gzip pass still writing the spool) and the upload of a finished
file with one code path. Kept apart from the storage package so the uploaders stay self-contained.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, BinaryIO, Protocol


class UploadAbandoned(Exception):
    """The daemon is shutting down (or the spool's writer gave up): stop uploading, commit nothing."""


class GrowingSource(Protocol):
    def wait_for(self, end: int) -> tuple[int, bool]:
        """Block until `end` bytes are written or the writer is done; (bytes available, writer done)."""
        ...

    def window(self, start: int, length: int) -> BinaryIO:
        """A file-like view of bytes [start, start + length) of the spool."""
        ...

    def abandoned(self) -> bool: ...


class Window(io.RawIOBase):
    """Bytes [start, start + length) of a file, read with pread (no shared file position between
    threads) and seekable, so an SDK can rewind a block to retry it."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self._fd, self._start, self._length = fd, start, length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._length - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._start + self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def __len__(self) -> int:
        return self._length


class FinishedFile:
    """A finished file as a GrowingSource: everything is already written."""

    def __init__(self, path: Path, size: int) -> None:
        self._size = size
        self._fd = os.open(path, os.O_RDONLY)

    def wait_for(self, end: int) -> tuple[int, bool]:
        return self._size, True

    def window(self, start: int, length: int) -> BinaryIO:
        return io.BufferedReader(Window(self._fd, start, length))

    def abandoned(self) -> bool:
        return False

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> FinishedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
