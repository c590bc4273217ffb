"""The daemon's reactions to signals, without a process: the handler only sets events, the main loop (or
the signals thread) acts on them. The e2e tests (tests/e2e/test_one_daemon.py) send real signals."""

from __future__ import annotations

import logging
import signal

from keboola_sync.config import Config
from keboola_sync.daemon import Daemon


def test_sighup_only_asks_the_main_loop_for_a_reload() -> None:
    daemon = Daemon(Config())
    daemon.signals.on_hangup(signal.SIGHUP, None)
    assert daemon.signals.reload_now.is_set() and not daemon.stop.is_set()


def test_a_sighup_during_a_stop_is_not_a_second_signal() -> None:
    daemon = Daemon(Config())
    daemon.signals.on_signal(signal.SIGTERM, None)
    daemon.signals.on_hangup(signal.SIGHUP, None)
    assert not daemon.signals.hurry.is_set()
    daemon.signals.on_signal(signal.SIGINT, None)
    assert daemon.signals.hurry.is_set()


def test_a_stop_during_start_up_is_said_once_and_gives_up_every_wait_at_once(caplog) -> None:
    daemon = Daemon(Config())
    daemon.signals.on_signal(signal.SIGINT, None)
    with caplog.at_level(logging.INFO, logger="keboola_sync.daemon"):
        assert daemon._stopped() == 0
        daemon.signals.acknowledge_stop()
    assert daemon.abandon.is_set(), "nothing is loading yet: no countdown, the waits end now"
    assert [r.getMessage() for r in caplog.records] == [
        "received SIGINT during start-up: stopping; nothing was loading yet",
        "stopped",
    ]
