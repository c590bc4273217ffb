"""The storage error tree and the one place that reads error shapes.

Every failure that leaves `storage/` is one of these classes, so the rest of the daemon decides what to do
from the class (retry, skip, stop) and never from an HTTP status, a `requests` or `botocore` exception or
a Keboola error code. `classify` is the only function that looks at those. It never imports a cloud SDK
(botocore, azure-core, Google's libraries: about half a second at start-up, issue 18.3): an exception of a
class can only exist once its module is loaded, so a module not loaded yet cannot have raised anything.
"""

from __future__ import annotations

import re
import sys
from typing import Literal

import requests

from ..errors import KeboolaSyncError

# HTTP statuses worth another try (keboola-storage-api.md §7.3: PHP, Go and kbagent retry these).
TRANSIENT_STATUSES = frozenset({408, 409, 423, 425, 429, 500, 502, 503, 504})
# Job error codes that mean "the file (or its header) is wrong": retrying the same content cannot help.
CONTENT_ERROR_PREFIXES = ("csvImport.", "storage.tables.validation", "invalidCsv", "storage.validation")
# Job error codes that mean "the uploaded file is gone or incomplete": upload again (§5.2, §7.2).
FILE_ERROR_CODES = frozenset(
    {"storage.fileNotUploaded", "storage.importFileMissing", "storage.manifestFileMissing", "storage.files.notFound"}
)
MISSING_TARGET_CODES = frozenset({"storage.tables.notFound", "storage.buckets.notFound"})
# Job error codes known to mean "Keboola had a passing problem": the only job errors that are retried.
# Keboola documents none (§7.2, §12 "Still UNKNOWN"); `storage.jobs.internalError` is the emulator's injected
# internal failure (docs/emulator.md) and `storage.maintenance` the maintenance label of §7.3. Every other
# code, an unknown one included, is a terminal failure that carries Keboola's own message (issue 13.5): a
# guess of "transient" re-sent the same import every round, forever.
TRANSIENT_JOB_CODES = frozenset({"storage.jobs.internalError", "storage.maintenance"})
# Name clashes: another try sends the same name into the same clash (§3.4, §4.2, §12: `Orders` beside
# `orders`), whatever HTTP status or job carries them.
CONFLICT_CODES = frozenset({"storage.buckets.tableAlreadyExists", "storage.buckets.alreadyExists"})
# A server that is not Keboola may answer with a whole page; keep messages to one readable line.
MESSAGE_LIMIT = 300

JobErrorKind = Literal["content", "file", "missing", "conflict", "transient", "failed"]


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
    """A job ended in `error`. `kind` tells the caller what to do about it; `keboola_message` is Keboola's
    own words (for `status` and the log), `str()` the whole line with what we were doing."""

    def __init__(self, message: str, *, code: str | None, job_id: int, keboola_message: str = "") -> None:
        super().__init__(message, code=code)
        self.job_id = job_id
        self.keboola_message = keboola_message or message

    @property
    def kind(self) -> JobErrorKind:
        """See `job_error_kind`."""
        return job_error_kind(self.code)

    @property
    def transient(self) -> bool:
        """Is the same job worth sending again soon? Only for the few codes known to be passing trouble."""
        return self.kind == "transient"


class Abandoned(KeboolaSyncError):
    """Shutdown ran out of time while waiting on Keboola; the ledger keeps what the next start needs."""


def job_error_kind(code: str | None) -> JobErrorKind:
    """A failed job's Keboola error code -> what the caller should do (the table of §7.2):

    - content: the file (or its header) is wrong; skip it until it changes.
    - file: the uploaded file is gone or incomplete; upload again.
    - missing: the bucket or table vanished; create it again.
    - conflict: a table of that name (in any letter case) or display name exists (§12); renaming helps.
    - transient: one of the few codes known to be passing trouble; send the job again.
    - failed: anything else, an unknown code or none at all: a terminal failure with Keboola's message.
    """
    code = code or ""
    if code in FILE_ERROR_CODES:
        return "file"
    if code in MISSING_TARGET_CODES:
        return "missing"
    if code in CONFLICT_CODES:
        return "conflict"
    if code in TRANSIENT_JOB_CODES:
        return "transient"
    if code.startswith(CONTENT_ERROR_PREFIXES):
        return "content"
    return "failed"


def status_class(status: int) -> type[StorageError]:
    """An HTTP status (from Keboola or from S3) -> the class of the error it means."""
    if status in TRANSIENT_STATUSES or status >= 500:
        return StorageTransient
    if status == 401:
        return TokenRejected
    if status == 404:
        return NotFound
    return StorageTerminal


