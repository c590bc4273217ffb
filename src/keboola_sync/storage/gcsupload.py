"""Uploads to Keboola file storage on Google Cloud Storage (the files/prepare answer's `gcsUploadParams`,
§5.1) with a resumable upload, chunk by chunk as the spool grows.

The answer carries a bearer token scoped to one object. A resumable session is opened with it and the
spool goes up in chunks of `upload.multipart_chunk_mb` (rounded to the 256 KiB GCS requires) as its bytes
reach the disk: `Content-Range: bytes a-b/*` while the size is unknown, the short last chunk closes the
object. No chunk is ever in memory: each is a window over the spool that requests streams from the file
in small blocks, as the S3 and Azure uploaders send their parts (`SpoolStream`). Nothing is visible
until the last chunk; an abandoned session expires on its own.

Every request (opening the session, each chunk) runs under the one retry policy (`retry.py`). A chunk
that failed is resumed, not restarted: before the next attempt the session is asked how much it holds
(`recover`, GCS's status query: an empty PUT with `Content-Range: bytes */*`) and the upload continues
from there. Two answers to that query end the chunk loop: 200/201 says the object is complete (the last
chunk was stored and only its answer was lost), 404/410 says the session is gone (expired, or the
service forgot it); then a new session is opened and the whole file goes again from the spool, which
is still on disk (at most SESSION_STARTS sessions per upload). GCS takes chunks one after another
within a session, so there is no parallelism inside one file; the overlap with the gzip pass is what
streaming buys. Clients reach an emulator through the standard STORAGE_EMULATOR_HOST variable, as
google-cloud-storage does. The access token and the session URL (itself a credential) are never logged:
`classify` drops query strings from every message it keeps.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from google.auth.transport.requests import AuthorizedSession
from google.oauth2.credentials import Credentials
from google.resumable_media import InvalidResponse
from google.resumable_media.common import RetryStrategy
from google.resumable_media.requests import ResumableUpload

from .errors import Abandoned
from .logsafe import install as keep_credentials_out_of_logs
from .uploads import CloudUploader, FinishedFile, GrowingFile, Readable, UploadProgress

GCS_CHUNK_UNIT = 256 * 1024  # every chunk but the last is a multiple of this
MIB = 1024 * 1024
PUBLIC_ENDPOINT = "https://storage.googleapis.com"
SESSION_STARTS = 3  # sessions one upload may open when the earlier ones are gone (404/410)
T = TypeVar("T")

log = logging.getLogger("keboola_sync.storage")
# urllib3 quotes each chunk's session URL (`upload_id`, a credential) at DEBUG: cut it there (logsafe).
keep_credentials_out_of_logs()


def endpoint() -> str:
    """STORAGE_EMULATOR_HOST when set (an emulator), else Google's public endpoint."""
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").strip().rstrip("/")
    if not host:
        return PUBLIC_ENDPOINT
    return host if "://" in host else f"http://{host}"


