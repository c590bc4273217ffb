"""The commands a user types: check, status, health, --version (issue 3; exit codes from architecture §1)."""

from __future__ import annotations

import json
import socket
import time
import uuid

from support.emulator import IN, wait_for


def test_check_reports_what_it_found(daemon_factory):
    daemon = daemon_factory()
    (daemon.watch / f"f{uuid.uuid4().hex[:6]}").mkdir()
    result = daemon.run("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "token accepted" in result.stdout and "Keboola Emulator" in result.stdout
    assert f"folder {daemon.watch}: readable, 1 folder(s)" in result.stdout


def test_check_with_a_wrong_token_exits_2_naming_the_fix(daemon_factory):
    daemon = daemon_factory(env={"KBC_STORAGE_API_TOKEN": "wrong-token"})
    result = daemon.run("check")
    assert result.returncode == 2
    assert "refused the token" in result.stdout and "KBC_STORAGE_API_TOKEN" in result.stdout


def test_status_lists_every_csv_with_its_state(daemon_factory):
    folder = f"st{uuid.uuid4().hex[:6]}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/good.csv", "id\n1\n")
    daemon.write(f"{folder}/bad.csv", b"id,city\n1,Z\xfcrich\n")
    daemon.write(f"{folder}/notes.txt", "not a table")
    assert daemon.run("status").stdout.count("pending") == 2  # nothing loaded yet
    assert daemon.run("sync", "--once").returncode == 1
    daemon.write(f"{folder}/new.csv", "id\n2\n")
    rows = {r["file"]: r for r in map(json.loads, daemon.run("status", "--json").stdout.splitlines())}
    assert set(rows) == {f"{folder}/good.csv", f"{folder}/bad.csv", f"{folder}/new.csv"}
    assert rows[f"{folder}/good.csv"]["state"] == "synced" and rows[f"{folder}/good.csv"]["rows"] == 1
    assert rows[f"{folder}/good.csv"]["table_id"] == f"{IN}{folder}.good"
    assert rows[f"{folder}/bad.csv"]["state"] == "skipped" and "UTF-8" in rows[f"{folder}/bad.csv"]["error"]
    assert rows[f"{folder}/new.csv"]["state"] == "pending"


def test_health_follows_the_heartbeat(daemon_factory):
    daemon = daemon_factory({"daemon": {"health_max_age_seconds": 2}})
    assert daemon.run("health").returncode == 1  # no daemon, no heartbeat
    daemon.start()
    wait_for(lambda: daemon.run("health").returncode == 0, timeout=20)
    assert daemon.stop() == 0
    result = daemon.run("health")
    assert result.returncode == 1


def test_version(daemon_factory):
    result = daemon_factory().run("--version")
    assert result.returncode == 0 and result.stdout.startswith("keboola-sync ")


def test_health_turns_unhealthy_when_keboola_stops_answering(daemon_factory, make_emulator):
    private = make_emulator()
    daemon = daemon_factory({"daemon": {"keboola_max_silence_seconds": 2}}, emulator_=private)
    daemon.start()
    wait_for(lambda: daemon.run("health").returncode == 0, timeout=20)
    private.stop()
    wait_for(lambda: daemon.run("health").returncode == 1, timeout=20)
    assert "no successful contact with Keboola" in daemon.run("health").stdout
    assert daemon.alive  # an unreachable Keboola never kills the daemon
    assert daemon.stop() == 0


def _keboola_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "keboola.url" in line or "Keboola" in line]


def test_check_against_a_closed_port_says_so_in_one_line_within_seconds(daemon_factory):
    from support.emulator import free_port

    url = f"http://127.0.0.1:{free_port()}"
    daemon = daemon_factory({"keboola": {"url": url}})
    started = time.monotonic()
    result = daemon.run("check", timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 2
    assert _keboola_lines(result.stdout) == [
        f"FAIL keboola.url: cannot reach Keboola at {url}: nothing listens at {url} (connection refused); check the "
        "host and port. Check KBC_STORAGE_API_HOST (or keboola.url) and the network"
    ]
    assert "HTTPConnectionPool" not in result.stdout + result.stderr
    assert took < 15, took


def test_check_against_a_server_that_is_not_keboola(daemon_factory, emulator):
    # The emulator's S3 port: a live HTTP server that is not a Keboola Storage API (answers 404 or 403 there).
    daemon = daemon_factory({"keboola": {"url": emulator.s3_url}})
    result = daemon.run("check", timeout=60)
    assert result.returncode == 2
    [line] = _keboola_lines(result.stdout)
    assert line.startswith(f"FAIL keboola.url: cannot reach Keboola at {emulator.s3_url}: {emulator.s3_url} answers")
    assert "but is not a Keboola Storage API; use your project's stack URL" in line
    assert "refused the token" not in result.stdout  # the token was never sent there


def test_check_against_a_server_that_never_answers_times_out_in_seconds(daemon_factory):
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        daemon = daemon_factory({"keboola": {"url": url}})
        started = time.monotonic()
        result = daemon.run("check", timeout=60)
        took = time.monotonic() - started
    assert result.returncode == 2
    [line] = _keboola_lines(result.stdout)
    assert f"{url} did not answer within 5 s" in line
    assert took < 15, took
