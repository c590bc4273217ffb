"""What the API side needs from file storage, whichever cloud answers (`--file-storage aws|azure|gcp`).

Keboola's stacks keep files in S3, Azure Blob Storage or Google Cloud Storage (§2.1); the Storage API
answers `files/prepare` and file detail in that provider's shape (§5.1, §5.4) and writes sliced-file
manifests with that provider's URLs (§5.2). Routes and jobs talk to this protocol only; `S3Side`
(moto), `AzureSide` (Azurite) and `GcsSide` (gcp-storage-emulator) implement it.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

UPLOAD_HOURS = 12  # §5.1: upload credentials live ~12 h
READ_HOURS = 12  # §5.4: federationToken read credentials valid 12 h
URL_SECONDS = 3600  # §5.1: `url` is a signed GET valid 1 h


class FileStorage(Protocol):
    provider: str  # §5.1 `provider`: aws | azure | gcp
    region: str

    def object_size(self, key: str) -> int | None: ...

    def open_object(self, key: str) -> BinaryIO | None: ...

    def put_object_from_file(self, key: str, path: Path) -> int: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def signed_get(self, key: str, *, public: bool = False) -> str:
        """§5.1 `url`: a GET anyone holding the URL may use for an hour. `public` asks for the URL a
        real stack gives, for a client that came through a TLS front (routes.common.fronted); only
        the S3 side has one, Azurite and the GCS front door answer on their loopback URL."""
        ...

    def upload_fields(self, key: str, *, file_id: int, sliced: bool, encrypted: bool) -> dict[str, Any]:
        """The provider-specific keys of a `files/prepare` answer (§5.1), scoped to file `file_id`."""
        ...

    def read_fields(self, key: str, *, file_id: int, sliced: bool) -> dict[str, Any]:
        """The provider-specific keys of file detail with `federationToken=1` (§5.4)."""
        ...

    def slice_url(self, key: str) -> str:
        """A manifest entry's `url` for the object `key` (§5.2)."""
        ...

    def key_of_slice_url(self, url: str) -> str | None:
        """The object key a manifest entry points at, or None if it is not one of ours."""
        ...

    def close(self) -> None: ...


def expiry(hours: float) -> dt.datetime:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).replace(microsecond=0)


class IteratorReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (a streamed download); `on_close` releases the
    connection when the reader is closed early (a failed import stops reading mid-file)."""

    def __init__(self, chunks: Iterator[bytes], on_close: Callable[[], object] | None = None) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """A view, not a slice, of what is left of the chunk: TextIOWrapper asks BufferedReader.read1 for
        8 KiB, which reads the raw stream 8 KiB at a time, and slicing copied the rest of a 4 MiB chunk
        on every read (a 100 MB CSV import from Azurite took 37 s instead of 4 s)."""
        while not self._pending:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._pending = memoryview(nxt)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if self._on_close is not None and not self.closed:
            self._on_close()
        super().close()
