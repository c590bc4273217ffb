"""A read-only window over a slice of an open file: what an HTTP client needs of a request body (read,
seek, tell, len), read with `os.pread`, so several slices of one descriptor can be sent at once (multipart
parts, blocks, chunks) and nothing is held in memory. Shared by the spool (the growing file) and the
uploaders (a finished file).
"""

from __future__ import annotations

import os


class FileWindow:
    """A part body over [start, start + length) of an open descriptor: read, seek and tell (what botocore
    needs to send it and to rewind it for a checksum), read with pread."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self._fd, self._start, self._length, self._pos = fd, start, length, 0

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._pos
        size = left if size is None or size < 0 else min(size, left)
        data = os.pread(self._fd, size, self._start + self._pos) if size > 0 else b""
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return self._length
