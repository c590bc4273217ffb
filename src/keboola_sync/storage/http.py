"""What the SDK's endpoints send their requests through: one attempt, always with a timeout, never
faster than `keboola.max_requests_per_second`.

The SDK's own `RetryRequests` sets no timeout and retries every verb on 5xx for up to ~17 minutes, POSTs
included (keboola-storage-api.md §9); `keboola.Storage` puts this adapter in its place so the one retry
policy (`retry.py`) decides alone when to try again. Every Storage API request (each retry too) first
takes a token from the request-rate bucket (issue 16.7), so a burst of thousands of files never floods a
project other people share; 429 and Retry-After are still honoured by the retry policy (§7.3). File
storage traffic (S3 parts) does not pass here and is not paced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests

from ..ratelimit import TokenBucket
from .errors import Abandoned


class OneAttemptHttp:
    """A pooled session per thread, a timeout on every request, and a note of every time Keboola
    answered (health reports the last contact). Its methods take the SDK's arguments.

    `limiter` paces the requests (None: no limit); a wait for it ends with `Abandoned` once `stop` (the
    shutdown event) is set."""

    def __init__(
        self,
        timeout: float,
        on_contact: Callable[[], None],
        *,
        limiter: TokenBucket | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.timeout = timeout  # read per request: a reloaded keboola.request_timeout_seconds applies at once
        self._on_contact = on_contact
        self.limiter = limiter  # read per request: a reload may put another in its place
        self._stop = stop or threading.Event()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        if self.limiter is not None and not self.limiter.acquire(self._stop):
            raise Abandoned("shutdown while waiting for the request rate limit")
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
