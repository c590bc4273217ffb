"""The one retry policy (storage/retry.py) and the classification it retries by (storage/errors.py).

No emulator and no sleeping: the policy gets a fake wait that records each pause, and a jitter that
returns the top of its range, so every pause is known exactly.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
from pathlib import Path
from typing import ClassVar

import botocore.exceptions
import pytest
import requests

from keboola_sync.config import RetryConfig, UploadConfig
from keboola_sync.storage import (
    Abandoned,
    JobFailed,
    NotFound,
    RetryPolicy,
    StorageError,
    StorageTerminal,
    StorageTransient,
    TokenRejected,
    classify,
)
from keboola_sync.storage.errors import job_error_kind
from keboola_sync.storage.retry import RETRY_AFTER_CAP_SECONDS
from keboola_sync.storage.s3upload import S3Uploader


class FakeWait:
    """Stands in for the shutdown event's wait: records the pauses; `stop_after` pauses, shutdown begins."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.pauses: list[float] = []
        self.stop_after = stop_after

    def __call__(self, seconds: float) -> bool:
        self.pauses.append(seconds)
        return self.stop_after is not None and len(self.pauses) >= self.stop_after


def policy(wait: FakeWait, *, attempts: int = 5, initial: float = 1.0, ceiling: float = 8.0) -> RetryPolicy:
    config = RetryConfig(max_attempts=attempts, initial_backoff_seconds=initial, max_backoff_seconds=ceiling)
    return RetryPolicy(config, threading.Event(), wait=wait, jitter=lambda low, high: high)


def http_error(status: int, *, body: object = None, retry_after: str | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.reason = "Reason"
    response._content = json.dumps(body if body is not None else {"error": "boom", "code": "some.code"}).encode()
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return requests.HTTPError(f"{status}", response=response)


def s3_error(code: str, status: int) -> botocore.exceptions.ClientError:
    answer = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(answer, "PutObject")


class Script:
    """A call that raises the given errors in turn, then returns `result`."""

    def __init__(self, *errors: BaseException, result: str = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


# -- which statuses are retried ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, StorageTerminal),
        (401, TokenRejected),
        (403, StorageTerminal),
        (404, NotFound),
        (408, StorageTransient),
        (409, StorageTransient),
        (422, StorageTerminal),
        (423, StorageTransient),
        (425, StorageTransient),
        (429, StorageTransient),
        (500, StorageTransient),
        (502, StorageTransient),
        (503, StorageTransient),
        (504, StorageTransient),
        (507, StorageTransient),
    ],
)
def test_http_status_table(status: int, expected: type[StorageError]) -> None:
    error = classify(http_error(status), "reading table in.c-a.b")
    assert type(error) is expected
    assert str(error) == f"reading table in.c-a.b: HTTP {status} boom (some.code)"
    assert error.status == status and error.code == "some.code"

    script = Script(http_error(status))
    wait = FakeWait()
    if expected is StorageTransient:
        assert policy(wait).run("reading", script) == "ok"
        assert script.calls == 2 and len(wait.pauses) == 1
    else:
        with pytest.raises(expected):
            policy(wait).run("reading", script)
        assert script.calls == 1 and wait.pauses == []


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (requests.ConnectionError("refused"), StorageTransient),
        (requests.Timeout("read timed out"), StorageTransient),
        (ConnectionResetError("reset"), StorageTransient),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3"), StorageTransient),
        (s3_error("SlowDown", 503), StorageTransient),
        (s3_error("AccessDenied", 403), StorageTerminal),
        # S3's 404 is about its own object, not a Keboola table that went away.
        (s3_error("NoSuchUpload", 404), StorageTerminal),
        (ValueError("unexpected"), StorageTerminal),
    ],
)
def test_exception_table(exc: Exception, expected: type[StorageError]) -> None:
    assert type(classify(exc, "uploading a.csv")) is expected


def test_a_page_instead_of_json_becomes_one_short_line() -> None:
    response = requests.Response()
    response.status_code, response.reason, response._content = 502, "Bad Gateway", b"<html>" + b"x" * 5000
    error = classify(requests.HTTPError(response=response), "listing jobs")
    assert str(error) == "listing jobs: HTTP 502 Bad Gateway"
    long = classify(http_error(400, body={"error": "y" * 1000}), "listing jobs")
    assert str(long) == "listing jobs: HTTP 400 " + "y" * 300 + "..."


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("storage.fileNotUploaded", "file"),
        ("storage.files.notFound", "file"),
        ("storage.tables.notFound", "missing"),
        ("storage.buckets.notFound", "missing"),
        ("csvImport.columnsNotMatch", "content"),
        ("storage.tables.validation.invalidColumnName", "content"),
        ("invalidCsv", "content"),
        # a table of that name in another letter case, or of that display name, exists (§12): never retried
        ("storage.buckets.tableAlreadyExists", "conflict"),
        ("storage.buckets.alreadyExists", "conflict"),
        # the short explicit list of passing trouble
        ("storage.jobs.internalError", "transient"),
        ("storage.maintenance", "transient"),
        # anything else, an unknown code or none, ends the load with Keboola's message (issue 13.5)
        ("storage.internalError", "failed"),
        ("application.internalError", "failed"),
        ("some.future.code", "failed"),
        ("", "failed"),
        (None, "failed"),
    ],
)
def test_job_error_code_table(code: str | None, kind: str) -> None:
    assert job_error_kind(code) == kind
    failed = JobFailed("loading table in.c-a.b: job 7 failed: Boom.", code=code, job_id=7, keboola_message="Boom.")
    assert failed.kind == kind
    assert failed.transient is (kind == "transient")
    assert failed.keboola_message == "Boom."


