"""The commands a user types: check, status, health, --version (issue 3; exit codes from architecture §1)."""

from __future__ import annotations

import json
import uuid

from support.emulator import wait_for


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
    assert rows[f"{folder}/good.csv"]["table_id"] == f"in.c-{folder}.good"
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
