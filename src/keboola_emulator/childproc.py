"""A cloud storage emulator (Azurite, gcp-storage-emulator) run as a child process on a free loopback port.

The emulator owns its child: it starts it, waits until the port accepts connections (bounded), and
stops it with SIGTERM (SIGKILL after a grace period) when the emulator stops. The child's output goes
to a log file beside the emulator's data, never to stdout (stdout carries only the READY line).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
START_TIMEOUT = 60.0  # Azurite's first start under load takes a few seconds


def free_port() -> int:
    """A port that was free a moment ago (the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL("libc.so.6").prctl
    except (OSError, AttributeError):
        return None  # not glibc: stop() still ends the child on a clean exit


_PRCTL = _load_prctl()  # looked up here, not in the forked child (no dlopen between fork and exec)


def _die_with_parent() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM when the emulator dies, even by SIGKILL
    (a chaos test's `kill -9`), so no orphaned Azurite keeps the port and the data directory."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


class ChildProcess:
    """One child server; `start()` returns once `port` listens or raises RuntimeError with its log tail."""

    def __init__(self, name: str, argv: Sequence[str], port: int, log_path: Path) -> None:
        self.name = name
        self.port = port
        self._argv = list(argv)
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as out:
            self._proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" and _PRCTL is not None else None,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self._log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} did not start on port {self.port}: {tail}")
            time.sleep(0.05)
        log.info("%s listens on %s:%d (pid %d)", self.name, HOST, self.port, self._proc.pid)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
