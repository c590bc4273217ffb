"""One daemon per ledger, and signals at any moment (issue 12, items 8 and 9): real processes, real
signals, real files, the emulator over HTTP. Every wait is a condition with a timeout."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

from support.daemon import wait_table
from support.emulator import IN, wait_for


def uid() -> str:
    return uuid.uuid4().hex[:8]


def spool_files(spool_dir: Path) -> set[Path]:
    """Every file under the spool directory that is a spool (not a lock or a folder)."""
    return {p for p in spool_dir.rglob("*") if p.is_file() and not p.name.endswith(".lock")}


# -- item 8: one process per state.path -------------------------------------------------------------------


def test_a_second_process_on_the_same_ledger_exits_2_naming_the_holder(daemon_factory, emulator):
    folder = f"lock{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    daemon.start()
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["1"]])

    for command in (("sync", "--once"), ("run",)):
        result = daemon.run(*command, timeout=60)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert f"another keboola-sync process (pid {daemon.proc.pid}" in lines[0]
        assert '"keboola-sync run"' in lines[0]
        assert str(daemon.state) in lines[0] and "state.path" in lines[0] and "Stop it first" in lines[0]
    # Both stopped before touching Keboola: the banner after the token check was said once, by the first.
    assert daemon.log().count("-> stage") == 1

    # Read-only commands work beside it.
    status = daemon.run("status")
    assert status.returncode == 0 and f"{folder}/a.csv" in status.stdout and "synced" in status.stdout
    assert daemon.run("health").returncode == 0
    assert daemon.alive
    daemon.write(f"{folder}/a.csv", "id\n2\n")  # still the one syncing
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["2"]])
    assert daemon.stop() == 0


def test_kill_9_leaves_no_stale_lock(daemon_factory, emulator):
    folder = f"stale{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    daemon.start()
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["1"]])
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(timeout=10)
    daemon.write(f"{folder}/a.csv", "id\n3\n")
    result = daemon.run("sync", "--once")
    assert result.returncode == 0, result.stderr + daemon.log()[-2000:]
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["3"]])


def test_a_daemon_starting_beside_another_never_removes_its_live_spools(daemon_factory, emulator, tmp_path):
    """Two daemons with different ledgers share one spool_dir (its default is one /tmp folder): the
    newcomer's start-up cleanup must leave the running one's spools alone."""
    shared = tmp_path / "shared-spool"
    folder = f"spool{uid()}"
    first = daemon_factory(
        {"upload": {"spool_dir": str(shared), "gzip_threshold_mb": 1000, "multipart_threshold_mb": 5}}, name="first"
    )
    rows = "".join(f"{i},{uuid.uuid4().hex}{uuid.uuid4().hex}\n" for i in range(80_000))  # ~6 MB
    first.write(f"{folder}/large.csv", "id,payload\n" + rows)
    emulator.set_faults(s3_bandwidth_mbps=1)  # ~50 s for the upload: it is still running when the second starts
    first.start()
    live = wait_for(
        lambda: {p for p in spool_files(shared) if not p.name.endswith(".part")},  # the finished spool, uploading
        timeout=30,
        message="the first daemon's spool",
    )

    second = daemon_factory({"upload": {"spool_dir": str(shared)}}, name="second")
    second.start()
    second.wait_log("watching with")
    assert all(p.exists() for p in live), f"the newcomer removed a live spool: {sorted(map(str, live))}"
    assert "removed" not in second.log()
    emulator.reset_faults()
    wait_for(lambda: emulator.client().tables.detail(f"{IN}{folder}.large")["rowsCount"] == 80_000, timeout=60)
    assert second.stop() == 0
    assert first.stop() == 0
    assert spool_files(shared) == set(), "a clean exit leaves nothing in the spool directory"


def test_spools_of_a_killed_daemon_are_removed_by_the_next_start(daemon_factory, emulator, tmp_path):
    shared = tmp_path / "spool"
    folder = f"dead{uid()}"
    daemon = daemon_factory({"upload": {"spool_dir": str(shared), "gzip_threshold_mb": 1000}})
    rows = "".join(f"{i},{uuid.uuid4().hex}\n" for i in range(60_000))
    daemon.write(f"{folder}/large.csv", "id,payload\n" + rows)
    emulator.set_faults(s3_bandwidth_mbps=2)
    daemon.start()
    left = wait_for(lambda: spool_files(shared), timeout=30, message="a spool being uploaded")
    daemon.kill()
    emulator.reset_faults()
    assert daemon.run("sync", "--once").returncode == 0
    assert not any(p.exists() for p in left)
    assert [p for p in shared.iterdir() if p.name.startswith("run-")] == []
    assert "spool file(s) left in" in daemon.log()


# -- item 9: signals at any moment -------------------------------------------------------------------------


def test_sighup_never_ends_the_daemon_silently_it_reloads_the_configuration(daemon_factory, emulator):
    """SIGHUP used to kill the daemon with exit 129 while `health` said ok. Now it reloads config.yaml (as
    Prometheus does; tests/e2e/test_live_config.py covers what a reload changes): the daemon keeps running,
    healthy, says so in one line, and stops with exit 0 on SIGTERM."""
    folder = f"hup{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    daemon.start()
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["1"]])
    wait_for(lambda: daemon.run("health").returncode == 0, timeout=20)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("SIGHUP: configuration reloaded")
    assert daemon.alive
    assert daemon.run("health").returncode == 0
    assert daemon.stop(signal.SIGTERM) == 0
    assert "Traceback" not in daemon.log()


def libraries_loaded(pid: int, name: str) -> bool:
    with open(f"/proc/{pid}/maps") as maps:
        return name in maps.read()


def test_sigterm_while_the_modules_load_exits_0(daemon_factory):
    """The daemon's modules (the SDK, boto3) take a second or more to import; a stop there used to kill the
    process with exit 143. The moment is controlled: TLS (loaded by the HTTP stack, not by the CLI) is
    mapped, the daemon's own handlers are not installed yet."""
    daemon = daemon_factory()
    daemon.start()
    wait_for(lambda: libraries_loaded(daemon.proc.pid, "libssl"), timeout=30, interval=0.005)
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0, daemon.output()[-2000:]
    assert "Traceback" not in daemon.output() + daemon.log()


