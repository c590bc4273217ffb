"""Run it without restarting it (issue 16 items 1 and 2): config.yaml and .env edited while the real daemon
runs, through the emulator over HTTP. Every wait is a condition (a log line, a table's rows)."""

from __future__ import annotations

import signal
import uuid

from support.daemon import wait_table
from support.emulator import IN, wait_for


def uid() -> str:
    return uuid.uuid4().hex[:8]


def test_an_edit_applies_at_once_and_the_files_it_concerns_are_judged_again(daemon_factory, emulator):
    folder = f"live{uid()}"
    daemon = daemon_factory({"watch": {"ignore_patterns": ["draft_*"]}})
    daemon.write(f"{folder}/orders.csv", "id,amount\n1,10\n")
    daemon.write(f"{folder}/draft_plan.csv", "id\n1\n")
    daemon.start()
    wait_table(emulator, f"{IN}{folder}.orders", [["id", "amount"], ["1", "10"]])

    # A new column: skipped under the default csv.on_header_change: skip, and the line says what to set.
    daemon.write(f"{folder}/orders.csv", "id,amount,note\n2,20,x\n")
    daemon.wait_log("or set csv.on_header_change: load")

    daemon.write_config({"csv": {"on_header_change": "load"}, "watch": {"ignore_patterns": [], "stable_seconds": 0.3}})
    log = daemon.wait_log(f"configuration reloaded from {daemon.config_path}: ")
    line = next(line for line in log.splitlines() if "configuration reloaded from" in line)
    assert " INFO " in line
    for change in ("csv.on_header_change=load", "watch.ignore_patterns=[]", "watch.stable_seconds=0.3"):
        assert change in line, line

    # The skipped file is judged again without being touched, and loads; the file the removed pattern
    # ignored is picked up.
    wait_table(emulator, f"{IN}{folder}.orders", [["id", "amount", "note"], ["2", "20", "x"]])
    wait_table(emulator, f"{IN}{folder}.draft_plan", [["id"], ["1"]])
    assert daemon.log().count("configuration reloaded from") == 1
    assert daemon.stop() == 0


def test_an_invalid_edit_is_logged_once_and_the_running_configuration_stays(daemon_factory, emulator):
    folder = f"invalid{uid()}"
    daemon = daemon_factory()
    daemon.start()
    daemon.wait_log("watching with")

    daemon.write_config({"upload": {"gzip_level": 12}})
    daemon.wait_log("configuration error in")
    # Still running on the old configuration: a new file loads.
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["1"]])
    assert daemon.alive

    # Fixing the file applies it.
    daemon.write_config({"upload": {"gzip_level": 3}})
    log = daemon.wait_log("configuration reloaded from")
    errors = [line for line in log.splitlines() if "configuration error in" in line]
    assert len(errors) == 1, errors
    assert " ERROR " in errors[0]
    # The same words as at start-up, naming the key.
    assert "upload.gzip_level is 12; it must be a whole number from 0 to 9. The running" in errors[0]
    assert "The running configuration stays until the file is fixed" in errors[0]
    assert "upload.gzip_level=3" in log
    assert daemon.stop() == 0


def test_a_key_that_needs_a_restart_is_warned_once_and_keeps_its_running_value(daemon_factory, emulator):
    folder = f"restart{uid()}"
    daemon = daemon_factory()
    daemon.start()
    daemon.wait_log("watching with")
    other_ledger = daemon.tmp / "elsewhere" / "state.db"

    daemon.write_config({"state": {"path": str(other_ledger)}})
    daemon.wait_log("applied only after a restart of keboola-sync")
    # Another edit of a live key while the restart-only one still differs: applied, no second warning.
    daemon.write_config({"state": {"path": str(other_ledger)}, "retry": {"failed_retry_seconds": 3}})
    log = daemon.wait_log("retry.failed_retry_seconds=3")
    warnings = [line for line in log.splitlines() if "applied only after a restart of keboola-sync" in line]
    assert len(warnings) == 1, warnings
    assert " WARNING " in warnings[0] and "state.path changed in" in warnings[0]

    daemon.write(f"{folder}/a.csv", "id\n1\n")
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["1"]])
    assert not other_ledger.exists(), "the ledger moved without a restart"
    assert daemon.stop() == 0


def test_sighup_reloads_the_configuration(daemon_factory):
    daemon = daemon_factory()
    daemon.start()
    daemon.wait_log("watching with")

    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log(f"SIGHUP: configuration reloaded from {daemon.config_path}: nothing changed")
    daemon.write_config({"logging": {"level": "INFO"}})
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("logging.level=INFO")
    assert daemon.alive
    assert daemon.stop() == 0
    assert daemon.log().count("logging.level=INFO") == 1


def test_a_token_rotated_in_env_is_verified_then_used_without_a_restart(daemon_factory, make_emulator):
    first, second, bogus = f"first-{uid()}", f"second-{uid()}", f"bogus-{uid()}"
    emulator = make_emulator(token=first)
    daemon = daemon_factory(emulator_=emulator)
    env_file = daemon.write_env_file(first)
    folder = f"rotate{uid()}"
    daemon.write(f"{folder}/a.csv", "id\n1\n")
    daemon.start()
    wait_table(emulator, f"{IN}{folder}.a", [["id"], ["1"]])

    # A token Keboola refuses: one ERROR, the token in use stays and loads go on.
    daemon.write_env_file(bogus)
    daemon.wait_log("was refused by Keboola")
    daemon.write(f"{folder}/b.csv", "id\n2\n")
    wait_table(emulator, f"{IN}{folder}.b", [["id"], ["2"]])

    # The token in use is revoked (as in Keboola's UI): a load fails and says how to rotate here.
    emulator.revoke_token(first)
    daemon.write(f"{folder}/c.csv", "id\n3\n")
    daemon.wait_log(f"Put a valid KBC_STORAGE_API_TOKEN in {env_file}: the running daemon checks it")

    # The new token goes into .env: verified, used, and the failed file loads without a restart.
    emulator.add_token(second)
    emulator.token = second  # what the test reads tables with, too
    daemon.write_env_file(second)
    daemon.wait_log("Keboola accepted the new token")
    wait_table(emulator, f"{IN}{folder}.c", [["id"], ["3"]])
    daemon.write(f"{folder}/d.csv", "id\n4\n")
    wait_table(emulator, f"{IN}{folder}.d", [["id"], ["4"]])

    log = daemon.log() + daemon.output()
    refused = [line for line in log.splitlines() if "was refused by Keboola" in line]
    assert len(refused) == 1 and " ERROR " in refused[0], refused
    for token in (first, second, bogus):
        assert token not in log
    assert daemon.alive
    assert daemon.stop() == 0
    wait_for(lambda: not daemon.alive, message="daemon stopped")
