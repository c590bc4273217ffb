"""A token bucket in front of every Storage API call (`keboola.max_requests_per_second`).

Why: a burst of 10,000 new files would otherwise send tens of thousands of requests as fast as two
cores allow, into a project other people and jobs share. Keboola documents no request quota (§7.3: 429 is
UNCONFIRMED), so the limit is ours, conservative by default, and 429/Retry-After are still honoured by the
retry policy behind it. A bucket (not a fixed spacing) lets a lone load go at full speed: its few calls fit
in the burst; only a sustained stream is paced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `rate` 0 means no limit."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Event, float], bool] | None = None,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._wait = wait or (lambda event, seconds: event.wait(seconds))
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Takes a token (possibly going into debt) and returns how long the caller must wait for it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Blocks until the call may go; False when `stop` was set meanwhile (shutting down)."""
        if self.rate <= 0:
            return True
        delay = self._reserve()
        if delay <= 0:
            return True
        return not self._wait(stop or threading.Event(), delay)
