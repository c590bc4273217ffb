"""Uploads to Keboola file storage on AWS S3 (the files/prepare answer's `uploadParams`, §5.1).

Every S3 request runs under the one retry policy (`retry.py`), one request at a time: the PutObject of a
small file, and each call of a multipart upload (create, every part, complete). A part that fails for a
passing reason is sent again by itself; the parts already sent stay (before, a single failed part restarted
the whole file). The S3 client's own retries are off (`total_max_attempts=1`) so no loop nests in another.
Multipart is ours, not boto3's transfer manager, because the manager retries internally and gives no way to
retry one part.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

import boto3  # type: ignore[import-untyped, unused-ignore]
import botocore.config  # type: ignore[import-untyped, unused-ignore]
import botocore.credentials  # type: ignore[import-untyped, unused-ignore]

from .errors import Abandoned
from .uploads import CloudUploader, FinishedFile, GrowingFile, UploadProgress

# Idle S3 clients kept for reuse per region (see S3Uploader._lend).
S3_CLIENTS_KEPT = 8
MIB = 1024 * 1024
S3_MIN_PART = 5 * MIB  # every part but the last is at least this (S3's multipart rule)

T = TypeVar("T")

log = logging.getLogger("keboola_sync.storage")


def _use_credentials(client: Any, creds: Mapping[str, Any]) -> bool:
    """Make an idle client sign with `creds` from now on; False when this botocore keeps them elsewhere
    (then the caller builds a client for them). botocore's RequestSigner reads `_credentials` at every
    signature (botocore/signers.py, pinned in requirements.txt)."""
    signer = getattr(client, "_request_signer", None)
    if signer is None or not hasattr(signer, "_credentials"):
        return False
    signer._credentials = botocore.credentials.Credentials(
        creds["AccessKeyId"], creds["SecretAccessKey"], creds.get("SessionToken")
    )
    return True


class S3Uploader(CloudUploader):
    """Single PutObject for small files, parallel multipart above `upload.multipart_threshold_mb` (no 5 GB
    ceiling), and multipart from a file still being written. Clients made before a settings reload keep
    their timeout until they are replaced."""

    def _setup(self) -> None:
        # Our own boto3 session, and clients made under a lock: boto3 documents that a Session is not
        # thread-safe, and the load workers build clients concurrently.
        self._boto = boto3.session.Session()
        self._idle: dict[str, list[Any]] = {}  # region -> clients no upload is using
        self._clients_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load botocore's S3 model in the background (~0.2 s of CPU), so the first upload does not wait
        for it. Harmless if it fails: the first upload then loads it itself."""

        def build() -> None:
            with contextlib.suppress(Exception), self._clients_lock:
                self._boto.client(
                    "s3",
                    region_name="us-east-1",
                    aws_access_key_id="warm-up",
                    aws_secret_access_key="warm-up",  # noqa: S106 - not a credential
                )

        threading.Thread(target=build, name="keboola-sync-warm-up", daemon=True).start()

    def upload_file(self, prepared: Mapping[str, Any], path: Path, size: int, label: str) -> None:
        """One PutObject below `upload.multipart_threshold_mb`, else parallel multipart (no 5 GB ceiling)."""
        if size >= self._upload.multipart_threshold_mb * MIB:
            with FinishedFile(path, size) as source:
                self.upload_growing(prepared, source, size, label)
            return
        params = prepared["uploadParams"]
        with self._lend(prepared) as (client, extra):

            def put() -> None:
                with path.open("rb") as body:  # opened per attempt: a retry sends the file from its start
                    client.put_object(Bucket=params["bucket"], Key=params["key"], Body=body, **extra)

            self._run(f"uploading {label}", put)

    def upload_growing(self, prepared: Mapping[str, Any], source: GrowingFile, size_hint: int, label: str) -> None:
        """Multipart upload of a spool that is still being written: part n goes as soon as its bytes are
        on disk. Parts are windows over the spool file read with pread, so memory stays flat (a stream
        handed to boto3 would buffer up to ten parts in RAM)."""
        with self._lend(prepared) as (client, extra):
            self._multipart(client, extra, prepared["uploadParams"], source, size_hint, label)

    def _multipart(
        self,
        client: Any,
        extra: dict[str, str],
        params: Mapping[str, Any],
        source: GrowingFile,
        size_hint: int,
        label: str,
    ) -> None:
        bucket, key = params["bucket"], params["key"]
        upload_id = self._run(
            f"starting the upload of {label}",
            lambda: client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"],
        )
        log.debug("%s: multipart upload started", label)
        try:
            parts = self._send_parts(client, bucket, key, upload_id, source, size_hint, label)
            log.debug("%s: %d parts sent, completing", label, len(parts))
            # Completing twice is harmless (the second sees the same parts), so it is retried too.
            self._run(
                f"finishing the upload of {label}",
                lambda: client.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
            )
        except BaseException:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    def _send_parts(
        self, client: Any, bucket: str, key: str, upload_id: str, source: GrowingFile, size_hint: int, label: str
    ) -> list[dict[str, Any]]:
        """Send parts as the source grows, at most `multipart_concurrency` at once, each under the retry
        policy; a part that still fails fails the upload as soon as it is seen."""
        chunk = int(self._upload.multipart_chunk_mb * MIB)
        # The first part is S3's smallest: the uplink starts as soon as 5 MiB of the spool exist instead
        # of a whole chunk, which at a slow gzip level is most of a second of an idle link (issue 18.1).
        first = min(chunk, S3_MIN_PART)
        concurrency = self._upload.multipart_concurrency
        progress = UploadProgress(label, size_hint, self._progress_seconds, self._abandon, self._meter)

        def put_part(number: int, start: int, length: int) -> str:
            body = source.window(start, length)  # a fresh window per attempt: a retry reads from its start
            answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
            return str(answer["ETag"])

        def send(number: int, start: int, length: int) -> dict[str, Any]:
            etag = self._run(f"uploading part {number} of {label}", lambda: put_part(number, start, length))
            progress(length)
            return {"PartNumber": number, "ETag": etag}

        with ThreadPoolExecutor(concurrency, thread_name_prefix="part") as pool:
            running: set[Future[dict[str, Any]]] = set()
            sent: list[Future[dict[str, Any]]] = []
            start, number = 0, 1
            while True:
                size = first if number == 1 else chunk
                written, finished = source.wait_for(start + size)
                length = min(size, written - start)
                if length <= 0 and finished:
                    break
                if len(running) >= concurrency:
                    completed, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in completed:
                        future.result()  # a failed part fails the upload now
                if self._abandon.is_set():
                    raise Abandoned(f"upload of {label} abandoned at shutdown")
                future = pool.submit(send, number, start, length)
                running.add(future)
                sent.append(future)
                start, number = start + length, number + 1
            return [f.result() for f in sent]

    @contextlib.contextmanager
    def _lend(self, prepared: Mapping[str, Any]) -> Iterator[tuple[Any, dict[str, str]]]:
        """A boto3 S3 client signing with this prepare call's short-lived credentials, for this one upload
        alone, and the headers every write must carry. AWS_ENDPOINT_URL_S3 (the emulator) is honoured by
        boto3 itself.

        Keboola hands out new credentials for every file (§5.1), and building a client costs ~10-25 ms of
        CPU under the GIL (event hooks, endpoint rules, an SSL context, a connection pool): with many small
        files that was most of the daemon's CPU (issue 18.1, benchmark row 6). So an idle client is lent
        out and only its credentials are replaced; it goes back to the pool, its connections still open,
        when the upload ends. One upload at a time per client, so a swap never meets another upload's
        request. Should botocore ever keep its credentials elsewhere, a new client is built per upload
        as before."""
        params = prepared["uploadParams"]
        creds = params["credentials"]
        region = prepared.get("region") or "us-east-1"
        client = None
        with self._clients_lock:
            idle = self._idle.get(region)
            if idle:
                client = idle.pop()
        if client is None or not _use_credentials(client, creds):
            client = self._new_client(region, creds)
        extra: dict[str, str] = {}
        if params.get("acl"):
            extra["ACL"] = params["acl"]
        if params.get("x-amz-server-side-encryption"):
            # Encrypted file keys are refused without the header (§5.1, PHPT AwsFileTest).
            extra["ServerSideEncryption"] = params["x-amz-server-side-encryption"]
        try:
            yield client, extra
        finally:
            with self._clients_lock:
                idle = self._idle.setdefault(region, [])
                if len(idle) < S3_CLIENTS_KEPT:
                    idle.append(client)

    def _new_client(self, region: str, creds: Mapping[str, Any]) -> Any:
        return self._boto.client(
            "s3",
            region_name=region,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds.get("SessionToken"),
            config=botocore.config.Config(
                connect_timeout=self._request_timeout,
                read_timeout=self._request_timeout,
                # One attempt per request: the caller's retry policy is the only retry loop.
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=max(10, self._upload.multipart_concurrency * 2),
                # Integrity is the CRC32 checksum botocore adds to every write; over TLS (every real
                # stack) botocore skips the SHA-256 of the body anyway, so over the emulator's plain
                # HTTP it would only cost CPU: a second hash of every uploaded byte.
                s3={"payload_signing_enabled": False},
            ),
        )
