"""`Storage` against tiny local servers, where a test must see every request: the request-rate limit
(issue 16.7) and per-part retries of a multipart upload to S3 (the proxy fails one exact part)."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import pytest
from storage_helpers import Csv, make_storage, storage_for

from keboola_sync.config import UploadConfig
from support.emulator import Emulator

MIB = 1024 * 1024


class _Stamps(http.server.BaseHTTPRequestHandler):
    """A Storage API that answers every table list with [] and notes when each request arrived."""

    stamps: ClassVar[list[float]] = []
    too_many: ClassVar[int] = 0  # answer this many requests `429` + `Retry-After: 1` first
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        with self.lock:
            self.stamps.append(time.monotonic())
            throttle = type(self).too_many > 0
            type(self).too_many -= 1
        if throttle:
            body = b'{"error": "Too many requests", "code": "tooManyRequests"}'
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stamping_server() -> Iterator[str]:
    _Stamps.stamps, _Stamps.too_many = [], 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stamps)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_burst_of_requests_never_exceeds_the_configured_rate(stamping_server: str) -> None:
    rate, requests_sent, threads = 20.0, 70, 5
    storage = make_storage(stamping_server, "not-a-real-token", rate=rate)

    def burst() -> None:
        for _ in range(requests_sent // threads):
            storage.list_tables()

    workers = [threading.Thread(target=burst) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    stamps = sorted(_Stamps.stamps)
    assert len(stamps) == requests_sent
    # A token bucket lets `rate` requests go at once, then `rate` a second: no one-second window (from
    # any request on) holds more than twice the rate, and the whole burst takes its time.
    busiest = max(sum(1 for s in stamps if start <= s < start + 1.0) for start in stamps)
    assert busiest <= 2 * rate
    assert stamps[-1] - stamps[0] >= (requests_sent - rate) / rate * 0.95


def test_zero_means_no_limit(stamping_server: str) -> None:
    storage = make_storage(stamping_server, "not-a-real-token", rate=0)
    started = time.monotonic()
    for _ in range(40):
        storage.list_tables()
    assert len(_Stamps.stamps) == 40
    # 40 requests at the default 10/s would take at least 3 s; unpaced, they take a fraction of that.
    assert time.monotonic() - started < 3.0


def test_a_429_is_still_waited_out_behind_the_limit(stamping_server: str) -> None:
    _Stamps.too_many = 2
    storage = make_storage(stamping_server, "not-a-real-token", rate=50)
    assert storage.list_tables() == []
    first, second, third = _Stamps.stamps
    assert second - first >= 1.0 and third - second >= 1.0  # Retry-After: 1, each time


class _FailOnePart(http.server.BaseHTTPRequestHandler):
    """A proxy in front of the emulator's S3 that answers the first PUT of part 2 `503 SlowDown` and
    forwards everything else; it notes every request (method and S3 operation)."""

    target: ClassVar[str] = ""
    seen: ClassVar[list[str]] = []
    failed: ClassVar[bool] = False
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = urlsplit(self.path).query + "&"
        operation = "part" if "partNumber=" in query else "uploads" if "uploads" in query else query[:8]
        second_part = "partNumber=2&" in query
        with self.lock:
            self.seen.append(f"{self.command} {operation}" + (" 2" if second_part else ""))
            fail = self.command == "PUT" and second_part and not type(self).failed
            if fail:
                type(self).failed = True
        if fail:
            self._answer(503, {"Content-Type": "application/xml"}, b"<Error><Code>SlowDown</Code></Error>")
            return
        target = urlsplit(self.target)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("expect", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        keep = {k: v for k, v in answer.getheaders() if k.lower() not in ("transfer-encoding", "connection")}
        conn.close()
        self._answer(answer.status, keep, data)

    def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    def log_message(self, *args: object) -> None:
        pass


def test_a_failed_part_is_sent_again_alone_not_the_whole_file(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _FailOnePart.target, _FailOnePart.seen, _FailOnePart.failed = emulator.s3_url, [], False
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FailOnePart)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        upload = UploadConfig(multipart_threshold_mb=5, multipart_chunk_mb=5, multipart_concurrency=2)
        storage = storage_for(emulator, monkeypatch, upload=upload)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{proxy.server_port}")
        spool = tmp_path / "big.csv"
        rows = 600_000  # ~12 MB: three 5 MB parts
        with spool.open("w") as out:
            out.write("id,text\n")
            out.writelines(f"{i},row number {i}\n" for i in range(rows))
        assert spool.stat().st_size > 10 * MIB
        file_id = storage.upload(spool, label="big.csv")

        seen = list(_FailOnePart.seen)
        assert seen.count("POST uploads") == 1  # one multipart upload, never restarted
        assert seen.count("PUT part 2") == 2  # the failed part, sent again by itself
        assert seen.count("PUT part") == 2  # parts 1 and 3, once each
        # the object is whole: a table created from it has every row
        bucket_id, _ = storage.ensure_bucket(f"parts-{file_id}", "in")
        storage.wait_for_job(storage.start_create_table(bucket_id, "big", file_id, Csv()), what="creating big")
        table = storage.get_table(f"{bucket_id}.big")
        assert table is not None and table.rows_count == rows
    finally:
        proxy.shutdown()
        proxy.server_close()


class _Stack(http.server.BaseHTTPRequestHandler):
    """A Storage API that answers tokens/verify and the index from `answers` (path -> (status, JSON))."""

    answers: ClassVar[dict[str, tuple[int, object]]] = {}
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status, payload = self.answers.get(urlsplit(self.path).path, (404, {"error": "Not found", "code": "notFound"}))
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("index", "features", "legacy"),
    [
        (
            (200, {"api": "storage", "features": ["disable-legacy-bucket-prefix"]}),
            {"a", "disable-legacy-bucket-prefix"},
            False,
        ),
        ((200, {"api": "storage", "features": []}), {"a"}, True),
        # a stack (or proxy) that refuses the index: the token's own list still counts
        ((404, {"error": "Not found", "code": "notFound"}), {"a"}, True),
    ],
)
def test_features_come_from_the_index_and_the_token(
    index: tuple[int, object], features: set[str], legacy: bool
) -> None:
    verify = {"canManageBuckets": True, "owner": {"id": 7, "name": "p", "features": ["a"]}}
    _Stack.answers = {"/v2/storage/tokens/verify": (200, verify), "/v2/storage": index}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stack)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        info = make_storage(f"http://127.0.0.1:{server.server_port}", "not-a-real-token").verify_token()
    finally:
        server.shutdown()
        server.server_close()
    assert info.features == features and info.legacy_bucket_prefix is legacy
