"""Notifications through Apprise to a local webhook receiver: one message per transition into failed or
skipped, one when Keboola becomes unreachable and one when it answers again; secrets in URLs never logged."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from keboola_sync.notify import Notifier
from support.emulator import wait_for


class Receiver:
    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        received = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


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
