"""Upload to Google Cloud Storage (Keboola's GCP stacks) with a resumable upload, while the spool grows.

The prepare answer (§5.1 `gcsUploadParams`) carries a bearer token scoped to one object. A resumable
upload session is opened with it and the spool goes up chunk by chunk as its bytes reach the disk
(`Content-Range: bytes a-b/*` while the size is unknown; the short last chunk closes the object). One
chunk is in memory at a time. A chunk that fails is resumed, not restarted: the session is asked how
much it holds (`recover`, GCS's status query) and the upload continues from there. Nothing is visible
until the last chunk; an abandoned session expires on its own after a week.

GCS takes chunks one after another within a session, so unlike S3 parts and Azure blocks there is no
parallelism inside one file; the overlap with the gzip pass is what this buys. The XML multipart API
would allow parallel parts but needs HMAC or object-composition rights Keboola's token does not state.

Clients reach an emulator through the standard STORAGE_EMULATOR_HOST variable, as google-cloud-storage
does. Errors propagate as google-resumable-media's InvalidResponse (`.response.status_code`) or a
requests exception. The access token and the session URL (itself a credential) are never logged.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from google.auth.transport.requests import AuthorizedSession
from google.oauth2.credentials import Credentials
from google.resumable_media import InvalidResponse
from google.resumable_media.requests import ResumableUpload

from keboola_sync.growing import FinishedFile, GrowingSource, UploadAbandoned

CHUNK_BYTES = 8 * 1024 * 1024  # a multiple of 256 KiB, as GCS requires of every chunk but the last
TIMEOUT_SECONDS = 120.0
RESUMES_PER_CHUNK = 3
PUBLIC_ENDPOINT = "https://storage.googleapis.com"


def endpoint() -> str:
    """STORAGE_EMULATOR_HOST when set (the emulator), else Google's public endpoint."""
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").strip().rstrip("/")
    if not host:
        return PUBLIC_ENDPOINT
    return host if "://" in host else f"http://{host}"


class _SpoolStream(io.RawIOBase):
    """The spool as the stream ResumableUpload reads: `read(n)` waits until n more bytes are written
    (or the writer is done), so every chunk but the last is whole; `seek` lets `recover` rewind."""

    def __init__(self, source: GrowingSource) -> None:
        self._source = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET:
            raise OSError("the spool stream seeks from its start only")
        self._pos = offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            raise OSError("the spool stream reads in chunks only")
        if self._source.abandoned():
            raise UploadAbandoned("upload abandoned")
        written, finished = self._source.wait_for(self._pos + size)
        while written < self._pos + size and not finished:
            if self._source.abandoned():
                raise UploadAbandoned("upload abandoned")
            written, finished = self._source.wait_for(self._pos + size)
        take = max(0, min(size, written - self._pos))
        data = bytearray()
        if take:
            window = self._source.window(self._pos, take)
            try:
                while len(data) < take and (part := window.read(take - len(data))):
                    data += part
            finally:
                window.close()
        self._pos += len(data)
        return bytes(data)


def _session(prepared: dict[str, Any]) -> AuthorizedSession:
    params = prepared["gcsUploadParams"]
    return AuthorizedSession(Credentials(token=params["access_token"]))  # type: ignore[no-untyped-call]


def _send_chunks(
    upload: ResumableUpload,
    transport: AuthorizedSession,
    timeout: float,
    source: GrowingSource,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Transmit until the object is finalised; a failed chunk is resumed from what the session holds."""
    while not upload.finished:
        if source.abandoned():
            raise UploadAbandoned("upload abandoned")
        before = upload.bytes_uploaded
        for attempt in range(RESUMES_PER_CHUNK + 1):
            try:
                upload.transmit_next_chunk(transport, timeout=(timeout, timeout))  # type: ignore[no-untyped-call]
                break
            except (InvalidResponse, requests.RequestException):
                if attempt == RESUMES_PER_CHUNK or not upload.invalid:
                    raise
                upload.recover(transport)  # type: ignore[no-untyped-call]  # rewinds to the session's offset
        if on_progress is not None and upload.bytes_uploaded > before:
            on_progress(upload.bytes_uploaded - before)


def _upload(
    prepared: dict[str, Any],
    source: GrowingSource,
    total: int | None,
    chunk_bytes: int,
    timeout: float,
    on_progress: Callable[[int], None] | None,
) -> None:
    params = prepared["gcsUploadParams"]
    url = f"{endpoint()}/upload/storage/v1/b/{quote(params['bucket'], safe='')}/o?uploadType=resumable"
    upload = ResumableUpload(url, chunk_bytes)  # type: ignore[no-untyped-call]
    with _session(prepared) as transport:
        upload.initiate(  # type: ignore[no-untyped-call]
            transport,
            _SpoolStream(source),
            {"name": params["key"]},
            "application/octet-stream",
            total_bytes=total,
            stream_final=total is not None,
            timeout=(timeout, timeout),
        )
        _send_chunks(upload, transport, timeout, source, on_progress)


def upload_growing(
    prepared: dict[str, Any],
    source: GrowingSource,
    size_hint: int,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    timeout: float = TIMEOUT_SECONDS,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Send the spool chunk by chunk as it is written. `size_hint` is not trusted as the size (the
    object's size is only known when the writer is done); it is accepted so every uploader has one
    signature. `on_progress(n)` gets each chunk's byte count."""
    _upload(prepared, source, None, chunk_bytes, timeout, on_progress)


def upload_file(
    prepared: dict[str, Any],
    path: Path,
    size: int,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    timeout: float = TIMEOUT_SECONDS,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """A finished file of known size, by the same resumable session (an empty file too)."""
    with FinishedFile(path, size) as source:
        _upload(prepared, source, size, chunk_bytes, timeout, on_progress)
