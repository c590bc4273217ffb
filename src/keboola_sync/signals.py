"""Stopping and reloading on signals: SIGTERM/SIGINT stop, SIGHUP reloads, a second stop signal leaves now.

The handlers only set events: logging (its locks) and timers are not safe inside a signal handler. A
thread of its own reacts at once (the main thread may sit in a Keboola call), the daemon's loops react
too, and whoever is first says the stop once. A stop during start-up gives up every wait on Keboola at
once; after it, loads in flight are finished until `daemon.shutdown_timeout_seconds`, then abandoned.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterable
from types import FrameType

from .live import LiveConfig
from .state import Ledger

log = logging.getLogger("keboola_sync.daemon")

# How long a stop during start-up waits for the main thread (which may be inside one Keboola request that
# cannot be interrupted) before the process leaves without it: nothing is loading yet, so nothing is lost.
STARTUP_STOP_GRACE_SECONDS = 2.0


class Signals:
    """The daemon's stop and reload events, and the one place that says a stop."""

    def __init__(self, live: LiveConfig) -> None:
        self.live = live
        self.stop = threading.Event()
        self.reload_now = threading.Event()  # SIGHUP: load config.yaml again
        self.abandon = threading.Event()
        self.hurry = threading.Event()  # a second signal: leave now
        self._signal_name = ""
        self._stop_said = False
        self.loading = threading.Event()  # start-up is over: workers may be loading
        self.finished = threading.Event()  # run() has returned
        self._say_lock = threading.Lock()

    def on_hangup(self, signum: int, frame: FrameType | None) -> None:
        """SIGHUP reloads the configuration (as Prometheus does); the main loop does the work."""
        self.reload_now.set()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Only sets events: logging (its locks) and timers are not safe inside a signal handler."""
        if self.stop.is_set():
            self.hurry.set()
            return
        self._signal_name = signal.Signals(signum).name
        self.stop.set()

    def install(self, early: Iterable[int] = ()) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads the configuration. `early`: signals received before the
        daemon existed (held by the CLI while the modules load); they count as if they came now."""
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGHUP, self.on_hangup)
        for signum in early:
            (self.on_hangup if signum == signal.SIGHUP else self.on_signal)(signum, None)
        # The main thread may sit in a Keboola call (start-up, resolving the previous run) when a signal
        # comes: this thread reacts at once, the loops react too, whoever is first says it once.
        threading.Thread(target=self._react_to_signals, name="signals", daemon=True).start()

    def _react_to_signals(self) -> None:
        self.stop.wait()
        if not self.loading.is_set():
            self._stop_during_startup()
        self.acknowledge_stop()
        self.hurry.wait()
        log.warning("second signal: stopping now; the next start finishes what was in flight")
        self._leave_now()

    def _leave_now(self) -> None:
        self.abandon.set()
        logging.shutdown()
        os._exit(0)

    def _stop_during_startup(self) -> None:
        """Nothing is loading yet, so nothing has to be finished: every wait on Keboola is given up at once.
        The main thread returns at its next step; one stuck inside a request (a slow token check) cannot
        be interrupted, so after a short grace the process leaves without it. The ledger is consistent at
        any moment (every change is one SQLite transaction), and the next start begins again."""
        if not self.say_startup_stop():
            return
        if self.finished.wait(STARTUP_STOP_GRACE_SECONDS) or self.loading.is_set():
            return
        log.info(
            "start-up did not end within %.0f s of the stop request; leaving without it", STARTUP_STOP_GRACE_SECONDS
        )
        log.info("stopped")
        self._leave_now()

    def say_startup_stop(self) -> bool:
        """Say a stop during start-up once (False if already said) and give up every wait on Keboola."""
        with self._say_lock:
            if self._stop_said:
                return False
            self._stop_said = True
        log.info("received %s during start-up: stopping; nothing was loading yet", self._signal_name or "SIGTERM")
        self.abandon.set()
        return True

    def ledger_lost(self, ledger: Ledger) -> bool:
        """state.path was replaced by something that cannot be opened (the ledger said so): stop, finishing
        what is in flight, and exit 2."""
        if ledger.lost is None:
            return False
        with self._say_lock:
            said, self._stop_said = self._stop_said, True
        self.stop.set()
        if not said:
            self._start_abandon_countdown()
        return True

    def acknowledge_stop(self) -> None:
        """Say the stop once and start the countdown after which waiting on Keboola is given up."""
        with self._say_lock:
            if self._stop_said or not self.stop.is_set():
                return
            self._stop_said = True
        timeout = self.live.config.daemon.shutdown_timeout_seconds
        log.info(
            "received %s: finishing loads in flight (up to %.0f s), starting nothing new",
            self._signal_name or "a stop request",
            timeout,
        )
        self._start_abandon_countdown()

    def _start_abandon_countdown(self) -> None:
        # Whatever is still waiting on Keboola when the time is up gives up (the ledger keeps the job).
        timer = threading.Timer(self.live.config.daemon.shutdown_timeout_seconds, self.abandon.set)
        timer.daemon = True
        timer.start()
