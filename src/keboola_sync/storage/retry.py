"""The one retry policy, and the only code in `storage/` that waits.

Every call to Keboola runs under `RetryPolicy.run`: an error `classify` calls transient (connection
trouble, timeouts, 408/409/423/425/429/5xx) is tried again after a full-jitter exponential backoff that is
never shorter than the Retry-After Keboola asked for (§7.3), at most `retry.max_attempts` times in all;
anything else is raised at once. Nothing below it retries: the SDK gets one-attempt HTTP (`http.py`) and
the S3 client has its own retries switched off (`s3upload.py`), so a failure is never multiplied by nested
loops. Every wait is on the shutdown event: when it is set, the wait ends with `Abandoned` at once.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from ..config import RetryConfig
from .errors import Abandoned, StorageTransient, classify

log = logging.getLogger("keboola_sync.storage")

T = TypeVar("T")

# A Retry-After is honoured up to this many seconds; a longer one is a server bug, not a plan.
RETRY_AFTER_CAP_SECONDS = 900.0
# The smallest backoff ceiling, so a tiny configured backoff still gives uniform() a range.
MIN_BACKOFF_SECONDS = 0.001


class RetryPolicy:
    """Backoff with jitter, Retry-After, a bounded number of attempts, and an end at shutdown.

    `wait(seconds)` returns True when shutdown began during the wait (default: `stop.wait`); `jitter(low,
    high)` draws the pause (default: `random.uniform`). Tests pass their own and never sleep."""

    def __init__(
        self,
        config: RetryConfig,
        stop: threading.Event,
        *,
        wait: Callable[[float], bool] | None = None,
        jitter: Callable[[float, float], float] = random.uniform,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._on_retry = on_retry
        self.stop = stop
        self._wait = wait if wait is not None else stop.wait
        self._jitter = jitter

    def backoff(self, attempt: int, error: BaseException | None = None) -> float:
        """The pause after failed attempt number `attempt` (1-based): full jitter under an exponential
        ceiling capped at `max_backoff_seconds`, but never shorter than the error's Retry-After."""
        initial, ceiling = self.config.initial_backoff_seconds, self.config.max_backoff_seconds
        cap = min(ceiling, initial * 2 ** (attempt - 1))
        pause = self._jitter(initial / 2, max(cap, MIN_BACKOFF_SECONDS))
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            pause = max(pause, min(retry_after, RETRY_AFTER_CAP_SECONDS))
        return pause

    def pause(self, seconds: float, message: str) -> None:
        """Wait `seconds`, or raise Abandoned(message) as soon as shutdown begins."""
        if self._wait(seconds):
            raise Abandoned(message)

    def run(self, what: str, call: Callable[[], T], *, before_retry: Callable[[], T | None] | None = None) -> T:
        """Run `call` under the policy; every failure leaves as a `StorageError` (or `Abandoned`).
        `before_retry` may find that an earlier attempt in fact succeeded (an import POST whose answer
        was lost) and return its result instead of re-sending."""
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
            except Exception as exc:  # classified here, then retried (or not) by class below
                raise classify(exc, what) from exc

        retrying = Retrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=self._tenacity_wait,
            sleep=lambda seconds: self.pause(seconds, "shutdown while waiting to retry"),
            retry=retry_if_exception_type(StorageTransient),
            before_sleep=lambda state: self._log_retry(what, state),
            reraise=True,
        )
        return retrying(attempt)

    def _tenacity_wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return self.backoff(state.attempt_number, error)

    def _log_retry(self, what: str, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0
        if self._on_retry is not None:  # the metrics' reason label: the HTTP status, or "network"
            self._on_retry(str(getattr(error, "status", None) or "network"))
        log.warning(
            "%s failed (attempt %d/%d): %s; retrying in %.1f s",
            what,
            state.attempt_number,
            self.config.max_attempts,
            error,
            pause,
        )
