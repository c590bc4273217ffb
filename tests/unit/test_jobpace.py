"""The job-polling schedule (storage/jobpace.py) with a scripted clock: when each poll would be sent."""

from __future__ import annotations

import itertools

from keboola_sync.storage.jobpace import (
    FINEST_POLL_SECONDS,
    FIRST_POLL_SECONDS,
    JobHistory,
    fine_step,
    first_pause,
    next_pause,
)

MAX_PAUSE = 5.0


def poll_times(job_seconds: float, expected: float | None, limit: int = 500) -> list[float]:
    """The elapsed times of every poll until the first one at or after `job_seconds`."""
    now = pause = first_pause(expected)
    times = [now]
    while now < job_seconds and len(times) < limit:
        pause = next_pause(now, pause, expected, MAX_PAUSE)
        now += pause
        times.append(now)
    return times


def test_without_history_the_ordinary_backoff_notices_a_30_s_job_up_to_3_s_late() -> None:
    times = poll_times(30.0, None)
    assert times[:2] == [0.0, FIRST_POLL_SECONDS]  # at once (a job may be over already), then as before
    assert 2.0 < times[-1] - 30.0 <= 3.1  # the fixed cost issue 18.1 names
    assert len(times) < 40


def test_with_a_right_estimate_a_30_s_job_is_noticed_within_a_quarter_second() -> None:
    times = poll_times(30.0, 30.0)
    assert times[-1] - 30.0 <= fine_step(30.0) + 1e-9
    assert len(times) <= len(poll_times(30.0, None)) + 2  # no more requests than before, give or take


def test_an_estimate_too_high_never_polls_later_than_without_one() -> None:
    assert poll_times(10.0, 40.0)[-1] <= poll_times(10.0, None)[-1] + 1e-9


def test_an_estimate_too_low_polls_finely_for_a_while_then_backs_off() -> None:
    times = poll_times(60.0, 5.0)
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert min(steps) >= FINEST_POLL_SECONDS - 1e-9
    assert len(times) < 80  # the fine window is short: the request rate stays sane
    assert steps[-1] > 1.0  # back on the ordinary backoff


def test_a_short_job_is_polled_soon_but_never_more_often_than_20_times_a_second() -> None:
    assert first_pause(None) == 0.0
    assert first_pause(0.01) == 0.0  # the last one was over by the time its 202 came: ask at once
    assert first_pause(0.07) == 0.07
    assert first_pause(3.0) == FIRST_POLL_SECONDS
    times = poll_times(0.2, 0.03)
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 0.0
    assert all(step >= FINEST_POLL_SECONDS - 1e-9 for step in steps)


def test_history_scales_the_last_job_of_the_kind_by_size() -> None:
    history = JobHistory()
    assert history.expected("import", 1000) is None
    history.record("import", 1000, 2.0)
    assert history.expected("import", 3000) == 6.0
    assert history.expected("create", 3000) is None
    assert history.expected("import", None) is None
    history.record("import", 0, 5.0)  # no size: nothing learned
    assert history.expected("import", 1000) == 2.0