def chunk_bytes(chunk_mb: float) -> int:
    """`upload.multipart_chunk_mb` rounded down to a whole number of 256 KiB units (at least one)."""
    return max(GCS_CHUNK_UNIT, int(chunk_mb * MIB) // GCS_CHUNK_UNIT * GCS_CHUNK_UNIT)


class SpoolStream:
    """The spool as the stream ResumableUpload reads, handing out windows instead of bytes.

    ResumableUpload reads each chunk with one `read(chunk_size)`, takes its `len()` and gives it to
    requests as the request body (`transmit_next_chunk`; no checksum is asked for, the only other use).
    Returned as bytes, the chunk (16 MiB by default) sat in memory while it was sent, next to the copy it
    was assembled in. A window over the spool (`read`, `seek`, `tell`, `len`, read with `pread`) is a
    body requests streams in 16 KiB blocks with a Content-Length, so memory stays flat whatever the chunk
    size. `read(n)` waits until n more bytes are written (or the writer is done), so every chunk but the
    last is whole and on disk before it is sent; `seek` lets `recover` rewind, and a retried chunk is a
    fresh window from the spool, which stays on disk until the upload is over.
    """

    def __init__(self, source: GrowingFile, abandon: threading.Event) -> None:
        self._source = source
        self._abandon = abandon
        self._pos = 0

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET:
            raise OSError("the spool stream seeks from its start only")
        self._pos = offset
        return self._pos

    def read(self, size: int | None = -1) -> Readable:
        """The next `size` bytes of the spool (fewer only at its end) as a window, once they are written."""
        if size is None or size < 0:
            raise OSError("the spool stream reads in chunks only")
        written, finished = self._source.wait_for(self._pos + size)
        while written < self._pos + size and not finished:
            if self._source.abandoned or self._abandon.is_set():
                raise Abandoned("upload abandoned")
            written, finished = self._source.wait_for(self._pos + size)
        take = max(0, min(size, written - self._pos))
        window = self._source.window(self._pos, take)
        self._pos += take
        return window


class GcsUploader(CloudUploader):
    """A resumable upload per file, from a finished file or from one still being written."""

    def upload_file(self, prepared: Mapping[str, Any], path: Path, size: int, label: str) -> None:
        """A finished file of known size, by the same resumable session (an empty file too)."""
        with FinishedFile(path, size) as source:
            self._send(prepared, source, size, size, label)

    def upload_growing(self, prepared: Mapping[str, Any], source: GrowingFile, size_hint: int, label: str) -> None:
        """The spool chunk by chunk as it is written; its size is known only when the writer is done."""
        self._send(prepared, source, None, size_hint, label)

    def _send(
        self, prepared: Mapping[str, Any], source: GrowingFile, total: int | None, size_hint: int, label: str
    ) -> None:
        """One resumable session; a new one (the whole file again) when GCS says the session is gone."""
        progress = UploadProgress(label, size_hint, self._progress_seconds, self._abandon, self._meter)
        reported = [0]  # bytes the progress line has counted, across sessions: a new session counts on
        for session in range(1, SESSION_STARTS + 1):
            try:
                self._session(prepared, source, total, progress, reported, label)
                return
            except Exception as exc:
                status = _gone_status(exc)
                if status is None or session == SESSION_STARTS:
                    raise
                log.warning(
                    "uploading %s: the upload session is gone (HTTP %d); uploading the file again in a new session",
                    label,
                    status,
                    extra={"file": label},
                )

    def _session(
        self,
        prepared: Mapping[str, Any],
        source: GrowingFile,
        total: int | None,
        progress: UploadProgress,
        reported: list[int],
        label: str,
    ) -> None:
        params = prepared["gcsUploadParams"]
        url = f"{endpoint()}/upload/storage/v1/b/{quote(params['bucket'], safe='')}/o?uploadType=resumable"
        timeout = (self._request_timeout, self._request_timeout)
        credentials = Credentials(token=params["access_token"])  # type: ignore[no-untyped-call]
        # No refresh on 401: Keboola's token has no refresh grant, so google-auth's attempt only turned
        # "the token expired" into a RefreshError about missing fields. A 401 is the answer itself: the
        # load fails and its next round prepares the file afresh, with a new token (§5.1: 1 h tokens).
        with AuthorizedSession(credentials, refresh_status_codes=()) as transport:  # type: ignore[no-untyped-call]
            # No `checksum=`: the library would slice each chunk to sum it, and a chunk is a window, not bytes.
            upload = ResumableUpload(url, chunk_bytes(self._upload.multipart_chunk_mb))  # type: ignore[no-untyped-call]
            # One attempt per request: the retry policy is the only retry loop (the library's own
            # would retry connection errors and 5xx for up to ten minutes by itself).
            upload._retry_strategy = RetryStrategy(max_retries=0)  # type: ignore[no-untyped-call]
            stream = SpoolStream(source, self._abandon)

            def initiate() -> None:
                stream.seek(0)  # a failed initiate left no session: the next attempt opens one afresh
                upload.initiate(  # type: ignore[no-untyped-call]
                    transport,
                    stream,
                    {"name": params["key"]},
                    "application/octet-stream",
                    total_bytes=total,
                    stream_final=total is not None,
                    timeout=timeout,
                )

            self._run(f"starting the upload of {label}", initiate)
            self._send_chunks(upload, transport, source, progress, reported, label)

    def _send_chunks(
        self,
        upload: ResumableUpload,
        transport: AuthorizedSession,
        source: GrowingFile,
        progress: UploadProgress,
        reported: list[int],
        label: str,
    ) -> None:
        """Transmit until the object is final, each chunk under the retry policy; a failed chunk is
        resumed from what the session holds."""
        timeout = (self._request_timeout, self._request_timeout)
        number = 0
        complete = False  # the status query found the object complete: the last chunk's answer was lost
        while not upload.finished and not complete:
            if source.abandoned or self._abandon.is_set():
                raise Abandoned(f"upload of {label} abandoned at shutdown")
            number += 1

            def transmit() -> bool:
                """Send the next chunk; True when the status query found the object complete."""
                if upload.invalid:  # an earlier attempt failed: ask the session what it holds
                    try:
                        upload.recover(transport)  # type: ignore[no-untyped-call]  # rewinds the stream
                    except InvalidResponse as exc:
                        if _status(exc) in (200, 201):  # the object is complete (GCS's status query)
                            return True
                        raise  # 404/410: the session is gone (`_send` opens a new one)
                try:
                    upload.transmit_next_chunk(transport, timeout=timeout)  # type: ignore[no-untyped-call]
                except Exception:
                    # The chunk was read from the stream whatever happened; a lost connection does not
                    # mark the upload invalid by itself, and the next attempt must recover first.
                    upload._make_invalid()  # type: ignore[no-untyped-call]  # as an error answer does
                    raise
                return False

            complete = self._run(f"uploading chunk {number} of {label}", transmit)
            held = upload.bytes_uploaded
            if complete:
                written, _ = source.wait_for(0)
                held = written
            if held > reported[0]:
                progress(held - reported[0])
                reported[0] = held


def _status(exc: InvalidResponse) -> int:
    return int(getattr(exc.response, "status_code", 0) or 0)


def _gone_status(exc: BaseException) -> int | None:
    """404 or 410 when `exc` says the resumable session no longer exists (raw, or as the retry policy
    classified it), else None. Within the chunk loop nothing else can be missing."""
    status = getattr(exc, "status", None)
    if status is None and isinstance(exc, InvalidResponse):
        status = _status(exc)
    return int(status) if status in (404, 410) else None
