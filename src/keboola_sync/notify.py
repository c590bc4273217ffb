"""Notifications (`notify.urls`): one message when a file becomes `failed` or `skipped`, and one when Keboola
has been unreachable for too long (and one when it answers again).

Why Apprise: one URL scheme reaches Slack, Teams, e-mail, ntfy, Discord, plain JSON webhooks and some
hundred more, each kept working by its maintainers; the user pastes the URL their service documents.
Why a thread: a slow or dead webhook must never hold up a load; messages queue (bounded) and are sent in
order, and a failed send is logged once and dropped, never retried forever.
Why transitions only: a file that stays failed through fifty retries is one message, not fifty.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence

log = logging.getLogger("keboola_sync.notify")

ALERT_STATES = frozenset({"failed", "skipped"})
QUEUE_LIMIT = 100  # a burst beyond this is summarised, not queued


class Notifier:
    """Remembers each file's last state and Keboola's reachability; sends on a change into a bad state."""

    def __init__(self, urls: Sequence[str], *, title: str = "keboola-sync") -> None:
        self.urls = tuple(urls)
        self.title = title
        self._states: dict[str, str] = {}
        self._keboola_down = False
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._dropped = 0
        self._thread: threading.Thread | None = None
        if self.urls:
            self._thread = threading.Thread(target=self._send_loop, name="keboola-sync-notify", daemon=True)
            self._thread.start()

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    def remember(self, states: Mapping[str, str]) -> None:
        """The states the ledger holds at start-up: a file that failed before a restart and fails again
        is no new transition, so it sends nothing."""
        with self._lock:
            self._states.update(states)

    def file_state(self, rel_path: str, state: str, message: str) -> None:
        """Called with every verdict; sends only when a file enters `failed` or `skipped`."""
        with self._lock:
            before = self._states.get(rel_path)
            self._states[rel_path] = state
        if state in ALERT_STATES and before != state:
            self._post(f"{rel_path}: {state}", message)

    def keboola_reachable(self, reachable: bool, detail: str) -> None:
        with self._lock:
            changed = self._keboola_down == reachable  # down and now reachable, or up and now not
            self._keboola_down = not reachable
        if changed:
            self._post("Keboola answers again" if reachable else "Keboola unreachable", detail)

    def close(self, timeout: float = 5.0) -> None:
        """Sends what is queued (up to `timeout`), then stops the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _post(self, title: str, body: str) -> None:
        if not self.enabled:
            return
        try:
            self._queue.put_nowait((title, body))
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def _send_loop(self) -> None:
        import apprise  # lazy: ~0.2 s of imports that nobody without notify.urls should pay

        # Apprise logs parts of the URLs it cannot parse (secrets included); we say what matters ourselves.
        logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
        sender = apprise.Apprise()
        for url in self.urls:
            if not sender.add(url):
                log.error("notify.urls: cannot use %s; check the URL against Apprise's list of services", _safe(url))
        while (item := self._queue.get()) is not None:
            title, body = item
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                body += f"\n({dropped} more notifications were dropped: too many at once; see the log)"
            if not sender.notify(title=f"{self.title}: {title}", body=body):
                log.warning("a notification could not be sent (%s); see the log for what it said", title)


def _safe(url: str) -> str:
    """The scheme and host only: notification URLs carry secrets (webhook tokens, passwords)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/..." if rest else scheme
