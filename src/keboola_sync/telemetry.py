"""The daemon's outward view: the metrics it counts, the monitoring endpoint, the notifications, and what
the heartbeat says is loading now.

Why one room: the daemon makes one `Telemetry` and touches it at four points (start, each loop tick, the
scheduler's load hooks, stop); what is counted, shown and sent is decided here, so the lifecycle code stays
about the lifecycle. Nothing here ever changes what the daemon does.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .config import Config
from .health import Health
from .metrics import Metrics
from .notify import Notifier
from .outcome import Outcome, Status
from .preflight import StartupError
from .scheduler import LoadHooks
from .state import Ledger

if TYPE_CHECKING:  # the endpoint's module (http.server) is imported only when monitoring.listen is set
    from .monitor import Monitor

log = logging.getLogger("keboola_sync.daemon")

# The status rows (a walk of the folder and a ledger read) are shared by scrapes this close together.
STATUS_CACHE_SECONDS = 2.0

# What an outcome means for the file's state, as notifications see it (None: no verdict on the file).
_STATE_OF_STATUS: dict[Status, str] = {
    Status.LOADED: "synced",
    Status.CREATED: "synced",
    Status.UNCHANGED: "synced",
    Status.SKIPPED: "skipped",
    Status.FAILED: "failed",
    Status.WAITING: "failed",
}


class Telemetry(LoadHooks):
    """Metrics, the endpoint (when `monitoring.listen` is set) and notifications (when `notify.urls` is)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.notifier = Notifier(config.notify.urls)
        self.monitor: Monitor | None = None
        self._started_at = time.time()
        self._rows_lock = threading.Lock()
        self._rows: tuple[float, list[dict[str, Any]]] = (float("-inf"), [])

    def start(self, ledger: Ledger) -> None:
        """Remember the ledger's verdicts (a restart sends nothing new) and open the endpoint. A port that
        cannot be bound is a start-up error naming the key."""
        self.notifier.remember({r.path: str(r.state) for r in ledger.all()})
        listen = self.config.monitoring.listen
        if not listen:
            return
        from .monitor import Monitor

        monitor = Monitor(
            listen, self.metrics, self.status_rows, lambda: Health.check(self.config), self.metrics.now_loading
        )
        try:
            monitor.start()
        except OSError as exc:
            raise StartupError(
                "monitoring.listen",
                f"monitoring.listen: cannot serve on {listen} ({exc.strerror or exc}). Pick a free port, or set "
                'monitoring.listen: "" to turn the endpoint off',
            ) from exc
        self.monitor = monitor

    # -- the scheduler's hooks (worker threads) --------------------------------------------------------

    def started(self, rel_path: str) -> None:
        self.metrics.load_started(rel_path)

    def ended(self, rel_path: str, outcome: Outcome | None) -> None:
        self.metrics.load_ended(rel_path, str(outcome.status) if outcome is not None else None)
        state = _STATE_OF_STATUS.get(outcome.status) if outcome is not None else None
        if outcome is not None and state is not None:
            self.notifier.file_state(rel_path, state, outcome.message)

    # -- the main loop ---------------------------------------------------------------------------------

    def tick(self, *, queue_length: int, observer: str | None, last_contact: float | None) -> None:
        """Numbers only the main loop knows, and Keboola's silence turned into one message each way."""
        self.metrics.set_queue_length(queue_length)
        if observer:
            self.metrics.set_observer_mode(observer)
        if last_contact:
            self.metrics.keboola_contact(last_contact)
        limit = self.config.daemon.keboola_max_silence_seconds
        silence = time.time() - (last_contact or self._started_at)
        url = self.config.keboola.url
        if silence > limit:
            self.notifier.keboola_reachable(
                False,
                f"no successful contact with Keboola at {url} for {silence:.0f} s "
                f"(limit {limit:.0f} s, daemon.keboola_max_silence_seconds); loads wait until it answers",
            )
        elif last_contact:
            self.notifier.keboola_reachable(True, f"Keboola at {url} answers again")

    def activity(self) -> list[dict[str, Any]]:
        """What loads now (the heartbeat carries it to `keboola-sync status`)."""
        return self.metrics.now_loading()

    def status_rows(self) -> list[dict[str, Any]]:
        from .status import collect

        with self._rows_lock:
            at, rows = self._rows
            if time.monotonic() - at > STATUS_CACHE_SECONDS:
                rows = collect(self.config)
                self._rows = (time.monotonic(), rows)
            return rows

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
            self.monitor = None
        self.notifier.close()
