"""Notifications through Apprise to a local webhook receiver: one message per transition into failed or
skipped, one when Keboola becomes unreachable and one when it answers again; secrets in URLs never logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from keboola_sync.notify import Notifier
from support.emulator import wait_for
from support.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_one_message_per_transition(receiver: Receiver) -> None:
    notifier = Notifier([receiver.url])
    notifier.file_state("sales/a.csv", "failed", "Keboola said: boom")
    notifier.file_state("sales/a.csv", "failed", "Keboola said: boom")  # still failed: nothing new
    notifier.file_state("sales/a.csv", "synced", "")
    notifier.file_state("sales/a.csv", "skipped", "the header changed")
    notifier.file_state("sales/b.csv", "synced", "")
    notifier.keboola_reachable(False, "no answer for 900 s")
    notifier.keboola_reachable(False, "no answer for 960 s")
    notifier.keboola_reachable(True, "answered")
    wait_for(lambda: len(receiver.messages) >= 4, timeout=15, message="four notifications")
    notifier.close()
    titles = [m["title"] for m in receiver.messages]
    assert titles == [
        "keboola-sync: sales/a.csv: failed",
        "keboola-sync: sales/a.csv: skipped",
        "keboola-sync: Keboola unreachable",
        "keboola-sync: Keboola answers again",
    ]
    assert receiver.messages[0]["message"] == "Keboola said: boom"


def test_no_urls_sends_nothing_and_starts_no_thread() -> None:
    notifier = Notifier([])
    notifier.file_state("a/b.csv", "failed", "x")
    assert not notifier.enabled
    notifier.close()


def test_a_bad_url_is_one_error_line_without_its_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="keboola_sync.notify")
    notifier = Notifier(["nosuchservice://user:hunter2@example.invalid/path"])
    notifier.file_state("a/b.csv", "failed", "x")
    notifier.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "notify.urls: cannot use nosuchservice://example.invalid/...; check the URL against Apprise's list of services"
    ]
    assert "hunter2" not in caplog.text
