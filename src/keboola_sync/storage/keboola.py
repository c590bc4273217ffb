"""The SDK door: every call the daemon makes to Keboola Storage, each with a stated contract.

Why a wrapper and not the SDK as it is (keboola-storage-api.md §9): the SDK sets no HTTP timeout, retries
every verb on 5xx for up to ~17 minutes (POSTs included, so an import can run twice), never retries 429 or
a dropped connection, polls jobs without a deadline, drops the error code of a failed job, and uploads to
S3 with a single PUT (5 GB ceiling). Here every request has a timeout and exactly one attempt inside the
SDK (`http.py`); the one retry policy (`retry.py`) wraps whole calls, honours Retry-After, and never
re-sends an import before asking Keboola whether a job for that file already exists. Only `StorageError`
subclasses (and `Abandoned` at shutdown) leave this module.

Start-up (issue 18.3): the token check needs only the light endpoints. The SDK's table and file endpoints
import boto3, the Azure and the Google SDKs when their module loads (about half a second of CPU), and each
uploader imports its cloud's SDK; they are imported on first use, or in the background by `preload` and
`warm_up` while the token check waits for Keboola, one thread at a time (`SDK_LOCK`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ..config import KeboolaConfig, RetryConfig, UploadConfig
from ..ratelimit import TokenBucket
from .buckets import find_bucket, legacy_prefix, predicted_bucket_id
from .clouds import Cloud, cloud_of
from .errors import Abandoned, JobFailed, NotFound, StorageTerminal, StorageTransient, classify
from .http import OneAttemptHttp
from .jobpace import JobHistory, first_pause, next_pause
from .metadata import (
    PROVIDER,
    MetadataEntry,
    SyncMetadata,
    TableSummary,
    ours,
    parse_entries,
    parse_post_answer,
    table_summary,
)
from .retry import RetryPolicy
from .sdk import SDK_LOCK, Api, CloudUploader, new_uploader, table_and_file_endpoints
from .uploads import GrowingFile, Meter, NoMeter, Uploader

log = logging.getLogger("keboola_sync.storage")

# Files of Keboola file storage live 15 days (§5.4); reuse a kept file id only well within that.
FILE_REUSE_SECONDS = 14 * 24 * 3600
# The SDK sends tags only when given a list (kbcstorage files.py); each call gets its own.
UPLOAD_TAGS = ("keboola-sync",)
# The table list with what a rescan compares: columns, our metadata, lastImportDate (§4.1).
TABLE_LIST_INCLUDE = ["columns", "metadata"]


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
    """What tokens/verify (§1.3) and the index (§2.2) say about the token's project. Holds no secret."""

    project_id: int | str | None
    project_name: str
    can_manage_buckets: bool
    bucket_permissions: dict[str, str]
    file_storage_provider: str
    # Project features from the index `features` and the token's `owner.features` (§2.2, §12: official
    # clients read both; where a stack lists them is UNCONFIRMED).
    features: frozenset[str] = field(default_factory=frozenset)

    @property
    def legacy_bucket_prefix(self) -> bool:
        """Does Keboola put `c-` before the names of new buckets (§3.2)? Not with the project feature
        `disable-legacy-bucket-prefix` (§12)."""
        return legacy_prefix(self.features)


class EnsuredBucket(NamedTuple):
    """A folder's bucket: its id as Keboola knows it, and whether it was created just now."""

    bucket_id: str
    created: bool


