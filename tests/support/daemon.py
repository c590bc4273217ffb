"""Run the real daemon as a subprocess against an emulator, the way a user runs it.

Every wait is a condition polled with a timeout (`wait_for`), never a fixed sleep.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.emulator import Emulator, wait_for

FAST_CONFIG: dict[str, dict[str, Any]] = {
    "keboola": {"request_timeout_seconds": 10, "job_timeout_seconds": 120, "job_poll_max_seconds": 0.2},
    "watch": {"stable_seconds": 0.4, "rescan_seconds": 3, "polling_interval_seconds": 0.2},
    "retry": {
        "max_attempts": 6,
        "initial_backoff_seconds": 0.05,
        "max_backoff_seconds": 0.5,
        "failed_retry_seconds": 2,
    },
    "daemon": {
        "shutdown_timeout_seconds": 10,
        "heartbeat_seconds": 0.5,
        "health_max_age_seconds": 5,
        "keboola_max_silence_seconds": 30,
    },
    "logging": {"level": "DEBUG", "console": False, "progress_seconds": 1},
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in extra.items():
        if isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return out


class Daemon:
    """A keboola-sync process with its own folder, ledger, log and spool under a tmp dir."""

    def __init__(
        self, tmp: Path, emulator: Emulator, config: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.tmp = tmp
        self.emulator = emulator
        self.watch = tmp / "watched"
        self.watch.mkdir(parents=True, exist_ok=True)
        self.state = tmp / "state" / "state.db"
        self.log_file = tmp / "logs" / "keboola-sync.log"
        self.health_file = tmp / "state" / "health.json"
        self.config_path = tmp / "config.yaml"
        self.env_file = tmp / "no.env"
        self.token_from_env_file = False
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._out = tmp / "daemon.out"
        self.write_config(config or {})

    def write_config(self, overrides: dict[str, Any]) -> None:
        paths = {
            "keboola": {"url": self.emulator.api_url},
            "watch": {"path": str(self.watch)},
            "state": {"path": str(self.state)},
            "upload": {"spool_dir": str(self.tmp / "spool")},
            "daemon": {"health_file": str(self.health_file)},
            "logging": {"file": str(self.log_file)},
        }
        self.config = merge(merge(FAST_CONFIG, paths), overrides)
        self.config_path.write_text(yaml.safe_dump(self.config))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KBC_")}
        env.update(self.emulator.env())
        env.pop("KBC_STORAGE_API_HOST", None)  # the config's keboola.url points at the emulator
        if self.token_from_env_file:
            env.pop("KBC_STORAGE_API_TOKEN", None)
        env.update(self.extra_env)
        return env

    def write_env_file(self, token: str) -> Path:
        """Put the token in a .env of its own (and no longer in the environment), as a user does; written
        in place like an editor that saves over the file."""
        self.env_file = self.tmp / ".env"
        self.token_from_env_file = True
        self.env_file.write_text(f"KBC_STORAGE_API_TOKEN={token}\n")
        self.env_file.chmod(0o600)
        return self.env_file

    def command(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "keboola_sync",
            "--config",
            str(self.config_path),
            "--env-file",
            str(self.env_file),
            *args,
        ]

    def start(self) -> Daemon:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        out = self._out.open("ab")
        self.proc = subprocess.Popen(self.command("run"), env=self.env(), stdout=out, stderr=out)
        out.close()
        return self

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        text = ""
        for path in sorted(self.log_file.parent.glob(self.log_file.name + "*"), reverse=True):
            text += path.read_text(errors="replace")
        return text

    def output(self) -> str:
        return self._out.read_text(errors="replace") if self._out.exists() else ""

    def wait_log(self, needle: str, timeout: float = 30, count: int = 1) -> str:
        def found() -> bool:
            if self.proc is not None and self.proc.poll() is not None and self.log().count(needle) < count:
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) before logging {needle!r}:\n"
                    f"{self.log()[-3000:]}\n{self.output()[-2000:]}"
                )
            return self.log().count(needle) >= count

        try:
            wait_for(found, timeout=timeout, message=f"log line {needle!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log tail ---\n{self.log()[-4000:]}") from None
        return self.log()

    # -- files -------------------------------------------------------------------------------------

    def write(self, rel_path: str, content: str | bytes) -> Path:
        path = self.watch / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        tmp = path.parent / f".{path.name}.writing"  # hidden: ignored until renamed into place
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path


def table_rows(emulator: Emulator, table_id: str) -> list[list[str]] | None:
    """The table's rows (header first, data sorted) read back through the real SDK, or None if the
    table does not exist."""
    import requests

    tables = emulator.client().tables
    try:
        # Tables.preview() has no `limit` (default 100 rows); the same SDK call with the API's limit (max 1000).
        text = tables._get_raw(f"{tables.base_url}/{table_id}/data-preview", params={"limit": 1000}).text
    except requests.HTTPError as exc:
        if exc.response is not None and exc.response.status_code == 404:
            return None
        raise
    rows = list(csv.reader(io.StringIO(text)))
    return [rows[0], *sorted(rows[1:])] if rows else []


def csv_rows(text: str, delimiter: str = ",") -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    return [rows[0], *sorted(rows[1:])]


def wait_table(emulator: Emulator, table_id: str, expected: Iterable[Iterable[str]], timeout: float = 30) -> None:
    want = [list(r) for r in expected]
    want = [want[0], *sorted(want[1:])]
    last: list[Any] = []

    def matches() -> bool:
        last[:] = [table_rows(emulator, table_id)]
        return last[0] == want

    try:
        wait_for(matches, timeout=timeout, message=f"table {table_id}")
    except AssertionError:
        raise AssertionError(f"table {table_id} never became {want!r}; last seen {last[0]!r}") from None


@pytest.fixture
def daemon_factory(tmp_path: Path, emulator: Emulator):
    """Daemons started through it are killed at teardown (a test asserts its own exit codes)."""
    made: list[Daemon] = []

    def make(
        config: dict[str, Any] | None = None,
        *,
        emulator_: Emulator | None = None,
        name: str = "d",
        env: dict[str, str] | None = None,
    ) -> Daemon:
        daemon = Daemon(tmp_path / name, emulator_ or emulator, config, env)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.kill()
