"""A start-up problem in a container must not become a crash loop (issue 15 item 1): with
`daemon.startup_problem: wait` (the default inside a container) `run` stays up and unhealthy, says the
problem once, and starts by itself once it is fixed. Outside a container (`exit`, the default there) it
exits 2, as before: tests/e2e/test_bad_inputs.py pins that. tests/docker covers the container itself."""

from __future__ import annotations

import signal
import uuid

from support.daemon import wait_table
from support.emulator import IN, wait_for


def test_a_stack_that_is_down_at_start_is_waited_for_then_used(daemon_factory, make_emulator):
    emulator = make_emulator()
    folder = f"wait{uuid.uuid4().hex[:8]}"
    daemon = daemon_factory({"daemon": {"startup_problem": "wait", "startup_retry_max_seconds": 1}}, emulator_=emulator)
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    emulator.stop()

    daemon.start()
    daemon.wait_log("keboola-sync stays up and unhealthy, and starts by itself once this is fixed")
    health = daemon.run("health")
    assert health.returncode == 1 and "start-up problem: keboola.url: cannot reach Keboola" in health.stdout
    wait_for(lambda: daemon.log().count("cannot reach Keboola") >= 1, timeout=5)
    assert daemon.alive

    emulator.restart()
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["1"]], timeout=60)
    assert "the start-up problem is fixed; keboola-sync is running" in daemon.log()
    # Said once, however many times it looked again.
    assert daemon.log().count("keboola-sync stays up and unhealthy") == 1
    wait_for(lambda: daemon.run("health").returncode == 0, timeout=30)
    assert daemon.stop(signal.SIGTERM) == 0


def test_a_stop_while_waiting_exits_0(daemon_factory, make_emulator):
    emulator = make_emulator()
    daemon = daemon_factory({"daemon": {"startup_problem": "wait"}}, emulator_=emulator)
    emulator.stop()
    daemon.start()
    daemon.wait_log("keboola-sync stays up and unhealthy")
    assert daemon.stop(signal.SIGTERM) == 0
