"""Notifications of the real daemon (issue 16 item 6) to a local webhook receiver: one message per transition
into skipped or failed (not one per retry, not again after a restart), one when Keboola has not answered for
daemon.keboola_max_silence_seconds and one when it answers again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from support.daemon import Daemon, wait_table
from support.emulator import IN, wait_for
from support.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_one_message_per_transition(daemon_factory, make_emulator, receiver):
    folder = f"nt{uuid.uuid4().hex[:6]}"
    private = make_emulator()
    daemon: Daemon = daemon_factory(
        {
            "notify": {"urls": [receiver.url]},
            "retry": {"max_attempts": 1, "failed_retry_seconds": 0.5},
            "daemon": {"keboola_max_silence_seconds": 3},
        },
        emulator_=private,
    )
    private.set_faults(fail_rate=1.0, paths=[f"{IN}{folder}.fail"])  # its table reads answer 5xx
    daemon.write(f"{folder}/good.csv", "id\n1\n")
    daemon.write(f"{folder}/bad.csv", b"id,city\n1,Z\xfcrich\n")
    daemon.write(f"{folder}/fail.csv", "id\n2\n")
    daemon.start()
    skipped, failed = f"keboola-sync: {folder}/bad.csv: skipped", f"keboola-sync: {folder}/fail.csv: failed"
    wait_for(lambda: {skipped, failed} <= set(receiver.titles()), timeout=30, message="skipped and failed")
    needle = f"failed {folder}/fail.csv: "
    daemon.wait_log(needle, count=3)  # failed again on its retries: no new message
    # A restart remembers the ledger's verdicts: the next failure of the same file is no transition.
    assert daemon.stop() == 0
    daemon.start()
    daemon.wait_log(needle, count=daemon.log().count(needle) + 2)
    by_title = {m["title"]: m["message"] for m in receiver.messages}
    assert by_title[skipped].startswith(f"{folder}/bad.csv: the file is not valid UTF-8")
    assert f"reading table {IN}{folder}.fail" in by_title[failed]

    private.reset_faults()
    wait_table(private, f"{IN}{folder}.fail", [["id"], ["2"]])

    private.stop()
    wait_for(lambda: "keboola-sync: Keboola unreachable" in receiver.titles(), timeout=30, message="unreachable")
    private.restart()
    wait_for(lambda: "keboola-sync: Keboola answers again" in receiver.titles(), timeout=30, message="answers again")
    assert daemon.stop() == 0
    titles = receiver.titles()
    assert sorted(titles[:2]) == sorted([skipped, failed])
    assert titles[2:] == ["keboola-sync: Keboola unreachable", "keboola-sync: Keboola answers again"]
    unreachable = dict(zip(titles, [m["message"] for m in receiver.messages], strict=True))
    assert "daemon.keboola_max_silence_seconds" in unreachable["keboola-sync: Keboola unreachable"]
