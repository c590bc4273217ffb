"""The only room that talks to Keboola (and the only importer of `kbcstorage`).

Why a wrapper and not the SDK as it is (keboola-storage-api.md §9): the SDK sets no HTTP timeout, retries
every verb on 5xx for up to ~17 minutes (POSTs included, so an import can run twice), never retries 429 or
a dropped connection, polls jobs without a deadline, drops the error code of a failed job, and uploads to
S3 with a single PUT (5 GB ceiling). Here every request has a timeout and exactly one attempt inside the
SDK; our single retry policy (`_retrying`) wraps whole calls, honours Retry-After, and never re-sends an
import before asking Keboola whether a job for that file already exists. Only `StorageError` subclasses
leave this module.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
import requests
from boto3.s3.transfer import TransferConfig
from kbcstorage.buckets import Buckets
from kbcstorage.files import Files
from kbcstorage.jobs import Jobs
from kbcstorage.tables import Tables
from kbcstorage.tokens import Tokens
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from .config import KeboolaConfig, RetryConfig, UploadConfig
from .csvfile import Dialect
from .errors import KeboolaSyncError

log = logging.getLogger("keboola_sync.storage")

T = TypeVar("T")

# HTTP statuses worth another try (keboola-storage-api.md §7.3: PHP, Go and kbagent retry these).
TRANSIENT_STATUSES = frozenset({408, 409, 423, 425, 429, 500, 502, 503, 504})
# Files of Keboola file storage live 15 days (§5.4); reuse a kept file id only well within that.
FILE_REUSE_SECONDS = 14 * 24 * 3600
# S3 clients kept for reuse (one per set of upload credentials; see Storage._s3).
S3_CLIENTS_KEPT = 4
# Job error codes that mean "the file (or its header) is wrong": retrying the same content cannot help.
CONTENT_ERROR_PREFIXES = ("csvImport.", "storage.tables.validation", "invalidCsv", "storage.validation")
# Job error codes that mean "the uploaded file is gone or incomplete": upload again (§5.2, §7.2).
FILE_ERROR_CODES = frozenset(
    {"storage.fileNotUploaded", "storage.importFileMissing", "storage.manifestFileMissing", "storage.files.notFound"}
)
MISSING_TARGET_CODES = frozenset({"storage.tables.notFound", "storage.buckets.notFound"})


class StorageError(KeboolaSyncError):
    """Keboola did not do what we asked. `code` is Keboola's dotted error code when it sent one."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code or None
        self.status = status


class StorageTransient(StorageError):
    """Worth another try later: network trouble, timeouts, 429, 5xx, Keboola's own internal job errors."""

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class StorageTerminal(StorageError):
    """Another try with the same input cannot succeed (validation errors, permissions)."""


class TokenRejected(StorageTerminal):
    """401: the token is wrong, expired or for another stack."""


class NotFound(StorageTerminal):
    """404: the bucket, table, file or job does not exist (any more)."""


class JobFailed(StorageError):
    """A job ended in `error`. `kind` tells the caller what to do about it."""

    def __init__(self, message: str, *, code: str | None, job_id: int, results: Any = None) -> None:
        super().__init__(message, code=code)
        self.job_id = job_id
        self.results = results

    @property
    def kind(self) -> str:
        """content: the file is wrong; file: upload again; missing: the target vanished; transient: retry."""
        code = self.code or ""
        if code in FILE_ERROR_CODES:
            return "file"
        if code in MISSING_TARGET_CODES:
            return "missing"
        if code.startswith(CONTENT_ERROR_PREFIXES):
            return "content"
        return "transient"


class Abandoned(KeboolaSyncError):
    """Shutdown ran out of time while waiting on Keboola; the ledger keeps what the next start needs."""


@dataclass(frozen=True)
class TokenInfo:
    project_id: int | str | None
    project_name: str
    description: str
    can_manage_buckets: bool
    bucket_permissions: dict[str, str]
    file_storage_provider: str


@dataclass(frozen=True)
class RemoteTable:
    table_id: str
    columns: tuple[str, ...]
    rows_count: int | None


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    results: dict[str, Any]
    rows: int | None
    columns: tuple[str, ...]


