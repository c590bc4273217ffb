"""What `run` does with a start-up problem it cannot fix itself: exit 2, or wait for it to be fixed.

Why wait: in a container with `restart: unless-stopped`, exit 2 becomes a crash loop — `Restarting (2)`,
the same two lines once per start, forever — and a person looking at `docker ps` sees noise, not the
problem. Most start-up problems get fixed from outside while the container could simply stay up: the
stack comes back, the volume gets mounted, the token in a bind-mounted `.env` is replaced, config.yaml is
corrected. So in a container the daemon stays up and unhealthy (the heartbeat names the problem, which is
what `docker inspect` and `keboola-sync health` show), logs the problem once, looks again with growing
spacing, and starts work by itself once it is fixed. Outside a container (a terminal, launchd, systemd),
exit 2 with the message is the clearer answer, as architecture §1 says. `daemon.startup_problem` chooses.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .config import Config
from .errors import ConfigError

log = logging.getLogger("keboola_sync.daemon")

FIRST_RECHECK_SECONDS = 5.0
# Set by our Dockerfile: "in a container" means in keboola-sync's own image, whatever runs it (a check
# for /.dockerenv would also catch a developer's or CI's machine that is itself a container).
IMAGE_ENV = "KEBOOLA_SYNC_IN_IMAGE"


def waits(config: Config | None) -> bool:
    """Wait for a start-up problem to be fixed (True) or exit 2 (False)?"""
    setting = config.daemon.startup_problem if config is not None else "auto"
    return setting == "wait" or (setting == "auto" and os.environ.get(IMAGE_ENV) == "1")


def next_spacing(previous: float | None, cap: float) -> float:
    """5 s, then doubling, at most `cap`: a stack back within a minute is noticed within seconds, a
    problem that needs a person is not polled every few seconds for hours."""
    return min(FIRST_RECHECK_SECONDS if previous is None else previous * 2, cap)


def report_unhealthy(health_file: Path, problem: str) -> None:
    """A fresh heartbeat that says `paused: <problem>`, so `keboola-sync health` (the container's health
    check) answers unhealthy with the reason instead of "no heartbeat"."""
    data = {"pid": os.getpid(), "heartbeat_at": time.time(), "paused": f"start-up problem: {problem}"}
    tmp = health_file.with_name(f".{health_file.name}.{os.getpid()}.tmp")
    try:
        health_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data))
        os.replace(tmp, health_file)
    except OSError:
        pass  # the log line below is the report that always works


class StartupWait:
    """Runs `attempt` until it returns an exit code, waiting between attempts that raise ConfigError."""

    def __init__(self, stop: threading.Event, cap_seconds: float) -> None:
        self.stop = stop
        self.cap = cap_seconds
        self._said: str | None = None
        self._spacing: float | None = None

    def started(self) -> None:
        """Called by the daemon once start-up is over: says that a problem said before is fixed."""
        if self._said is not None:
            self._said = None
            log.info("the start-up problem is fixed; keboola-sync is running")

    def run(self, attempt: Callable[[], int], health_file: Callable[[], Path]) -> int:
        while True:
            try:
                return attempt()
            except ConfigError as exc:
                problem = str(exc)
            self._spacing = next_spacing(self._spacing, self.cap)
            if problem != self._said:
                self._said = problem
                log.error(
                    "%s (keboola-sync stays up and unhealthy, and starts by itself once this is fixed; "
                    "it looks again every %.0f s at most)",
                    problem,
                    self.cap,
                )
            report_unhealthy(health_file(), problem)
            if self.stop.wait(self._spacing):
                log.info("stopped")
                return 0
