"""A real `Storage` (the daemon's door to Keboola) pointed at an emulator or a local server."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from keboola_sync.config import KeboolaConfig, RetryConfig, UploadConfig
from keboola_sync.storage import Storage
from support.emulator import AWS_DUMMIES, Emulator

# Quick retries: the tests see a retry happen without waiting the daemon's real backoff.
FAST_RETRY = RetryConfig(max_attempts=4, initial_backoff_seconds=0.05, max_backoff_seconds=0.2)


@dataclass(frozen=True)
class Csv:
    """A CSV dialect as tables-async wants it (storage.TableDialect)."""

    delimiter: str = ","
    enclosure: str = '"'
    escaped_by: str = ""


def make_storage(
    api_url: str,
    token: str,
    *,
    rate: float = 0.0,
    upload: UploadConfig | None = None,
    retry: RetryConfig = FAST_RETRY,
    abandon: threading.Event | None = None,
) -> Storage:
    keboola = KeboolaConfig(url=api_url, request_timeout_seconds=30.0, max_requests_per_second=rate)
    return Storage(api_url, token, keboola=keboola, retry=retry, upload=upload or UploadConfig(), abandon=abandon)


def storage_for(emu: Emulator, monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> Storage:
    """A Storage talking to `emu` (its S3 too), as the daemon would."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", emu.s3_url)
    for key, value in AWS_DUMMIES.items():
        monkeypatch.setenv(key, value)
    return make_storage(emu.api_url, emu.token, **kwargs)  # type: ignore[arg-type]
