"""The monitoring endpoint over real HTTP: Prometheus text that prometheus_client's own parser reads,
/healthz with the health verdict's status code, /status as JSON, the page, and a clear error for a bad
`listen` value. The data sources are plain functions here; tests/e2e/test_monitoring.py drives the real
daemon."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keboola_sync.metrics import Metrics
from keboola_sync.monitor import Monitor, parse_listen
from support.browser import rendered_dom, screenshot

ROWS: list[dict[str, Any]] = [
    {"file": "sales/a.csv", "folder": "sales", "table_id": "in.c-sales.a", "state": "synced", "rows": 2},
    {"file": "sales/b.csv", "folder": "sales", "table_id": "in.c-sales.b", "state": "failed", "error": "x" * 400},
    {"file": "hr/c.csv", "folder": "hr", "table_id": "in.c-hr.c", "state": "synced", "rows": 1},
]


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    verdict = {"healthy": True}
    metrics = Metrics()
    m = Monitor(
        "127.0.0.1:0",
        metrics,
        status_rows=lambda: ROWS,
        health=lambda: (verdict["healthy"], "ok: heartbeat 1 s ago" if verdict["healthy"] else "heartbeat is old"),
        activity=lambda: [{"file": "sales/b.csv", "phase": "uploading", "bytes": 5, "total": 10}],
    )
    m.verdict = verdict  # type: ignore[attr-defined]
    m.start()
    try:
        yield m
    finally:
        m.stop()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_parse_with_prometheus_client_and_count_what_happened(monitor: Monitor) -> None:
    monitor.metrics.count_outcome("loaded")
    monitor.metrics.count_outcome("loaded")
    monitor.metrics.count_outcome("failed")
    monitor.metrics.add_uploaded(1000, 0.3)
    monitor.metrics.observe_job(12.0)
    monitor.metrics.count_retry("503")
    monitor.metrics.set_observer_mode("polling")
    monitor.metrics.keboola_contact(1_700_000_000.0)

    status, text = get(monitor.url + "/metrics")
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("keboola_sync_loads_total", (("outcome", "loaded"),))] == 2
    assert samples[("keboola_sync_loads_total", (("outcome", "failed"),))] == 1
    assert samples[("keboola_sync_files", (("state", "synced"),))] == 2
    assert samples[("keboola_sync_files", (("state", "failed"),))] == 1
    assert samples[("keboola_sync_uploaded_bytes_total", ())] == 1000
    assert samples[("keboola_sync_retries_total", (("reason", "503"),))] == 1
    assert samples[("keboola_sync_upload_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("keboola_sync_upload_seconds_bucket", (("le", "0.25"),))] == 0
    assert samples[("keboola_sync_job_seconds_count", ())] == 1
    assert samples[("keboola_sync_job_seconds_sum", ())] == 12.0
    assert samples[("keboola_sync_observer", (("mode", "polling"),))] == 1
    assert samples[("keboola_sync_last_keboola_contact_timestamp_seconds", ())] == 1_700_000_000.0


def test_healthz_follows_the_health_verdict(monitor: Monitor) -> None:
    assert get(monitor.url + "/healthz") == (200, "ok: heartbeat 1 s ago\n")
    monitor.verdict["healthy"] = False  # type: ignore[attr-defined]
    assert get(monitor.url + "/healthz") == (503, "heartbeat is old\n")


def test_status_is_json_with_full_errors_and_what_runs_now(monitor: Monitor) -> None:
    status, text = get(monitor.url + "/status")
    doc = json.loads(text)
    assert status == 200
    assert doc["healthy"] is True
    assert [f["file"] for f in doc["files"]] == ["sales/a.csv", "sales/b.csv", "hr/c.csv"]
    assert doc["files"][1]["error"] == "x" * 400  # never cut
    assert doc["now"] == [{"file": "sales/b.csv", "phase": "uploading", "bytes": 5, "total": 10}]


def test_page_and_unknown_paths(monitor: Monitor) -> None:
    status, html = get(monitor.url + "/")
    assert status == 200 and "<title>keboola-sync</title>" in html and 'fetch("/status"' in html
    assert get(monitor.url + "/nope")[0] == 404


@pytest.mark.parametrize("value", ["", "8484", "localhost:", ":80", "host:http", "host:70000"])
def test_listen_values_that_are_not_host_and_port(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(value)


def test_listen_values() -> None:
    assert parse_listen("127.0.0.1:8484") == ("127.0.0.1", 8484)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse_listen("0.0.0.0:1") == ("0.0.0.0", 1)


def test_the_page_in_a_real_browser_shows_each_file_and_the_full_error(monitor: Monitor, tmp_path: Path) -> None:
    dom = rendered_dom(monitor.url + "/")
    assert 'data-file="sales/b.csv"' in dom
    assert "x" * 400 in dom  # the whole error, not cut
    assert "Healthy: ok: heartbeat 1 s ago" in dom
    assert "sales/b.csv · uploading · 50% of 0.0 MB" in dom
    shot = screenshot(monitor.url + "/", tmp_path / "page.png")
    assert shot.stat().st_size > 5000
