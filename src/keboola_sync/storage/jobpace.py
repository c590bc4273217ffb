"""When to ask Keboola again whether a job has ended: poll near the job's expected end (issue 18.1).

Keboola's job detail gives no estimate of the time left (§6.1), so the expected duration comes from the
last job of the same kind (create or import), scaled by the uploaded size. Before that moment the pause
grows as it always did (first poll soon, then from 0.1 s x1.5, never past a tenth of the job's age nor
`keboola.job_poll_max_seconds`), so a wrong estimate never costs more requests than no estimate; it only
ever makes a pause shorter. From the expected end on, the job is polled at a fine step for a short while,
so a 30 s job is seen finished within a quarter of a second instead of up to 3 s late. Every poll still
goes through the request-rate bucket (`keboola.max_requests_per_second`).

Pure code: the clock is the caller's, so the schedule is unit-tested without waiting.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

FIRST_POLL_SECONDS = 0.1  # with no history: first poll after this long
FINEST_POLL_SECONDS = 0.05  # never more often than this (20 requests/s for one job, at its end only)
FINE_POLL_CAP_SECONDS = 0.25  # the step near the end of a long job
FINE_WINDOW_SHARE = 0.5  # fine polls last this share of the expected duration past it (at least 1 s)


def fine_step(expected: float) -> float:
    """The polling step near the expected end: a twentieth of the job, between 50 and 250 ms."""
    return min(FINE_POLL_CAP_SECONDS, max(FINEST_POLL_SECONDS, expected / 20))


def first_pause(expected: float | None) -> float:
    """The wait before the first poll. None at all when no job of the kind is known yet or the last one
    was over almost at once: a job can be terminal by the time its 202 arrives (§6.1), and a small file's
    import often is (kbcstorage polls at once for the same reason). Else the expected duration when it is
    shorter than FIRST_POLL_SECONDS."""
    if expected is None or expected < FINEST_POLL_SECONDS:
        return 0.0
    return min(FIRST_POLL_SECONDS, expected)


def next_pause(elapsed: float, previous: float, expected: float | None, max_pause: float) -> float:
    """The wait before the next poll, `elapsed` seconds after the job was accepted."""
    backoff = min(max(previous * 1.5, FIRST_POLL_SECONDS), max_pause, max(0.5, elapsed / 10))
    if expected is None:
        return backoff
    step = fine_step(expected)
    if elapsed < expected:
        # Wake at the expected end (never later than the ordinary backoff would).
        return max(min(backoff, expected - elapsed), FINEST_POLL_SECONDS)
    if elapsed < expected + max(1.0, expected * FINE_WINDOW_SHARE):
        return min(backoff, step)
    return backoff  # the estimate was wrong: back to the ordinary schedule


@dataclass(frozen=True)
class _Sample:
    size: int
    seconds: float


class JobHistory:
    """The last finished job of each kind, to expect the next one's duration. Thread-safe: the load
    workers share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, _Sample] = {}

    def record(self, kind: str, size: int | None, seconds: float) -> None:
        if not kind or size is None or size <= 0 or seconds <= 0:
            return
        with self._lock:
            self._last[kind] = _Sample(size, seconds)

    def expected(self, kind: str, size: int | None) -> float | None:
        """The last job of this kind, scaled linearly by size (a larger file's import takes longer); None
        without history or a size. Too high is harmless (see next_pause); too low costs a few polls."""
        if size is None or size <= 0:
            return None
        with self._lock:
            last = self._last.get(kind)
        if last is None:
            return None
        return last.seconds * size / last.size
