"""The heartbeat file and its check, for Docker's HEALTHCHECK and `keboola-sync health`.

Kept apart from the daemon so `keboola-sync health` imports nothing heavy (no SDK, no boto3): Docker runs
it every 30 s inside the container, and it must stay a few milliseconds of CPU.
"""

from __future__ import annotations

import json
import logging
import os
import time

from . import __version__
from .config import Config

log = logging.getLogger("keboola_sync.daemon")


class Health:
    """The heartbeat file `keboola-sync health` reads (written atomically, outside the watched folder)."""

    def __init__(self, config: Config) -> None:
        self.path = config.daemon.health_file
        self.config = config
        self._failing = False  # the last write failed (said once)

    def write(self, **fields: object) -> None:
        data = {"pid": os.getpid(), "version": __version__, "heartbeat_at": time.time(), **fields}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)
        except OSError as exc:
            # Once per episode, not at every heartbeat: a full volume would otherwise fill the log.
            if not self._failing:
                log.warning("cannot write the health file %s: %s", self.path, exc)
            self._failing = True
            return
        if self._failing:
            self._failing = False
            log.info("the health file %s can be written again", self.path)

    @staticmethod
    def check(config: Config, now: float | None = None) -> tuple[bool, str]:
        """(healthy?, one line why). Cheap: reads one small file, never calls Keboola."""
        now = now if now is not None else time.time()
        path = config.daemon.health_file
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            return False, f"no heartbeat at {path}: {exc}"
        age = now - float(data.get("heartbeat_at", 0))
        if age > config.daemon.health_max_age_seconds:
            return False, f"heartbeat is {age:.0f} s old (limit {config.daemon.health_max_age_seconds:.0f} s)"
        if data.get("paused"):
            return False, f"paused: {data['paused']}"
        last_ok = data.get("last_keboola_ok_at")
        silence = now - float(last_ok or 0)
        if silence > config.daemon.keboola_max_silence_seconds:
            when = f"{silence:.0f} s ago" if last_ok else "never"
            limit = config.daemon.keboola_max_silence_seconds
            return False, f"no successful contact with Keboola {when} (limit {limit:.0f} s)"
        return True, (
            f"ok: heartbeat {age:.0f} s ago, Keboola answered {silence:.0f} s ago, "
            f"{data.get('pending', 0)} pending, {data.get('failed', 0)} failed"
        )
