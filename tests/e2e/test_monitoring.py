"""The monitoring endpoint of the real daemon (issue 16 item 4): `monitoring.listen` set, files loaded (one
failing), /metrics parsed with prometheus_client's own parser and its counters matching the loads, /healthz,
/status, the page in a headless Chromium showing the failed file's full error, and what loads now."""

from __future__ import annotations

import html
import json
import os
import shutil
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from support.browser import rendered_dom, screenshot
from support.daemon import Daemon, wait_table
from support.emulator import IN, free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
DOCS_IMAGE = REPO / "docs" / "images" / "status-page.png"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the daemon on loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = get(base + "/metrics")
    assert status == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def status_rows(daemon: Daemon) -> dict[str, dict[str, Any]]:
    result = daemon.run("status", "--json")
    assert result.returncode == 0, result.stderr
    return {row["file"]: row for row in map(json.loads, result.stdout.splitlines())}


def test_metrics_health_status_and_the_page_of_the_real_daemon(daemon_factory, emulator, tmp_path):
    folder = f"mo{uuid.uuid4().hex[:6]}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon: Daemon = daemon_factory(
        {
            "monitoring": {"listen": f"127.0.0.1:{port}"},
            "retry": {"max_attempts": 2, "failed_retry_seconds": 600},
        }
    )
    # Every read of one table answers 5xx: its file fails (after one retry), the others load.
    emulator.set_faults(fail_rate=1.0, paths=[f"{IN}{folder}.bad"])
    contents = {"a.csv": "id,name\n1,a\n2,b\n", "b.csv": "id\n1\n", "bad.csv": "id\n9\n"}
    for name, text in contents.items():
        daemon.write(f"{folder}/{name}", text)
    daemon.write(f"{folder}/latin1.csv", b"id,city\n1,Z\xfcrich\n")  # skipped: not UTF-8, a long message
    daemon.start()
    daemon.wait_log(f"monitoring endpoint at {base} (/metrics, /healthz, /status, /)")
    wait_table(emulator, f"{IN}{folder}.a", [["id", "name"], ["1", "a"], ["2", "b"]])
    wait_table(emulator, f"{IN}{folder}.b", [["id"], ["1"]])
    daemon.wait_log(f"failed {folder}/bad.csv: ")
    wait_for(lambda: status_rows(daemon)[f"{folder}/bad.csv"]["state"] == "failed", timeout=20)

    # /metrics: the counters are the loads that happened.
    def settled() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = scrape(base)  # the status rows behind keboola_sync_files are cached for a second or two
        return found if found[("keboola_sync_files", (("state", "failed"),))] == 1 else None

    samples = wait_for(settled, timeout=10, message="the failed file counted on /metrics")
    assert samples[("keboola_sync_files", (("state", "synced"),))] == 2
    assert samples[("keboola_sync_files", (("state", "skipped"),))] == 1
    assert samples[("keboola_sync_loads_total", (("outcome", "skipped"),))] == 1
    assert samples[("keboola_sync_loads_total", (("outcome", "created"),))] == 2
    assert samples[("keboola_sync_loads_total", (("outcome", "failed"),))] == 1
    assert samples[("keboola_sync_files", (("state", "failed"),))] == 1
    assert samples[("keboola_sync_uploaded_bytes_total", ())] == len(contents["a.csv"]) + len(contents["b.csv"])
    assert samples[("keboola_sync_upload_seconds_count", ())] == 2
    assert samples[("keboola_sync_job_seconds_count", ())] == 2
    retries = sum(v for (name, _), v in samples.items() if name == "keboola_sync_retries_total")
    assert retries >= 1  # the failing table read was retried once before the file failed
    assert samples[("keboola_sync_queue_length", ())] == 0
    assert time.time() - samples[("keboola_sync_last_keboola_contact_timestamp_seconds", ())] < 60
    assert sum(v for (name, _), v in samples.items() if name == "keboola_sync_observer") == 1

    # /healthz is `keboola-sync health`'s verdict; /status is the status table with full errors.
    code, text = get(base + "/healthz")
    assert code == 200 and text.startswith("ok: heartbeat")
    code, text = get(base + "/status")
    doc = json.loads(text)
    error = status_rows(daemon)[f"{folder}/bad.csv"]["error"]
    assert code == 200 and doc["healthy"] is True
    assert {f["file"]: f["error"] for f in doc["files"]}[f"{folder}/bad.csv"] == error
    assert f"reading table {IN}{folder}.bad" in error

    # A slow job: what loads now is on /status, in `keboola-sync status` and on the page.
    emulator.set_faults(job_seconds=15)  # long enough for two Chromium runs on a busy machine
    daemon.write(f"{folder}/slow.csv", "id\n5\n")

    def importing() -> bool:
        now = json.loads(get(base + "/status")[1])["now"]
        return any(j["file"] == f"{folder}/slow.csv" and j["phase"] == "importing" for j in now)

    wait_for(importing, timeout=20, message="slow.csv importing on /status")
    wait_for(
        lambda: f"{folder}/slow.csv importing (Keboola's job)" in daemon.run("status").stdout,
        timeout=10,
        message="status shows the running import",
    )
    shot = screenshot(base + "/", tmp_path / "status-page.png", size="1200,520")
    dom = html.unescape(rendered_dom(base + "/"))
    assert error in dom  # the failed file's whole error, not cut
    skipped = status_rows(daemon)[f"{folder}/latin1.csv"]["error"]
    assert len(skipped) > 200 and skipped in dom
    assert f"{folder}/slow.csv · importing" in dom
    assert f'data-file="{folder}/bad.csv"' in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    if os.environ.get("UPDATE_DOCS_IMAGES"):  # regenerate the picture in docs/monitoring.md
        DOCS_IMAGE.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_IMAGE)

    wait_table(emulator, f"{IN}{folder}.slow", [["id"], ["5"]], timeout=60)
    wait_for(
        lambda: scrape(base)[("keboola_sync_loads_total", (("outcome", "created"),))] == 3,
        timeout=10,
        message="the third load counted",
    )
    assert json.loads(get(base + "/status")[1])["now"] == []
    assert daemon.stop() == 0
    assert get_refused(base)


def get_refused(base: str) -> bool:
    """After a stop the endpoint is gone."""
    try:
        urllib.request.urlopen(base + "/healthz", timeout=5)  # noqa: S310 - loopback
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def test_a_port_in_use_stops_start_up_naming_the_key(daemon_factory):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon: Daemon = daemon_factory({"monitoring": {"listen": f"127.0.0.1:{port}"}})
        result = daemon.run("sync", "--once")
    assert result.returncode == 2
    assert f"monitoring.listen: cannot serve on 127.0.0.1:{port} (Address already in use)" in result.stderr
