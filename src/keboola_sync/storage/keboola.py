"""The SDK door: every call the daemon makes to Keboola Storage, each with a stated contract.

Why a wrapper and not the SDK as it is (keboola-storage-api.md §9): the SDK sets no HTTP timeout, retries
every verb on 5xx for up to ~17 minutes (POSTs included, so an import can run twice), never retries 429 or
a dropped connection, polls jobs without a deadline, drops the error code of a failed job, and uploads to
S3 with a single PUT (5 GB ceiling). Here every request has a timeout and exactly one attempt inside the
SDK (`http.py`); the one retry policy (`retry.py`) wraps whole calls, honours Retry-After, and never
re-sends an import before asking Keboola whether a job for that file already exists. Only `StorageError`
subclasses (and `Abandoned` at shutdown) leave this module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kbcstorage.buckets import Buckets  # type: ignore[import-untyped, unused-ignore]
from kbcstorage.files import Files  # type: ignore[import-untyped, unused-ignore]
from kbcstorage.jobs import Jobs  # type: ignore[import-untyped, unused-ignore]
from kbcstorage.tables import Tables  # type: ignore[import-untyped, unused-ignore]
from kbcstorage.tokens import Tokens  # type: ignore[import-untyped, unused-ignore]

from ..config import KeboolaConfig, RetryConfig, UploadConfig
from .errors import Abandoned, JobFailed, NotFound, StorageTerminal, StorageTransient, classify
from .http import OneAttemptHttp
from .retry import RetryPolicy
from .s3upload import S3Uploader, is_s3
from .uploads import GrowingFile, Meter, NoMeter, Uploader

# Files of Keboola file storage live 15 days (§5.4); reuse a kept file id only well within that.
FILE_REUSE_SECONDS = 14 * 24 * 3600
# A job is polled first after this long, then less often (see wait_for_job).
FIRST_POLL_SECONDS = 0.1
# The SDK sends tags only when given a list (kbcstorage files.py); each call gets its own.
UPLOAD_TAGS = ("keboola-sync",)


class TableDialect(Protocol):
    """How the CSV is written, as tables-async / import-async want it (§4.2): "" means none."""

    @property
    def delimiter(self) -> str: ...

    @property
    def enclosure(self) -> str: ...

    @property
    def escaped_by(self) -> str: ...


@dataclass(frozen=True)
class TokenInfo:
    project_id: int | str | None
    project_name: str
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
        meter: Meter | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._keboola = keboola
        self.abandon = abandon or threading.Event()
        self.last_contact: float | None = None
        self.meter: Meter = meter or NoMeter()
        self._policy = RetryPolicy(retry, self.abandon, on_retry=self.meter.retried)
        http = OneAttemptHttp(keboola.request_timeout_seconds, self._contact)
        self._buckets = Buckets(self.url, token)
        self._tables = Tables(self.url, token)
        self._files = Files(self.url, token)
        self._jobs = Jobs(self.url, token)
        self._tokens = Tokens(self.url, token)
        for endpoint in (self._buckets, self._tables, self._files, self._jobs, self._tokens):
            endpoint.requests = http  # the SDK's own 11-attempt retry loop is off; ours wraps calls
        self._s3 = S3Uploader(
            request_timeout=keboola.request_timeout_seconds,
            upload=upload,
            progress_seconds=progress_seconds,
            abandon=self.abandon,
            meter=self.meter,
        )

    def warm_up(self) -> None:
        """Prepare the S3 client in the background, so the first upload does not wait for it."""
        self._s3.warm_up()

    def _contact(self) -> None:
        self.last_contact = time.time()

    def _retrying(self, what: str, call: Callable[[], Any], *, before_retry: Callable[[], Any] | None = None) -> Any:
        """The SDK returns untyped JSON; every call to it goes through the one retry policy."""
        return self._policy.run(what, call, before_retry=before_retry)

    # -- token and buckets -------------------------------------------------------------------------

    def verify_token(self) -> TokenInfo:
        """GET tokens/verify (§1.3). Raises TokenRejected for a bad token. Never log the payload: it
        contains the token itself (§9 item 17)."""
        data = self._retrying("verifying the token", self._tokens.verify)
        owner = data.get("owner") or {}
        return TokenInfo(
            project_id=owner.get("id"),
            project_name=str(owner.get("name", "")),
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
            raise classify(exc, "checking Keboola") from exc

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

    def _prepare(self, name: str, size: int | None, label: str) -> Mapping[str, Any]:
        """POST files/prepare (§5.1): where to upload, and with what credentials."""
        prepared: Mapping[str, Any] = self._retrying(
            f"preparing the upload of {label}",
            lambda: self._files.prepare_upload(
                name, size_bytes=size, tags=list(UPLOAD_TAGS), is_encrypted=True, federation_token=True
            ),
        )
        return prepared

    def _uploader(self, prepared: Mapping[str, Any]) -> Uploader | None:
        """The uploader for the cloud the prepare answer names; None: the SDK's own uploader."""
        return self._s3 if is_s3(prepared) else None

    def upload(self, spool: Path, *, label: str) -> int:
        """Upload a spool file to Keboola file storage and return the file id. The Keboola file is named
        after the spool, so a gzipped spool (`.gz`) is decompressed by the import (§4.6)."""
        size = spool.stat().st_size
        prepared = self._prepare(spool.name, size, label)
        uploader = self._uploader(prepared)
        started = time.monotonic()
        self.meter.upload_progress(label, 0, size)
        if uploader is None:
            # Azure and GCP: the SDK's uploader (one more prepare, then the cloud SDK's own chunking).
            # It writes nothing beside the file when compress=False (§9 item 7).
            provider = prepared.get("provider", "aws")
            file_id = int(
                self._retrying(
                    f"uploading {label} ({provider})",
                    lambda: self._files.upload_file(str(spool), tags=list(UPLOAD_TAGS), compress=False),
                )
            )
        else:
            self._retrying(f"uploading {label}", lambda: uploader.upload_file(prepared, spool, size, label))
            file_id = int(prepared["id"])
        self.meter.upload_finished(label, size, time.monotonic() - started)
        return file_id

    def upload_stream(self, reader: GrowingFile, *, name: str, size_hint: int, label: str) -> int:
        """Upload from a spool that is still being written (csvfile.SpoolReader), overlapping the upload
        with the compression. One attempt: on any failure the caller uploads the finished spool with the
        full retry policy instead. AWS only (the other providers' SDK uploaders need a finished file)."""
        prepared = self._prepare(name, None, label)
        uploader = self._uploader(prepared)
        if uploader is None:
            raise StorageTerminal(f"uploading {label}: streaming needs the aws provider")
        started = time.monotonic()
        try:
            uploader.upload_growing(prepared, reader, size_hint, label)
        except Abandoned:
            raise
        except Exception as exc:
            raise classify(exc, f"uploading {label} while compressing") from exc
        written, _ = reader.wait_for(0)  # complete now: the spool's final size
        self.meter.upload_finished(label, written, time.monotonic() - started)
        return int(prepared["id"])

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

    def start_create_table(self, bucket_id: str, name: str, file_id: int, dialect: TableDialect) -> int:
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

    def start_full_load(self, table_id: str, file_id: int, dialect: TableDialect) -> int:
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

    def _start_job(self, what: str, file_id: int, table_id: str, post: Callable[[], Any]) -> int:
        def sent_already() -> int | None:
            return self.find_job_for_file(file_id, table_id)

        job = self._retrying(what, post, before_retry=sent_already)
        return job if isinstance(job, int) else int(job["id"])

    def wait_for_job(self, job_id: int, *, what: str) -> JobOutcome:
        """Poll until the job ends, within keboola.job_timeout_seconds. Raises JobFailed (with Keboola's
        code, which the SDK would drop, §9 item 6) or StorageTransient on the deadline."""
        started = time.monotonic()
        deadline = started + self._keboola.job_timeout_seconds
        pause = FIRST_POLL_SECONDS
        while True:
            job = self._retrying(f"{what}: polling job {job_id}", lambda: self._jobs.detail(job_id))
            status = job.get("status")
            if status in ("success", "error"):
                self.meter.job_finished(time.monotonic() - started)
            if status == "success":
                return _job_outcome(job_id, job)
            if status == "error":
                error = job.get("error") or {}
                raise JobFailed(
                    f"{what}: job {job_id} failed: {error.get('message', 'no message')}",
                    code=error.get("code"),
                    job_id=job_id,
                )
            if time.monotonic() > deadline:
                raise StorageTransient(
                    f"{what}: job {job_id} still {status} after {self._keboola.job_timeout_seconds:.0f} s"
                )
            self._policy.pause(pause, f"{what}: stopped waiting for job {job_id} at shutdown")
            # Back off, but never past a tenth of the time the job has taken so far: a job is seen
            # finished at most ~10 % late, and a long one still costs few polls.
            elapsed = time.monotonic() - started
            pause = min(pause * 1.5, self._keboola.job_poll_max_seconds, max(0.5, elapsed / 10))

    def job_status(self, job_id: int) -> dict[str, Any] | None:
        """The job as Keboola sees it, or None if it does not know it."""
        try:
            job: dict[str, Any] = self._retrying(f"reading job {job_id}", lambda: self._jobs.detail(job_id))
        except NotFound:
            return None
        return job


def _job_outcome(job_id: int, job: Mapping[str, Any]) -> JobOutcome:
    """What a successful load job reports: rows and columns as Keboola counted them."""
    results = job.get("results") or {}
    if not isinstance(results, dict):
        results = {}
    rows = results.get("totalRowsCount", results.get("rowsCount"))
    columns = tuple(results.get("importedColumns") or results.get("columns") or ())
    return JobOutcome(job_id=job_id, results=results, rows=rows, columns=columns)
