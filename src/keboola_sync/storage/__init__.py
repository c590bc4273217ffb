"""The only room that talks to Keboola Storage, and the only importer of `kbcstorage`, `boto3` and the Azure
and Google SDKs.

- `errors.py`: the error tree and `classify`, the one place that reads HTTP statuses, exceptions and codes.
- `retry.py`: the one retry policy, the only code here that waits (and stops waiting at shutdown).
- `http.py`: the one-attempt, always-timed-out, rate-limited HTTP the SDK's endpoints send through.
- `keboola.py`: the SDK door, `Storage`: token (and its rotation), buckets, tables, metadata, files, jobs.
- `buckets.py`: pure rules for finding a folder's bucket, with or without the legacy `c-` prefix.
- `metadata.py`: the table metadata keys keboola-sync writes, and the typed table list.
- `uploads.py`: the uploader interface and a growing file; `s3upload.py`, `absupload.py`, `gcsupload.py`:
  the S3, Azure and GCS uploaders, one per cloud, picked per files/prepare answer.

Other rooms import from here, never from the modules inside.
"""

from .buckets import NO_LEGACY_PREFIX_FEATURE, predicted_bucket_id
from .errors import (
    CONFLICT_CODES,
    MISSING_TARGET_CODES,
    TRANSIENT_JOB_CODES,
    TRANSIENT_STATUSES,
    Abandoned,
    JobErrorKind,
    JobFailed,
    NotFound,
    StorageError,
    StorageTerminal,
    StorageTransient,
    TokenRejected,
    classify,
)
from .keboola import EnsuredBucket, JobOutcome, RemoteTable, Storage, TableDialect, TokenInfo
from .metadata import (
    HEADER_KEY,
    OWNER_KEY,
    PROVIDER,
    SHA256_KEY,
    SOURCE_KEY,
    SYNC_KEYS,
    MetadataEntry,
    SyncMetadata,
    TableSummary,
)
from .retry import RetryPolicy
from .uploads import GrowingFile, Meter, NoMeter, Uploader

__all__ = [
    "CONFLICT_CODES",
    "HEADER_KEY",
    "MISSING_TARGET_CODES",
    "NO_LEGACY_PREFIX_FEATURE",
    "OWNER_KEY",
    "PROVIDER",
    "SHA256_KEY",
    "SOURCE_KEY",
    "SYNC_KEYS",
    "TRANSIENT_JOB_CODES",
    "TRANSIENT_STATUSES",
    "Abandoned",
    "EnsuredBucket",
    "GrowingFile",
    "JobErrorKind",
    "JobFailed",
    "JobOutcome",
    "MetadataEntry",
    "Meter",
    "NoMeter",
    "NotFound",
    "RemoteTable",
    "RetryPolicy",
    "Storage",
    "StorageError",
    "StorageTerminal",
    "StorageTransient",
    "SyncMetadata",
    "TableDialect",
    "TableSummary",
    "TokenInfo",
    "TokenRejected",
    "Uploader",
    "classify",
    "predicted_bucket_id",
]