# A URL's query string: an Azure SAS, a GCS upload session id or signature. Credentials, never logged.
_QUERY = re.compile(r"\?[^\s'\"<>]*")


def without_queries(text: str) -> str:
    """`text` with every URL's query string cut: error messages of HTTP clients quote the URL whole."""
    return _QUERY.sub("?…", text)


def classify(exc: BaseException, what: str) -> StorageError:
    """Turn whatever the SDK, requests, boto3, azure-core or Google's upload library raised into our
    classes: the one place that reads error shapes. `what` says what we were doing; it starts the message."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return _from_http(exc.response, what)
    if isinstance(exc, requests.RequestException | ConnectionError | TimeoutError) or _boto_transport(exc):
        return StorageTransient(without_queries(f"{what}: {type(exc).__name__}: {exc}"))
    cloud = _from_azure(exc, what) or _from_gcs(exc, what) or _from_s3(exc, what)
    if cloud is not None:
        return cloud
    return StorageTerminal(without_queries(f"{what}: {type(exc).__name__}: {exc}"))


def _loaded(module: str) -> bool:
    """Has some code imported `module`? Until then none of its exceptions can exist, and the import below
    it in the callers only binds the loaded module (it never loads an SDK just to classify)."""
    return module in sys.modules


def _boto_transport(exc: BaseException) -> bool:
    """botocore's own errors without an answer (connection, timeout, credentials): worth another try."""
    if not _loaded("botocore.exceptions"):
        return False
    import botocore.exceptions  # type: ignore[import-untyped, unused-ignore]

    return isinstance(exc, botocore.exceptions.BotoCoreError)


def _from_s3(exc: BaseException, what: str) -> StorageError | None:
    """An S3 answer (botocore's ClientError), or None."""
    if not _loaded("botocore.exceptions"):
        return None
    import botocore.exceptions  # type: ignore[import-untyped, unused-ignore]

    if not isinstance(exc, botocore.exceptions.ClientError):
        return None
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    text = f"{what}: S3 {exc.response.get('Error', {}).get('Code', '')} {exc}"
    # S3 speaks of its own objects: a 401/404 there is not our token or our table.
    cls = StorageTransient if status_class(status) is StorageTransient else StorageTerminal
    return cls(text, status=status)


def _cloud_status(status: int, text: str) -> StorageError:
    """A file-storage answer: it speaks of its own objects, so a 401/404 is not our token or our table."""
    cls = StorageTransient if status_class(status) is StorageTransient else StorageTerminal
    return cls(without_queries(text), status=status)


def _from_azure(exc: BaseException, what: str) -> StorageError | None:
    """Azure upload errors (azure-core), or None."""
    if not _loaded("azure.core.exceptions"):
        return None
    import azure.core.exceptions

    if isinstance(exc, azure.core.exceptions.HttpResponseError) and exc.status_code:
        code = getattr(exc, "error_code", None) or exc.reason or ""
        code = getattr(code, "value", code)  # azure-storage-blob's StorageErrorCode enum: its wire name
        return _cloud_status(int(exc.status_code), f"{what}: Azure {exc.status_code} {code}")
    if isinstance(exc, azure.core.exceptions.AzureError):  # no answer: connection, timeout, stream
        return StorageTransient(without_queries(f"{what}: {type(exc).__name__}: {exc.message}"))
    return None


def _from_gcs(exc: BaseException, what: str) -> StorageError | None:
    """GCS upload errors (google-resumable-media, google-auth), or None."""
    if _loaded("google.resumable_media.common"):
        from google.resumable_media.common import InvalidResponse

        if isinstance(exc, InvalidResponse):
            status = int(getattr(exc.response, "status_code", 0) or 0)
            return _cloud_status(status, f"{what}: GCS {status} {exc}")
    if _loaded("google.auth.exceptions"):
        import google.auth.exceptions

        if isinstance(exc, google.auth.exceptions.TransportError):
            return StorageTransient(without_queries(f"{what}: {type(exc).__name__}: {exc}"))
    return None


def _from_http(response: requests.Response, what: str) -> StorageError:
    """A Keboola error answer: `{"error": ..., "code": ...}` (§7.1), or whatever a proxy sent instead."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("error") or body.get("message") or response.reason or "no message")
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "..."
    code = body.get("code")
    status = response.status_code
    text = f"{what}: HTTP {status} {message}" + (f" ({code})" if code else "")
    # A name clash is never transient, whatever status carries it (a 409 would otherwise be retried).
    cls = StorageTerminal if code in CONFLICT_CODES else status_class(status)
    if cls is StorageTransient:
        return StorageTransient(text, code=code, status=status, retry_after=retry_after(response))
    return cls(text, code=code, status=status)


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header in its delta-seconds form; None when absent or a date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
