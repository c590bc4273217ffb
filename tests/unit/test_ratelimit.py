"""The request-rate token bucket with a fake clock: bursts pass, a sustained stream is paced at the rate,
zero means no limit, a shutdown ends the wait."""

from __future__ import annotations

import threading

from keboola_sync.ratelimit import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        if stop.is_set():
            return True
        self.now += seconds
        return False


def test_a_burst_passes_then_calls_are_paced_at_the_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(10, clock=t.clock, wait=t.wait)
    for _ in range(10):
        assert bucket.acquire()
    assert t.waits == []
    for _ in range(100):
        assert bucket.acquire()
    assert t.now == 10.0  # 100 more calls at 10 a second take 10 s
    assert max(t.waits) <= 0.1 + 1e-9


def test_a_thousand_calls_never_exceed_the_rate_over_any_second() -> None:
    t = FakeTime()
    bucket = TokenBucket(5, burst=5, clock=t.clock, wait=t.wait)
    stamps = []
    for _ in range(1000):
        bucket.acquire()
        stamps.append(t.now)
    for start in stamps:
        in_window = sum(1 for s in stamps if start <= s < start + 1.0)
        assert in_window <= 5 + 5  # the rate plus at most one burst


def test_idle_time_refills_only_up_to_the_burst() -> None:
    t = FakeTime()
    bucket = TokenBucket(2, burst=3, clock=t.clock, wait=t.wait)
    t.now = 1000.0
    for _ in range(3):
        bucket.acquire()
    assert t.waits == []
    bucket.acquire()
    assert t.waits == [0.5]


def test_zero_means_no_limit() -> None:
    t = FakeTime()
    bucket = TokenBucket(0, clock=t.clock, wait=t.wait)
    assert all(bucket.acquire() for _ in range(10_000))
    assert t.waits == []


def test_a_shutdown_ends_the_wait() -> None:
    t = FakeTime()
    bucket = TokenBucket(1, burst=1, clock=t.clock, wait=t.wait)
    stop = threading.Event()
    assert bucket.acquire(stop)
    stop.set()
    assert bucket.acquire(stop) is False