@dataclass(frozen=True)
class RemoteTable:
    table_id: str
    columns: tuple[str, ...]
    rows_count: int | None
    last_import_date: str | None = None  # as Keboola wrote it: compared only with values Keboola gave
    created: str | None = None  # when Keboola created the table (its clock)
    marks: Mapping[str, str] = field(default_factory=dict)  # our provider's metadata (metadata.py keys)


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
        self.token_info: TokenInfo | None = None  # set by verify_token / use_token
        self.meter: Meter = meter or NoMeter()
        self._policy = RetryPolicy(retry, self.abandon, on_retry=self.meter.retried)
        # Every Storage API request waits for the request-rate bucket (issue 16.7); file storage (S3)
        # traffic does not go through here.
        self._limiter = TokenBucket(keboola.max_requests_per_second)
        self._http = OneAttemptHttp(
            keboola.request_timeout_seconds, self._contact, limiter=self._limiter, stop=self.abandon
        )
        self._api = self._connect(token)
        self._token_lock = threading.Lock()
        self._job_history = JobHistory()  # how long the last create/import took: polls near the end
        # One uploader per cloud, all under the one retry policy and reporting to the one meter; each
        # upload picks one from its prepare answer (_uploader), made when a cloud is first asked for.
        self._upload = upload
        self._progress_seconds = progress_seconds
        self._uploaders: dict[Cloud, CloudUploader] = {}

    def _connect(self, token: str) -> Api:
        """The SDK endpoints for `token` (see `Api`)."""
        return Api(self.url, token, self._http)

    def use_settings(
        self, *, keboola: KeboolaConfig, retry: RetryConfig, upload: UploadConfig, progress_seconds: float
    ) -> None:
        """A reloaded configuration: timeouts, retry, upload and progress settings apply to every call
        that starts from now on (each is one frozen section swapped whole; the URL never changes)."""
        if keboola.max_requests_per_second != self._keboola.max_requests_per_second:
            self._limiter = TokenBucket(keboola.max_requests_per_second)  # a new bucket: no rate mixed mid-wait
            self._http.limiter = self._limiter
        self._keboola = keboola
        self._policy.config = retry
        self._http.timeout = keboola.request_timeout_seconds
        with SDK_LOCK:  # an uploader made meanwhile gets the new settings too
            self._upload, self._progress_seconds = upload, progress_seconds
            for uploader in self._uploaders.values():
                uploader.use_settings(keboola.request_timeout_seconds, upload, progress_seconds)

    def preload(self) -> None:
        """Import the SDK's table and file endpoints in a background thread (see the module docstring):
        called before the token check, whose round trips to Keboola it overlaps. Harmless if it fails:
        the first use then imports them itself."""

        def load() -> None:
            with contextlib.suppress(Exception):
                table_and_file_endpoints()

        threading.Thread(target=load, name="keboola-sync-preload", daemon=True).start()

    def warm_up(self) -> None:
        """After the token check: make the uploader of the project's cloud in the background, and on AWS
        load botocore's S3 model (~0.2 s of CPU), so the first upload waits for neither."""
        provider = self.token_info.file_storage_provider if self.token_info is not None else "aws"
        cloud: Cloud = "azure" if provider == "azure" else "gcp" if provider == "gcp" else "aws"

        def build() -> None:
            with contextlib.suppress(Exception):
                uploader = self._uploader_of(cloud)
                if cloud == "aws":
                    from .s3upload import S3Uploader  # imported by _uploader_of just now

                    if isinstance(uploader, S3Uploader):
                        uploader.warm_up()

        threading.Thread(target=build, name="keboola-sync-warm-up", daemon=True).start()

    def _uploader_of(self, cloud: Cloud) -> CloudUploader:
        """This storage's uploader for `cloud`, made (and its SDK imported) on first use."""
        with SDK_LOCK:
            uploader = self._uploaders.get(cloud)
            if uploader is None:
                uploader = self._uploaders[cloud] = new_uploader(
                    cloud,
                    {
                        "request_timeout": self._keboola.request_timeout_seconds,
                        "upload": self._upload,
                        "progress_seconds": self._progress_seconds,
                        "abandon": self.abandon,
                        "policy": self._policy,
                        "meter": self.meter,
                    },
                )
        return uploader

    def _contact(self) -> None:
        self.last_contact = time.time()

    def _retrying(self, what: str, call: Callable[[], Any], *, before_retry: Callable[[], Any] | None = None) -> Any:
        """The SDK returns untyped JSON; every call to it goes through the one retry policy."""
        return self._policy.run(what, call, before_retry=before_retry)

    # -- token and buckets -------------------------------------------------------------------------

    def verify_token(self) -> TokenInfo:
        """GET tokens/verify (§1.3) and the index (§2.2) for the project's features. Raises TokenRejected
        for a bad token. Never log the payload: it contains the token itself (§9 item 17)."""
        info = self._verify(self._api, "verifying the token")
        self.token_info = info
        return info

    def use_token(self, token: str) -> TokenInfo:
        """Rotate the token (issue 16.2): verify `token` with tokens/verify first; only when Keboola accepts
        it does every request that starts afterwards carry it (requests already under way finish with the
        old one). A rejected token raises TokenRejected (any other failure its StorageError) and the old
        token stays in use. The token itself never appears in a message or a log line."""
        api = self._connect(token)
        info = self._verify(api, "verifying the new token")
        with self._token_lock:
            self._api = api
            self.token_info = info
        return info

    def _verify(self, api: Api, what: str) -> TokenInfo:
        data = self._retrying(what, api.tokens.verify)
        owner = data.get("owner") or {}
        features = _names(owner.get("features")) | self._index_features(api)
        return TokenInfo(
            project_id=owner.get("id"),
            project_name=str(owner.get("name", "")),
            can_manage_buckets=bool(data.get("canManageBuckets")),
            bucket_permissions=dict(data.get("bucketPermissions") or {}),
            file_storage_provider=str(owner.get("fileStorageProvider", "aws")),
            features=features,
        )

    def _index_features(self, api: Api) -> frozenset[str]:
        """The project features the index lists (§2.2). The index is read only for them: a stack or proxy
        that refuses it (a 4xx) leaves the token's `owner.features`; one that does not answer is an error
        like any other."""
        try:
            index = self._retrying("reading the Storage API index", api.index.detail)
        except StorageTerminal:
            return frozenset()
        return _names(index.get("features") if isinstance(index, dict) else None)

    def ping(self) -> None:
        """One token check, no retries: the idle keepalive behind the health report (any answer from
        Keboola refreshes `last_contact`). Raises StorageError when Keboola does not answer."""
        try:
            self._api.tokens.verify()
        except Exception as exc:
            raise classify(exc, "checking Keboola") from exc

    def bucket_exists(self, bucket_id: str) -> bool:
        try:
            self._retrying(f"reading bucket {bucket_id}", lambda: self._api.buckets.detail(bucket_id))
        except NotFound:
            return False
        return True

    def predicted_bucket_id(self, bucket_name: str, stage: str) -> str:
        """The id a bucket created for `bucket_name` would get, from the verified token's features (§12);
        `c-` style before verify_token. For messages and dry runs: `ensure_bucket` gives the real id."""
        legacy = self.token_info.legacy_bucket_prefix if self.token_info is not None else True
        return predicted_bucket_id(bucket_name, stage, legacy=legacy)

    def find_bucket(self, bucket_name: str, stage: str) -> str | None:
        """The id of the existing bucket for folder `bucket_name` in `stage` (by id, name or displayName,
        with or without `c-`; see buckets.find_bucket), or None. One call: GET buckets (§3.1)."""
        listed = self._retrying("listing buckets", self._api.buckets.list)
        return find_bucket([b for b in listed or [] if isinstance(b, dict)], bucket_name, stage)

    def ensure_bucket(self, bucket_name: str, stage: str) -> EnsuredBucket:
        """The bucket of folder `bucket_name` in `stage`: an existing one (found by `find_bucket`), else
        created now with the id Keboola gives it (`in.c-sales`, or `in.sales` in projects with
        `disable-legacy-bucket-prefix`, §12). An `alreadyExists` answer to the create means a bucket
        appeared meanwhile, or a create whose response was lost did succeed (§3.4: the Go SDK documents
        the race); it is looked up again and returned."""
        found = self.find_bucket(bucket_name, stage)
        if found is not None:
            return EnsuredBucket(found, created=False)
        what = f"creating bucket {self.predicted_bucket_id(bucket_name, stage)}"
        try:
            created = self._retrying(what, lambda: self._api.buckets.create(bucket_name, stage=stage))
        except StorageTerminal as exc:
            if exc.code != "storage.buckets.alreadyExists":
                raise
            found = self.find_bucket(bucket_name, stage)
            if found is None:
                raise
            return EnsuredBucket(found, created=False)
        if not isinstance(created, dict) or not created.get("id"):
            raise StorageTerminal(f"{what}: Keboola's answer names no bucket id")
        return EnsuredBucket(str(created["id"]), created=True)

    # -- tables ------------------------------------------------------------------------------------

    def get_table(self, table_id: str) -> RemoteTable | None:
        """The table's columns, or None when the table (or its bucket) does not exist (§4.1)."""
        try:
            data = self._retrying(f"reading table {table_id}", lambda: self._api.tables.detail(table_id))
        except NotFound:
            return None
        return RemoteTable(
            table_id=data["id"],
            columns=tuple(data.get("columns") or ()),
            rows_count=data.get("rowsCount"),
            last_import_date=data.get("lastImportDate"),
            created=data.get("created"),
            marks=ours(parse_entries(data.get("metadata"))),
        )

    def list_tables(self, bucket_id: str | None = None) -> list[TableSummary]:
        """Every table of the project (or of one bucket) with its columns, our metadata and
        `lastImportDate`, in one call: `GET tables?include=columns,metadata` (§4.1; per bucket `GET
        buckets/{id}/tables?include=...`, §3.1). What a rescan compares with the ledger (issues 12.1,
        12.5, 12.7) without one call per table. A missing bucket raises NotFound."""
        if bucket_id is None:
            listed = self._retrying("listing tables", lambda: self._api.tables.list(include=TABLE_LIST_INCLUDE))
        else:
            listed = self._retrying(
                f"listing the tables of bucket {bucket_id}",
                lambda: self._api.buckets.list_tables(bucket_id, include=TABLE_LIST_INCLUDE),
            )
        return [table_summary(t) for t in listed or [] if isinstance(t, dict) and "id" in t]

    # -- table metadata (§4.1, §12) ---------------------------------------------------------------

    def get_table_metadata(self, table_id: str) -> tuple[MetadataEntry, ...]:
        """Every metadata entry of the table, of every provider (GET tables/{id}/metadata). NotFound when
        the table (or its bucket) does not exist."""
        raw = self._retrying(f"reading the metadata of table {table_id}", lambda: self._api.metadata.list(table_id))
        return parse_entries(raw)

    def get_sync_metadata(self, table_id: str) -> SyncMetadata:
        """Our entries of the table (provider `keboola-sync`), typed; absent ones are None/False."""
        return SyncMetadata.from_values(ours(self.get_table_metadata(table_id)))

    def set_sync_metadata(self, table_id: str, metadata: SyncMetadata | Mapping[str, str]) -> SyncMetadata:
        """Write entries of provider `keboola-sync` (POST tables/{id}/metadata, §12) and return all of our
        entries as Keboola holds them afterwards. Only the given keys are written: Keboola adds and updates,
        it removes nothing. The answer may be a list or `{"metadata": [...], "columnsMetadata": {...}}`
        (§12); both are read. Sending the same values twice is harmless, so the write is retried as a
        whole."""
        values = metadata.to_values() if isinstance(metadata, SyncMetadata) else dict(metadata)
        if not values:
            return self.get_sync_metadata(table_id)
        entries = [{"key": k, "value": v} for k, v in values.items()]
        raw = self._retrying(
            f"writing the metadata of table {table_id}",
            lambda: self._api.metadata.create(table_id, PROVIDER, entries),
        )
        return SyncMetadata.from_values(ours(parse_post_answer(raw)))

    # -- files -------------------------------------------------------------------------------------

    def _prepare(self, name: str, size: int | None, label: str) -> Mapping[str, Any]:
        """POST files/prepare (§5.1): where to upload, and with what credentials."""
        prepared: Mapping[str, Any] = self._retrying(
            f"preparing the upload of {label}",
            lambda: self._api.files.prepare_upload(
                name, size_bytes=size, tags=list(UPLOAD_TAGS), is_encrypted=True, federation_token=True
            ),
        )
        log.debug("%s: files/prepare answered (file %s)", label, prepared.get("id"))
        return prepared

    def _uploader(self, prepared: Mapping[str, Any]) -> Uploader | None:
        """The uploader for the cloud the prepare answer names (§5.1: `uploadParams` on AWS stacks,
        `absUploadParams` on Azure, `gcsUploadParams` on GCP); None for a shape we do not know, which
        the SDK's own uploader gets."""
        cloud = cloud_of(prepared)
        return self._uploader_of(cloud) if cloud is not None else None

    def upload(self, spool: Path, *, label: str) -> int:
        """Upload a spool file to Keboola file storage and return the file id. The Keboola file is named
        after the spool, so a gzipped spool (`.gz`) is decompressed by the import (§4.6)."""
        size = spool.stat().st_size
        prepared = self._prepare(spool.name, size, label)
        uploader = self._uploader(prepared)
        started = time.monotonic()
        self.meter.upload_progress(label, 0, size)
        if uploader is None:
            # A prepare answer of no cloud we know: the SDK's uploader (one more prepare, then its own
            # chunking). It writes nothing beside the file when compress=False (§9 item 7).
            provider = prepared.get("provider", "aws")
            file_id = int(
                self._retrying(
                    f"uploading {label} ({provider})",
                    lambda: self._api.files.upload_file(str(spool), tags=list(UPLOAD_TAGS), compress=False),
                )
            )
            self.meter.upload_finished(label, size, time.monotonic() - started)
            return file_id
        # Each request (an S3 PUT or part, an Azure block, a GCS chunk) runs under the retry policy
        # inside the uploader: a failed part is sent again, not the whole file.
        try:
            uploader.upload_file(prepared, spool, size, label)
        except Abandoned:
            raise
        except Exception as exc:
            raise classify(exc, f"uploading {label}") from exc
        self.meter.upload_finished(label, size, time.monotonic() - started)
        log.debug("%s: upload done (%d bytes)", label, size)
        return int(prepared["id"])

    def upload_stream(self, reader: GrowingFile, *, name: str, size_hint: int, label: str) -> int:
        """Upload from a spool that is still being written (csvfile.SpoolReader), overlapping the upload
        with the compression. Each part is retried under the policy; when the upload fails anyway, the
        caller uploads the finished spool instead. Every cloud: S3 parts, Azure blocks, GCS chunks."""
        prepared = self._prepare(name, None, label)
        uploader = self._uploader(prepared)
        if uploader is None:
            raise StorageTerminal(f"uploading {label}: the prepare answer names no cloud this daemon uploads to")
        started = time.monotonic()
        try:
            uploader.upload_growing(prepared, reader, size_hint, label)
        except Abandoned:
            raise
        except Exception as exc:
            raise classify(exc, f"uploading {label} while compressing") from exc
        written, _ = reader.wait_for(0)  # complete now: the spool's final size
        self.meter.upload_finished(label, written, time.monotonic() - started)
        log.debug("%s: upload done while compressing (%d bytes)", label, written)
        return int(prepared["id"])

    def file_is_usable(self, file_id: int, uploaded_at: float | None) -> bool:
        """Can an import still read this Keboola file? False when it is near its 15-day expiry or gone."""
        if uploaded_at is None or time.time() - uploaded_at > FILE_REUSE_SECONDS:
            return False
        try:
            self._retrying(f"reading file {file_id}", lambda: self._api.files.detail(file_id))
        except NotFound:
            return False
        return True

    # -- jobs --------------------------------------------------------------------------------------

    def find_job_for_file(self, file_id: int, table_id: str | None = None) -> int | None:
        """The newest create/import job that used this file and did not fail, if any (GET jobs, §6.1).
        Used before any re-send of an import whose answer was lost, so an import is never sent twice
        blindly; a job that ended in `error` loaded nothing, so it does not count."""
        jobs = self._retrying("listing jobs", lambda: self._api.jobs.list())
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
            lambda: self._api.tables.create_raw(
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
            lambda: self._api.tables.load_raw(
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
        job_id = job if isinstance(job, int) else int(job["id"])
        log.debug("%s: job %s accepted", what, job_id)
        return job_id

    def wait_for_job(self, job_id: int, *, what: str, kind: str = "", size: int | None = None) -> JobOutcome:
        """Poll until the job ends, within keboola.job_timeout_seconds. Raises JobFailed (with Keboola's
        code, which the SDK would drop, §9 item 6) or StorageTransient on the deadline. `kind` and `size`
        (create/import, uploaded bytes): the job is polled near the end the last such job suggests
        (jobpace.py); without them, on the ordinary backoff."""
        started = time.monotonic()
        deadline = started + self._keboola.job_timeout_seconds
        expected = self._job_history.expected(kind, size) if kind else None
        pause = first_pause(expected)
        running_at = 0.0  # the last poll that saw the job unfinished
        while True:
            job = self._retrying(f"{what}: polling job {job_id}", lambda: self._api.jobs.detail(job_id))
            status = job.get("status")
            elapsed = time.monotonic() - started
            log.debug("%s: job %s %s after %.3f s", what, job_id, status, elapsed)
            if status in ("success", "error"):
                self.meter.job_finished(elapsed)
            if status == "success":
                # It ended between the last two polls (Keboola's own times have one-second resolution);
                # the earlier one is kept: polling finely from a little too early costs a few requests,
                # from too late costs the lateness this is meant to remove.
                self._job_history.record(kind, size, running_at or elapsed / 2)
                return _job_outcome(job_id, job)
            if status == "error":
                raise _job_failed(job_id, job, what)
            if time.monotonic() > deadline:
                raise StorageTransient(
                    f"{what}: job {job_id} still {status} after {self._keboola.job_timeout_seconds:.0f} s"
                )
            running_at = elapsed
            self._policy.pause(pause, f"{what}: stopped waiting for job {job_id} at shutdown")
            pause = next_pause(time.monotonic() - started, pause, expected, self._keboola.job_poll_max_seconds)

    def job_status(self, job_id: int) -> dict[str, Any] | None:
        """The job as Keboola sees it, or None if it does not know it."""
        try:
            job: dict[str, Any] = self._retrying(f"reading job {job_id}", lambda: self._api.jobs.detail(job_id))
        except NotFound:
            return None
        return job


def _job_failed(job_id: int, job: Mapping[str, Any], what: str) -> JobFailed:
    """A job that ended in `error` (§6.1): Keboola's code (the SDK would drop it, §9 item 6) and message."""
    error = job.get("error")
    if not isinstance(error, Mapping):
        error = {}
    message = str(error.get("message") or "no message")
    code = error.get("code")
    return JobFailed(
        f"{what}: job {job_id} failed: {message}",
        code=str(code) if code else None,
        job_id=job_id,
        keboola_message=message,
    )


def _names(value: Any) -> frozenset[str]:
    """A feature list as Keboola sends it (a list of names; tolerate `{name: ...}` objects)."""
    if not isinstance(value, list):
        return frozenset()
    return frozenset(str(v.get("name") if isinstance(v, Mapping) else v) for v in value)


def _job_outcome(job_id: int, job: Mapping[str, Any]) -> JobOutcome:
    """What a successful load job reports: rows and columns as Keboola counted them."""
    results = job.get("results") or {}
    if not isinstance(results, dict):
        results = {}
    rows = results.get("totalRowsCount", results.get("rowsCount"))
    columns = tuple(results.get("importedColumns") or results.get("columns") or ())
    return JobOutcome(job_id=job_id, results=results, rows=rows, columns=columns)
