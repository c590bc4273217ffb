"""The monitoring endpoint (`monitoring.listen`): /metrics, /healthz, /status and a small status page.

Why in the daemon and not a sidecar: the numbers (loads, retries, what is uploading now) live in this
process, and a user who runs one container should not need a second one to see them. Why stdlib's HTTP
server: four read-only routes, a handful of requests a minute; a web framework would be most of the image.
Everything served is read-only: the page cannot change what the daemon does, so it needs no login, and
compose publishes it on 127.0.0.1 only. Nothing served ever contains the token.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from .metrics import Histogram, Metrics, Snapshot

log = logging.getLogger("keboola_sync.monitor")

StatusRows = Callable[[], list[dict[str, Any]]]
HealthCheck = Callable[[], tuple[bool, str]]
Activity = Callable[[], list[dict[str, Any]]]


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) -> (host, port). The config check calls this, so errors name the key."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("HOST:PORT, e.g. 127.0.0.1:8484")
    return host.strip("[]"), int(port)


def _histogram_family(name: str, doc: str, hist: Histogram) -> Any:
    from prometheus_client.core import HistogramMetricFamily

    return HistogramMetricFamily(name, doc, buckets=hist.cumulative(), sum_value=hist.total)


def _families(snap: Snapshot, rows: list[dict[str, Any]]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    files = GaugeMetricFamily("keboola_sync_files", "CSV files in the watched folder by state", labels=["state"])
    states: dict[str, int] = {"synced": 0, "pending": 0, "failed": 0, "skipped": 0}
    for row in rows:
        states[str(row["state"])] = states.get(str(row["state"]), 0) + 1
    for state, count in sorted(states.items()):
        files.add_metric([state], count)
    yield files
    loads = CounterMetricFamily("keboola_sync_loads", "Files handled, by outcome", labels=["outcome"])
    for outcome, count in sorted(snap.loads.items()):
        loads.add_metric([outcome], count)
    yield loads
    yield CounterMetricFamily(
        "keboola_sync_uploaded_bytes", "Bytes uploaded to file storage", value=snap.uploaded_bytes
    )
    retries = CounterMetricFamily("keboola_sync_retries", "Keboola calls retried, by reason", labels=["reason"])
    for reason, count in sorted(snap.retries.items()):
        retries.add_metric([reason], count)
    yield retries
    yield _histogram_family("keboola_sync_upload_seconds", "Time to upload one file", snap.upload_seconds)
    yield _histogram_family("keboola_sync_job_seconds", "Time from import request to job end", snap.job_seconds)
    yield GaugeMetricFamily("keboola_sync_queue_length", "Files waiting to be loaded", value=snap.queue_length)
    yield GaugeMetricFamily(
        "keboola_sync_last_keboola_contact_timestamp_seconds",
        "Unix time of the last successful Keboola answer",
        value=snap.last_keboola_contact,
    )
    observer = GaugeMetricFamily("keboola_sync_observer", "The file-event observer in use (1)", labels=["mode"])
    if snap.observer_mode:
        observer.add_metric([snap.observer_mode], 1)
    yield observer


def prometheus_text(snap: Snapshot, rows: list[dict[str, Any]]) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    class _Collector:
        def collect(self) -> Iterator[Any]:
            return _families(snap, rows)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return bytes(generate_latest(registry))


class Monitor:
    """Serves the endpoint on a daemon thread until `stop()`."""

    def __init__(
        self,
        listen: str,
        metrics: Metrics,
        status_rows: StatusRows,
        health: HealthCheck,
        activity: Activity = list,
    ) -> None:
        self.host, self.port = parse_listen(listen)
        self.metrics = metrics
        self.status_rows = status_rows
        self.health = health
        self.activity = activity
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Binds now (so a port in use is a clear start-up error), serves on a thread."""
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="keboola-sync-monitor", daemon=True).start()
        log.info("monitoring endpoint at %s (/metrics, /healthz, /status, /)", self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def status_document(self) -> dict[str, Any]:
        healthy, why = self.health()
        return {"healthy": healthy, "health": why, "now": self.activity(), "files": self.status_rows()}


def _page() -> bytes:
    return resources.files("keboola_sync").joinpath("status_page.html").read_bytes()


def _handler(monitor: Monitor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "keboola-sync"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    body = prometheus_text(monitor.metrics.snapshot(), monitor.status_rows())
                    self._send(HTTPStatus.OK, "text/plain; version=0.0.4; charset=utf-8", body)
                elif path == "/healthz":
                    healthy, why = monitor.health()
                    code = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
                    self._send(code, "text/plain; charset=utf-8", (why + "\n").encode())
                elif path == "/status":
                    body = json.dumps(monitor.status_document(), default=str).encode()
                    self._send(HTTPStatus.OK, "application/json", body)
                elif path in ("/", "/index.html"):
                    self._send(HTTPStatus.OK, "text/html; charset=utf-8", _page())
                else:
                    self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")
            except Exception as exc:  # a broken ledger read must not kill the server thread
                log.warning("monitoring endpoint: %s failed: %s", path, exc)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", f"{exc}\n".encode())

        def _send(self, code: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("monitoring endpoint: " + format, *args)

    return Handler