def test_a_stop_during_the_token_check_exits_0_at_once(daemon_factory, make_emulator):
    private = make_emulator(extra_args=("--latency-ms", "60000", "--fault-path", "/tokens/verify"))
    for sig in (signal.SIGTERM, signal.SIGINT):
        daemon = daemon_factory(emulator_=private, name=f"token-{sig.name}")
        daemon.start()
        before = private.stats()["faults_injected"].get("latency", 0)
        wait_for(lambda b=before: private.stats()["faults_injected"].get("latency", 0) > b, timeout=30)
        started = time.monotonic()
        daemon.proc.send_signal(sig)
        assert daemon.proc.wait(timeout=30) == 0, daemon.log()[-2000:]
        assert time.monotonic() - started < 10, "a stop during start-up does not wait for the slow token check"
        log = daemon.log()
        assert f"received {sig.name} during start-up: stopping" in log
        assert "Traceback" not in log + daemon.output()
        assert not daemon.state.exists() or daemon.run("status").returncode == 0


def test_a_stop_during_the_first_bucket_lookup_exits_0_and_the_next_start_loads(daemon_factory, make_emulator):
    private = make_emulator()
    folder = f"bucket{uid()}"
    daemon = daemon_factory({"daemon": {"shutdown_timeout_seconds": 2}}, emulator_=private)
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    private.set_faults(latency_ms=60000, paths=["/buckets/"])
    daemon.start()
    wait_for(lambda: private.stats()["faults_injected"].get("latency", 0) > 0, timeout=30)
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0, daemon.log()[-2000:]
    assert "Traceback" not in daemon.log() + daemon.output()
    private.reset_faults()
    result = daemon.run("sync", "--once")
    assert result.returncode == 0, daemon.log()[-2000:]
    wait_table(private, f"{IN}{folder}.a", [["id"], ["1"]])