class _Http:
    """Stands in for the SDK's `RetryRequests`: one attempt, always with a timeout, a pooled session
    per thread, and a note of every time Keboola answered (health reports the last contact)."""

    def __init__(self, timeout: float, on_contact: Callable[[], None]) -> None:
        self._timeout = timeout
        self._on_contact = on_contact
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        response = self._session().request(method, url, **kwargs)
        if response.status_code < 500:
            self._on_contact()
        return response

    def get(self, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return self._send("GET", url, **kwargs)

    def post(self, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return self._send("POST", url, **kwargs)

    def put(self, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return self._send("PUT", url, **kwargs)

    def delete(self, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return self._send("DELETE", url, **kwargs)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def translate(exc: Exception, what: str) -> StorageError:
    """Turn whatever the SDK, requests or boto3 raised into our classes: one place reads error shapes."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        response = exc.response
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        message = str(body.get("error") or body.get("message") or response.reason or "no message")
        if len(message) > 300:  # a server that is not Keboola may answer with a whole page
            message = message[:300] + "..."
        code = body.get("code")
        status = response.status_code
        text = f"{what}: HTTP {status} {message}" + (f" ({code})" if code else "")
        if status in TRANSIENT_STATUSES or status >= 500:
            return StorageTransient(text, code=code, status=status, retry_after=_retry_after(response))
        if status == 401:
            return TokenRejected(text, code=code, status=status)
        if status == 404:
            return NotFound(text, code=code, status=status)
        return StorageTerminal(text, code=code, status=status)
    if isinstance(exc, requests.RequestException | botocore.exceptions.BotoCoreError | ConnectionError | TimeoutError):
        return StorageTransient(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        text = f"{what}: S3 {exc.response.get('Error', {}).get('Code', '')} {exc}"
        if status in TRANSIENT_STATUSES or status >= 500:
            return StorageTransient(text, status=status)
        return StorageTerminal(text, status=status)
    return StorageTerminal(f"{what}: {type(exc).__name__}: {exc}")


class UploadProgress:
    """Logs bytes, rate and ETA of a long upload every `interval` seconds (boto3 calls it from threads)."""

    def __init__(self, label: str, total: int, interval: float, abandon: threading.Event) -> None:
        self._label, self._total, self._interval, self._abandon = label, total, interval, abandon
        self._done = 0
        self._lock = threading.Lock()
        self._start = self._last = time.monotonic()

    def __call__(self, nbytes: int) -> None:
        if self._abandon.is_set():
            raise Abandoned(f"upload of {self._label} abandoned at shutdown")
        with self._lock:
            self._done += nbytes
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


class Storage:
    """Buckets, tables, uploads and jobs, each method with a stated contract (see docstrings)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        keboola: KeboolaConfig,
        retry: RetryConfig,
        upload: UploadConfig,
        progress_seconds: float = 5.0,
        abandon: threading.Event | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._keboola, self._retry, self._upload = keboola, retry, upload
        self._progress_seconds = progress_seconds
        self.abandon = abandon or threading.Event()
        self.last_contact: float | None = None
        http = _Http(keboola.request_timeout_seconds, self._contact)
        self._buckets = Buckets(self.url, token)
        self._tables = Tables(self.url, token)
        self._files = Files(self.url, token)
        self._jobs = Jobs(self.url, token)
        self._tokens = Tokens(self.url, token)
        for endpoint in (self._buckets, self._tables, self._files, self._jobs, self._tokens):
            endpoint.requests = http  # the SDK's own 11-attempt retry loop is off; ours wraps calls
        # Our own boto3 session, and clients made under a lock: boto3 documents that a Session is not
        # thread-safe, and the load workers build clients concurrently.
        self._boto = boto3.session.Session()
        self._s3_clients: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._s3_clients_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load botocore's S3 model in the background (~0.2 s of CPU), so the first upload does not wait
        for it. Harmless if it fails: the first upload then loads it itself."""

        def build() -> None:
            with contextlib.suppress(Exception), self._s3_clients_lock:
                self._boto.client(
                    "s3",
                    region_name="us-east-1",
                    aws_access_key_id="warm-up",
                    aws_secret_access_key="warm-up",  # noqa: S106 - not a credential
                )

        threading.Thread(target=build, name="keboola-sync-warm-up", daemon=True).start()

    def _contact(self) -> None:
        self.last_contact = time.time()

    # -- the one retry policy ----------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        """Full-jitter exponential backoff, but never shorter than a Retry-After Keboola asked for."""
        attempt = state.attempt_number
        cap = min(self._retry.max_backoff_seconds, self._retry.initial_backoff_seconds * 2 ** (attempt - 1))
        pause = random.uniform(self._retry.initial_backoff_seconds / 2, max(cap, 0.001))
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            pause = max(pause, min(retry_after, 900.0))
        return pause

    def _sleep(self, seconds: float) -> None:
        if self.abandon.wait(seconds):
            raise Abandoned("shutdown while waiting to retry")

    def _retrying(self, what: str, call: Callable[[], T], *, before_retry: Callable[[], T | None] | None = None) -> T:
        """Run `call` under the retry policy. `before_retry` may find that an earlier attempt in fact
        succeeded (an import POST whose answer was lost) and return its result instead of re-sending."""

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            pause = state.next_action.sleep if state.next_action else 0
            log.warning(
                "%s failed (attempt %d/%d): %s; retrying in %.1f s",
                what,
                state.attempt_number,
                self._retry.max_attempts,
                exc,
                pause,
            )

        tries = 0

        def attempt() -> T:
            nonlocal tries
            if before_retry is not None and tries > 0:
                found = before_retry()
                if found is not None:
                    return found
            tries += 1
            try:
                return call()
            except Abandoned:
                raise
            except Exception as exc:  # translated, then classified by type below
                raise translate(exc, what) from exc

        retrying = Retrying(
            stop=stop_after_attempt(self._retry.max_attempts),
            wait=self._wait,
            sleep=self._sleep,
            retry=retry_if_exception_type(StorageTransient),
            before_sleep=log_retry,
            reraise=True,
        )
        return retrying(attempt)

    # -- token and buckets -------------------------------------------------------------------------

    def verify_token(self) -> TokenInfo:
        """GET tokens/verify (§1.3). Raises TokenRejected for a bad token. Never log the payload: it
        contains the token itself (§9 item 17)."""
        data = self._retrying("verifying the token", self._tokens.verify)
        owner = data.get("owner") or {}
        return TokenInfo(
            project_id=owner.get("id"),
            project_name=str(owner.get("name", "")),
            description=str(data.get("description", "")),
            can_manage_buckets=bool(data.get("canManageBuckets")),
            bucket_permissions=dict(data.get("bucketPermissions") or {}),
            file_storage_provider=str(owner.get("fileStorageProvider", "aws")),
        )

    def ping(self) -> None:
        """One token check, no retries: the idle keepalive behind the health report (any answer from
        Keboola refreshes `last_contact`). Raises StorageError when Keboola does not answer."""
        try:
            self._tokens.verify()
        except Exception as exc:
            raise translate(exc, "checking Keboola") from exc

    def bucket_exists(self, bucket_id: str) -> bool:
        try:
            self._retrying(f"reading bucket {bucket_id}", lambda: self._buckets.detail(bucket_id))
        except NotFound:
            return False
        return True

    def ensure_bucket(self, bucket_name: str, stage: str) -> tuple[str, bool]:
        """Make sure `<stage>.c-<bucket_name>` exists. Returns (bucket id, created now?). An
        `alreadyExists` answer is success: it happens when a create's response was lost and retried
        (§3.4: the Go SDK documents the race)."""
        bucket_id = f"{stage}.c-{bucket_name}"
        if self.bucket_exists(bucket_id):
            return bucket_id, False
        try:
            self._retrying(f"creating bucket {bucket_id}", lambda: self._buckets.create(bucket_name, stage=stage))
        except StorageTerminal as exc:
            if exc.code == "storage.buckets.alreadyExists":
                return bucket_id, False
            raise
        return bucket_id, True

    # -- tables ------------------------------------------------------------------------------------

    def get_table(self, table_id: str) -> RemoteTable | None:
        """The table's columns, or None when the table (or its bucket) does not exist (§4.1)."""
        try:
            data = self._retrying(f"reading table {table_id}", lambda: self._tables.detail(table_id))
        except NotFound:
            return None
        return RemoteTable(
            table_id=data["id"], columns=tuple(data.get("columns") or ()), rows_count=data.get("rowsCount")
        )

    def list_table_ids(self) -> set[str]:
        """Every table of the project, in one call (GET tables, §4.1): how a rescan notices tables
        dropped in Keboola while their files did not change."""
        tables = self._retrying("listing tables", self._tables.list)
        return {t["id"] for t in tables or [] if isinstance(t, dict) and "id" in t}

    # -- files -------------------------------------------------------------------------------------

    def upload(self, spool: Path, *, label: str) -> int:
        """Upload a spool file to Keboola file storage and return the file id. The Keboola file is named
        after the spool, so a gzipped spool (`.gz`) is decompressed by the import (§4.6)."""
        size = spool.stat().st_size
        prepared = self._retrying(
            f"preparing the upload of {label}",
            lambda: self._files.prepare_upload(
                spool.name, size_bytes=size, tags=["keboola-sync"], is_encrypted=True, federation_token=True
            ),
        )
        provider = prepared.get("provider", "aws")
        if provider != "aws" or "uploadParams" not in prepared:
            # Azure and GCP: the SDK's uploader (one more prepare, then the cloud SDK's own chunking).
            # It writes nothing beside the file when compress=False (§9 item 7).
            return int(
                self._retrying(
                    f"uploading {label} ({provider})",
                    lambda: self._files.upload_file(str(spool), tags=["keboola-sync"], compress=False),
                )
            )
        self._retrying(f"uploading {label}", lambda: self._upload_s3(prepared, spool, size, label))
        return int(prepared["id"])

    def upload_stream(self, reader: Any, *, name: str, size_hint: int, label: str) -> int:
        """Upload from a spool that is still being written (csvfile.SpoolReader), overlapping the upload
        with the compression. One attempt: on any failure the caller uploads the finished spool with the
        full retry policy instead. AWS only (the other providers' SDK uploaders need a finished file)."""
        prepared = self._retrying(
            f"preparing the upload of {label}",
            lambda: self._files.prepare_upload(
                name, size_bytes=None, tags=["keboola-sync"], is_encrypted=True, federation_token=True
            ),
        )
        if prepared.get("provider", "aws") != "aws" or "uploadParams" not in prepared:
            raise StorageTerminal(f"uploading {label}: streaming needs the aws provider")
        try:
            self._upload_s3_growing(prepared, reader, size_hint, label)
        except Abandoned:
            raise
        except Exception as exc:
            raise translate(exc, f"uploading {label} while compressing") from exc
        return int(prepared["id"])

    def _s3(self, prepared: dict[str, Any]) -> tuple[Any, dict[str, str]]:
        """A boto3 S3 client with the prepare call's short-lived credentials, and the headers every
        write must carry. AWS_ENDPOINT_URL_S3 (the emulator) is honoured by boto3 itself.

        Clients are kept per set of credentials (the last few): building one costs ~10 ms of CPU under
        the GIL (event hooks, an SSL context, a connection pool), which was a sixth of the daemon's CPU
        when many small files load at once. A stack that hands out the same credentials again reuses
        the client and its open connections; one that hands out new ones per file pays as before."""
        params = prepared["uploadParams"]
        creds = params["credentials"]
        region = prepared.get("region") or "us-east-1"
        key = (region, creds["AccessKeyId"], creds["SecretAccessKey"], creds.get("SessionToken") or "")
        with self._s3_clients_lock:
            client = self._s3_clients.get(key)
            if client is not None:
                self._s3_clients.move_to_end(key)
            else:
                client = self._new_s3_client(region, creds)
                self._s3_clients[key] = client
                while len(self._s3_clients) > S3_CLIENTS_KEPT:
                    self._s3_clients.popitem(last=False)
        extra: dict[str, str] = {}
        if params.get("acl"):
            extra["ACL"] = params["acl"]
        if params.get("x-amz-server-side-encryption"):
            # Encrypted file keys are refused without the header (§5.1, PHPT AwsFileTest).
            extra["ServerSideEncryption"] = params["x-amz-server-side-encryption"]
        return client, extra

    def _new_s3_client(self, region: str, creds: dict[str, Any]) -> Any:
        return self._boto.client(
            "s3",
            region_name=region,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds.get("SessionToken"),
            config=botocore.config.Config(
                connect_timeout=self._keboola.request_timeout_seconds,
                read_timeout=self._keboola.request_timeout_seconds,
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=max(10, self._upload.multipart_concurrency * 2),
                # Integrity is the CRC32 checksum botocore adds to every write; over TLS (every real
                # stack) botocore skips the SHA-256 of the body anyway, so over the emulator's plain
                # HTTP it would only cost CPU: a second hash of every uploaded byte.
                s3={"payload_signing_enabled": False},
            ),
        )

    def _upload_s3(self, prepared: dict[str, Any], spool: Path, size: int, label: str) -> None:
        """Multipart upload with parallel parts through boto3's transfer manager (no 5 GB ceiling)."""
        params = prepared["uploadParams"]
        client, extra = self._s3(prepared)
        mib = 1024 * 1024
        if size < self._upload.multipart_threshold_mb * mib:
            # One PutObject, as the transfer manager would send, without its per-call thread pool.
            with spool.open("rb") as body:
                client.put_object(Bucket=params["bucket"], Key=params["key"], Body=body, **extra)
            return
        transfer = TransferConfig(
            multipart_threshold=int(self._upload.multipart_threshold_mb * mib),
            multipart_chunksize=int(self._upload.multipart_chunk_mb * mib),
            max_concurrency=self._upload.multipart_concurrency,
            use_threads=True,
        )
        progress = UploadProgress(label, size, self._progress_seconds, self.abandon)
        client.upload_file(
            str(spool), params["bucket"], params["key"], ExtraArgs=extra, Config=transfer, Callback=progress
        )

    def _upload_s3_growing(self, prepared: dict[str, Any], reader: Any, size: int, label: str) -> None:
        """Multipart upload of a spool that is still being written: part n goes as soon as its bytes are
        on disk. Parts are windows over the spool file read with pread, so memory stays flat (a stream
        handed to boto3 would buffer up to ten parts in RAM)."""
        params = prepared["uploadParams"]
        bucket, key = params["bucket"], params["key"]
        client, extra = self._s3(prepared)
        chunk = int(self._upload.multipart_chunk_mb * 1024 * 1024)
        progress = UploadProgress(label, size, self._progress_seconds, self.abandon)
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]

        def send(number: int, start: int, length: int) -> dict[str, Any]:
            body = reader.window(start, length)
            answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
            progress(length)
            return {"PartNumber": number, "ETag": answer["ETag"]}

        try:
            with ThreadPoolExecutor(self._upload.multipart_concurrency, thread_name_prefix="part") as pool:
                running: set[Future[dict[str, Any]]] = set()
                done_parts: list[Future[dict[str, Any]]] = []
                start, number = 0, 1
                while True:
                    written, finished = reader.wait_for(start + chunk)
                    length = min(chunk, written - start)
                    if length <= 0 and finished:
                        break
                    if len(running) >= self._upload.multipart_concurrency:
                        completed, running = wait(running, return_when=FIRST_COMPLETED)
                        for future in completed:
                            future.result()  # a failed part fails the upload now
                    if self.abandon.is_set():
                        raise Abandoned(f"upload of {label} abandoned at shutdown")
                    future = pool.submit(send, number, start, length)
                    running.add(future)
                    done_parts.append(future)
                    start, number = start + length, number + 1
                parts = [f.result() for f in done_parts]
            client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    def file_is_usable(self, file_id: int, uploaded_at: float | None) -> bool:
        """Can an import still read this Keboola file? False when it is near its 15-day expiry or gone."""
        if uploaded_at is None or time.time() - uploaded_at > FILE_REUSE_SECONDS:
            return False
        try:
            self._retrying(f"reading file {file_id}", lambda: self._files.detail(file_id))
        except NotFound:
            return False
        return True

    # -- jobs --------------------------------------------------------------------------------------

    def find_job_for_file(self, file_id: int, table_id: str | None = None) -> int | None:
        """The newest create/import job that used this file and did not fail, if any (GET jobs, §6.1).
        Used before any re-send of an import whose answer was lost, so an import is never sent twice
        blindly; a job that ended in `error` loaded nothing, so it does not count."""
        jobs = self._retrying("listing jobs", self._jobs.list)
        for job in jobs or []:
            source = (job.get("operationParams") or {}).get("source") or {}
            if str(source.get("fileId")) != str(file_id) or job.get("status") == "error":
                continue
            if job.get("operationName") not in ("tableImport", "tableCreate"):
                continue
            if table_id and job.get("tableId") not in (None, table_id):
                continue
            return int(job["id"])
        return None

    def start_create_table(self, bucket_id: str, name: str, file_id: int, dialect: Dialect) -> int:
        """POST tables-async (§4.2); returns the job id. Retried only after checking the job list."""
        return self._start_job(
            f"creating table {bucket_id}.{name}",
            file_id,
            f"{bucket_id}.{name}",
            lambda: self._tables.create_raw(
                bucket_id,
                name,
                data_file_id=file_id,
                delimiter=dialect.delimiter,
                enclosure=dialect.enclosure,
                escaped_by=dialect.escaped_by,
            ),
        )

    def start_full_load(self, table_id: str, file_id: int, dialect: Dialect) -> int:
        """POST import-async with incremental=0 (§4.5.1: the table is emptied, then loaded)."""
        return self._start_job(
            f"loading table {table_id}",
            file_id,
            table_id,
            lambda: self._tables.load_raw(
                table_id,
                data_file_id=file_id,
                is_incremental=False,
                delimiter=dialect.delimiter,
                enclosure=dialect.enclosure,
                escaped_by=dialect.escaped_by,
            ),
        )

    def _start_job(self, what: str, file_id: int, table_id: str, post: Callable[[], dict[str, Any]]) -> int:
        def sent_already() -> int | None:
            return self.find_job_for_file(file_id, table_id)

        job = self._retrying(what, post, before_retry=sent_already)
        return job if isinstance(job, int) else int(job["id"])

    def wait_for_job(self, job_id: int, *, what: str) -> JobOutcome:
        """Poll until the job ends, within keboola.job_timeout_seconds. Raises JobFailed (with Keboola's
        code, which the SDK would drop, §9 item 6) or StorageTransient on the deadline."""
        started = time.monotonic()
        deadline = started + self._keboola.job_timeout_seconds
        pause = 0.1
        while True:
            job = self._retrying(f"{what}: polling job {job_id}", lambda: self._jobs.detail(job_id))
            status = job.get("status")
            if status == "success":
                results = job.get("results") or {}
                if not isinstance(results, dict):
                    results = {}
                rows = results.get("totalRowsCount", results.get("rowsCount"))
                columns = tuple(results.get("importedColumns") or results.get("columns") or ())
                return JobOutcome(job_id=job_id, results=results, rows=rows, columns=columns)
            if status == "error":
                error = job.get("error") or {}
                raise JobFailed(
                    f"{what}: job {job_id} failed: {error.get('message', 'no message')}",
                    code=error.get("code"),
                    job_id=job_id,
                    results=job.get("results"),
                )
            if time.monotonic() > deadline:
                raise StorageTransient(
                    f"{what}: job {job_id} still {status} after {self._keboola.job_timeout_seconds:.0f} s"
                )
            if self.abandon.wait(pause):
                raise Abandoned(f"{what}: stopped waiting for job {job_id} at shutdown")
            # Back off, but never past a tenth of the time the job has taken so far: a job is seen
            # finished at most ~10 % late, and a long one still costs few polls.
            elapsed = time.monotonic() - started
            pause = min(pause * 1.5, self._keboola.job_poll_max_seconds, max(0.5, elapsed / 10))

    def job_status(self, job_id: int) -> dict[str, Any] | None:
        """The job as Keboola sees it, or None if it does not know it."""
        try:
            return self._retrying(f"reading job {job_id}", lambda: self._jobs.detail(job_id))
        except NotFound:
            return None
