"""The only room that talks to Keboola Storage, and the only importer of `kbcstorage` and `boto3`.

- `errors.py`: the error tree and `classify`, the one place that reads HTTP statuses, exceptions and codes.
- `retry.py`: the one retry policy, the only code here that waits (and stops waiting at shutdown).
- `http.py`: the one-attempt, always-timed-out HTTP the SDK's endpoints send through.
- `keboola.py`: the SDK door, `Storage`: token, buckets, tables, files, jobs.
- `uploads.py` and `s3upload.py`: the uploader interface and a growing file; the S3 uploader.

Other rooms import from here, never from the modules inside.
"""

from .errors import (
    MISSING_TARGET_CODES,
    TRANSIENT_STATUSES,
    Abandoned,
    JobFailed,
    NotFound,
    StorageError,
    StorageTerminal,
    StorageTransient,
    TokenRejected,
    classify,
)
from .keboola import JobOutcome, RemoteTable, Storage, TableDialect, TokenInfo
from .retry import RetryPolicy
from .uploads import GrowingFile, Meter, NoMeter, Uploader

__all__ = [
    "MISSING_TARGET_CODES",
    "TRANSIENT_STATUSES",
    "Abandoned",
    "GrowingFile",
    "JobFailed",
    "JobOutcome",
    "Meter",
    "NoMeter",
    "NotFound",
    "RemoteTable",
    "RetryPolicy",
    "Storage",
    "StorageError",
    "StorageTerminal",
    "StorageTransient",
    "TableDialect",
    "TokenInfo",
    "TokenRejected",
    "Uploader",
    "classify",
]
