"""live.py's pure parts: what a reload changes, what waits for a restart, which verdicts are judged again,
and when a watched file counts as changed. The daemon's side is in tests/e2e/test_live_config.py."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from keboola_sync.config import defaults, schema_keys, values, with_values
from keboola_sync.fileid import Fingerprint
from keboola_sync.live import (
    LIVE_KEYS,
    FileWatch,
    LiveConfig,
    advice_for,
    plan,
    restart_keys,
    show,
    to_judge_again,
)
from keboola_sync.state import FileRecord, LedgerState

FP = Fingerprint(10, 1_000, 7)


def record(path: str, state: LedgerState, error: str | None = None, *, job_id: int | None = None) -> FileRecord:
    return FileRecord(
        path=path,
        table_id=f"in.c-F.{path}",
        state=state,
        seen=FP,
        sha256=None,
        columns=None,
        header=None,
        rows=None,
        last_load_at=None,
        file_id=None,
        file_uploaded_at=None,
        job_id=job_id,
        pending=None,
        pending_sha256=None,
        pending_columns=None,
        error=error,
        next_retry_at=None,
    )


def test_every_key_is_either_live_or_needs_a_restart() -> None:
    assert set(LIVE_KEYS) | set(restart_keys()) == set(schema_keys())
    assert set(LIVE_KEYS) & set(restart_keys()) == set()
    assert {"watch.path", "state.path", "logging.file", "daemon.health_file", "upload.spool_dir"} <= set(restart_keys())


def test_plan_applies_live_keys_and_keeps_the_running_value_of_restart_keys() -> None:
    running = replace(defaults(), token="in-use")
    loaded = with_values(
        running,
        {"csv.on_header_change": "load", "watch.stable_seconds": 5.0, "state.path": Path("/elsewhere/state.db")},
    )
    loaded = replace(loaded, token="from-the-file")
    change = plan(running, loaded)
    assert change.changed == {"csv.on_header_change": "load", "watch.stable_seconds": 5.0}
    assert change.restart == {"state.path": Path("/elsewhere/state.db")}
    assert change.applied.csv.on_header_change == "load"
    assert change.applied.state.path == running.state.path
    assert change.applied.token == "in-use"  # a token changes only after Keboola accepted it


def test_plan_of_an_unchanged_file_changes_nothing() -> None:
    change = plan(defaults(), defaults())
    assert change.changed == {} and change.restart == {}
    assert values(change.applied) == values(defaults())


def test_live_config_swaps_the_layout_with_the_config() -> None:
    live = LiveConfig(defaults())
    assert live.layout.ignore_patterns == ()
    live.swap(with_values(defaults(), {"watch.ignore_patterns": ("draft_*",)}))
    assert live.layout.ignore_patterns == ("draft_*",)
    assert live.config.watch.ignore_patterns == ("draft_*",)


def test_show_writes_values_as_config_yaml_does() -> None:
    assert show(True) == "true"
    assert show(5.0) == "5"
    assert show(0.3) == "0.3"
    assert show(("*.bak", "tmp")) == "['*.bak', 'tmp']"
    assert show(()) == "[]"


def test_skips_are_judged_again_when_their_message_names_a_changed_key() -> None:
    header = record("h.csv", LedgerState.SKIPPED, "h.csv: the header ... or set csv.on_header_change: load")
    name = record("n.csv", LedgerState.SKIPPED, "n.csv: ... or set mapping.on_invalid_name: sanitize.")
    encoding = record("e.csv", LedgerState.SKIPPED, "e.csv: not UTF-8 text")
    synced = record("s.csv", LedgerState.SYNCED)
    failed = record("f.csv", LedgerState.FAILED, "HTTP 500")
    records = [header, name, encoding, synced, failed]

    skipped, retried = to_judge_again(records, ["csv.on_header_change"])
    assert skipped == [header] and retried == []

    # The dialect settings can change any verdict about the content: every skip is judged again.
    skipped, retried = to_judge_again(records, ["csv.delimiters"])
    assert skipped == [header, name, encoding] and retried == []

    # A failed load may have failed for want of a longer timeout or more attempts.
    skipped, retried = to_judge_again(records, ["keboola.request_timeout_seconds"])
    assert skipped == [] and retried == [failed]
    assert to_judge_again(records, ["logging.level"]) == ([], [])


def test_a_row_in_flight_is_never_judged_again() -> None:
    in_flight = record("f.csv", LedgerState.FAILED, "HTTP 500", job_id=42)
    assert to_judge_again([in_flight], ["retry.max_attempts"]) == ([], [])


def test_file_watch_counts_a_change_once_the_stat_holds_still(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    watch = FileWatch(path)
    assert not watch.changed()  # missing, and still missing
    path.write_text("watch: {}\n")
    assert not watch.changed()  # seen once: perhaps half-written
    assert watch.changed()  # the same stat again: a change
    assert not watch.changed()

    replacement = tmp_path / "config.yaml.new"  # an editor's atomic save: a new inode
    replacement.write_text("watch: {}\n")
    os.replace(replacement, path)
    assert not watch.changed()
    assert watch.changed()

    path.write_text("csv: {}\n")
    watch.settle()  # a SIGHUP read it already
    assert not watch.changed()
    path.unlink()
    assert not watch.changed()
    assert watch.changed()  # removed counts as a change too (start-up rules then apply)


def test_rotation_advice_names_what_works_here(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    assert "docker compose up -d" in advice_for(env_file, {"KBC_STORAGE_API_TOKEN": "x"}, in_container=True)
    native = advice_for(env_file, {"KBC_STORAGE_API_TOKEN": "x"}, in_container=False)
    assert native.startswith("Set a valid KBC_STORAGE_API_TOKEN in the environment and restart")
    env_file.write_text("KBC_STORAGE_API_TOKEN=y\n")
    for in_container in (True, False):
        advice = advice_for(env_file, {"KBC_STORAGE_API_TOKEN": "x"}, in_container=in_container)
        assert advice.startswith(f"Put a valid KBC_STORAGE_API_TOKEN in {env_file}: the running daemon checks it")