@pytest.mark.parametrize("status", [400, 409, 500, 503])
def test_a_name_clash_is_never_transient_whatever_the_status(status: int) -> None:
    body = {"error": 'The table "orders" in the bucket already has the same display name "Orders".'}
    clash = http_error(status, body={**body, "code": "storage.buckets.tableAlreadyExists"})
    error = classify(clash, "creating table in.c-a.Orders")
    assert type(error) is StorageTerminal
    script = Script(clash)
    with pytest.raises(StorageTerminal, match="already has the same display name"):
        policy(FakeWait()).run("creating table in.c-a.Orders", script)
    assert script.calls == 1


# -- how long it waits ---------------------------------------------------------------------------------


def test_backoff_doubles_from_the_initial_pause_and_stops_at_the_ceiling() -> None:
    wait = FakeWait()
    script = Script(*(http_error(503) for _ in range(6)))
    assert policy(wait, attempts=7, initial=1.0, ceiling=8.0).run("reading", script) == "ok"
    assert wait.pauses == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_real_jitter_stays_within_its_range() -> None:
    config = RetryConfig(max_attempts=50, initial_backoff_seconds=0.5, max_backoff_seconds=3.0)
    real = RetryPolicy(config, threading.Event(), wait=FakeWait())
    for attempt in range(1, 40):
        cap = min(3.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(20):
            assert 0.25 <= real.backoff(attempt) <= cap


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    wait = FakeWait()
    script = Script(http_error(429, retry_after="30"), http_error(503, retry_after="0.5"))
    assert policy(wait, initial=1.0, ceiling=8.0).run("reading", script) == "ok"
    assert wait.pauses == [30.0, 2.0]  # a short Retry-After does not shorten the backoff


def test_retry_after_is_bounded() -> None:
    wait = FakeWait()
    script = Script(http_error(503, retry_after="86400"))
    policy(wait).run("reading", script)
    assert wait.pauses == [RETRY_AFTER_CAP_SECONDS]


def test_a_retry_after_date_falls_back_to_the_backoff() -> None:
    wait = FakeWait()
    policy(wait).run("reading", Script(http_error(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")))
    assert wait.pauses == [1.0]


# -- how often, and when it stops ----------------------------------------------------------------------


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    wait = FakeWait()
    script = Script(*(http_error(500) for _ in range(10)))
    with pytest.raises(StorageTransient, match="HTTP 500"):
        policy(wait, attempts=4).run("reading", script)
    assert script.calls == 4 and len(wait.pauses) == 3


def test_shutdown_during_a_backoff_abandons_at_once() -> None:
    wait = FakeWait(stop_after=2)
    script = Script(*(http_error(503) for _ in range(10)))
    with pytest.raises(Abandoned, match="shutdown while waiting to retry"):
        policy(wait, attempts=8).run("reading", script)
    assert script.calls == 2 and len(wait.pauses) == 2


def test_the_default_wait_is_the_shutdown_event() -> None:
    stop = threading.Event()
    stop.set()  # shutdown already began: the first backoff ends the call without waiting
    config = RetryConfig(max_attempts=8, initial_backoff_seconds=60.0, max_backoff_seconds=60.0)
    script = Script(http_error(503))
    with pytest.raises(Abandoned):
        RetryPolicy(config, stop).run("reading", script)
    assert script.calls == 1
    with pytest.raises(Abandoned, match="stopped waiting for job 7"):
        RetryPolicy(config, stop).pause(60.0, "stopped waiting for job 7")


def test_before_retry_finds_a_lost_answer_instead_of_sending_again() -> None:
    wait = FakeWait()
    script = Script(requests.ConnectionError("answer lost"), result="second send")
    looked: list[int] = []

    def already_sent() -> str | None:
        looked.append(1)
        return "job 42"

    assert policy(wait).run("loading", script, before_retry=already_sent) == "job 42"
    assert script.calls == 1 and looked == [1]


def test_each_retry_is_one_warning_that_says_what_happens_next(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="keboola_sync.storage")
    policy(FakeWait(), attempts=3).run("listing tables", Script(http_error(502)))
    assert [r.getMessage() for r in caplog.records] == [
        "listing tables failed (attempt 1/3): listing tables: HTTP 502 boom (some.code); retrying in 1.0 s"
    ]


# -- no retry loop under the policy ----------------------------------------------------------------------


class _Busy(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request 503 SlowDown and counts them."""

    seen: ClassVar[list[str]] = []
    protocol_version = "HTTP/1.1"  # answers botocore's `Expect: 100-continue` at once

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(self.path)
        body = b"<Error><Code>SlowDown</Code><Message>busy</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_s3_client_makes_one_attempt_and_leaves_retries_to_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{server.server_port}")
        uploader = S3Uploader(request_timeout=5, upload=UploadConfig(), progress_seconds=5, abandon=threading.Event())
        spool = tmp_path / "a.csv"
        spool.write_bytes(b"id\n1\n")
        prepared = {
            "provider": "aws",
            "region": "us-east-1",
            "uploadParams": {
                "bucket": "files",
                "key": "exp-15/a.csv",
                "credentials": {"AccessKeyId": "key", "SecretAccessKey": "secret", "SessionToken": "session"},
            },
        }
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            uploader.upload_file(prepared, spool, spool.stat().st_size, "a.csv")
        assert len(_Busy.seen) == 1  # botocore would have tried 3 times by itself
        assert type(classify(caught.value, "uploading a.csv")) is StorageTransient
    finally:
        server.shutdown()
        server.server_close()
