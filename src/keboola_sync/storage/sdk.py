"""The SDK's endpoints as the daemon uses them: one set per token, every request through our one-attempt
HTTP, and the heavy parts imported only when needed.

Why its own module: kbcstorage's table and file endpoints import boto3, the Azure and the Google SDKs as
their module loads (about half a second of CPU), and each cloud's uploader imports that cloud's SDK; a
`sync --once` that checks a token needs none of them (issue 18.3). `keboola.Storage` keeps the contracts
of each call; this module only builds what it calls.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from kbcstorage.base import Endpoint  # type: ignore[import-untyped, unused-ignore]
from kbcstorage.buckets import Buckets  # type: ignore[import-untyped, unused-ignore]
from kbcstorage.jobs import Jobs  # type: ignore[import-untyped, unused-ignore]
from kbcstorage.tables_metadata import TablesMetadata  # type: ignore[import-untyped, unused-ignore]
from kbcstorage.tokens import Tokens  # type: ignore[import-untyped, unused-ignore]

from ..config import UploadConfig
from .clouds import Cloud
from .http import OneAttemptHttp
from .uploads import Uploader

# Held while the SDK's table and file endpoints or an uploader (each importing cloud SDKs) are imported:
# one thread imports them, the others wait for it instead of importing the same modules alongside.
SDK_LOCK = threading.Lock()


class _Index(Endpoint):  # type: ignore[misc]
    """`GET /v2/storage` (§2.2), which the SDK does not offer; `exclude=components` drops the (large)
    component list."""

    def __init__(self, root_url: str, token: str) -> None:
        super().__init__(root_url, "", token)

    def detail(self) -> Any:
        return self._get(self.root_url.rstrip("/") + "/v2/storage", params={"exclude": "components"})


def table_and_file_endpoints() -> tuple[Any, Any]:
    """kbcstorage's `Tables` and `Files` classes. Their module imports boto3, azure-storage-blob and
    google-cloud-storage as it loads, so it is imported here, on first use (or by `Storage.preload`)."""
    with SDK_LOCK:
        from kbcstorage.files import Files  # type: ignore[import-untyped, unused-ignore]
        from kbcstorage.tables import Tables  # type: ignore[import-untyped, unused-ignore]
    return Tables, Files


class CloudUploader(Uploader, Protocol):
    """An uploader of one cloud as `Storage` keeps it: it uploads, and takes reloaded settings."""

    def use_settings(self, request_timeout: float, upload: UploadConfig, progress_seconds: float) -> None: ...


def new_uploader(cloud: Cloud, settings: Mapping[str, Any]) -> CloudUploader:
    """The uploader of one cloud; its module, and with it that cloud's SDK, is imported on first use."""
    if cloud == "aws":
        from .s3upload import S3Uploader

        return S3Uploader(**settings)
    if cloud == "azure":
        from .absupload import AbsUploader

        return AbsUploader(**settings)
    from .gcsupload import GcsUploader

    return GcsUploader(**settings)


class Api:
    """The SDK endpoints for one token. Replaced whole when the token rotates (`use_token`), so every
    request starts with one token or the other, never a mix. Every endpoint sends through our one-attempt
    HTTP (the SDK's own 11-attempt retry loop is off; the retry policy wraps whole calls). The table and
    file endpoints are made on first use (see `table_and_file_endpoints`)."""

    def __init__(self, url: str, token: str, http: OneAttemptHttp) -> None:
        self._url = url
        self._token = token
        self._http = http
        self.buckets: Any = self._bind(Buckets(url, token))
        self.metadata: Any = self._bind(TablesMetadata(url, token))
        self.jobs: Any = self._bind(Jobs(url, token))
        self.tokens: Any = self._bind(Tokens(url, token))
        self.index: Any = self._bind(_Index(url, token))
        self._tables: Any = None
        self._files: Any = None

    def _bind(self, endpoint: Any) -> Any:
        endpoint.requests = self._http
        return endpoint

    @property
    def tables(self) -> Any:
        if self._tables is None:
            tables, _ = table_and_file_endpoints()
            self._tables = self._bind(tables(self._url, self._token))
        return self._tables

    @property
    def files(self) -> Any:
        if self._files is None:
            _, files = table_and_file_endpoints()
            self._files = self._bind(files(self._url, self._token))
        return self._files
