"""What every benchmark needs: the emulator and the daemon as real subprocesses (the test suite's own
helpers, so benchmarks and tests start them the same way), a production-like daemon config, process
sampling with psutil, log-line waits, and a description of the machine.

Why production defaults and not the tests' FAST_CONFIG: the tests shrink every interval to keep the
suite fast; a benchmark must measure what a user gets (stable_seconds 2, rescans every 300 s, INFO logs).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from support.daemon import Daemon  # noqa: E402  (tests/ is not a package on the default path)
from support.emulator import Emulator, start_emulator, wait_for  # noqa: E402

__all__ = [
    "PROVIDERS",
    "Daemon",
    "Emulator",
    "LogTail",
    "RssSampler",
    "bench_daemon",
    "emulator",
    "machine",
    "wait_for",
]

# config.yaml.example's defaults for everything that changes timing; paths are filled by the Daemon helper.
PRODUCTION: dict[str, dict[str, Any]] = {
    "keboola": {
        "request_timeout_seconds": 60,
        "job_timeout_seconds": 3600,
        "job_poll_max_seconds": 5,
        # Off: the benchmarks measure what the daemon itself costs. The default (50 requests/s, about 7
        # small files/s) is a policy for shared projects, not a limit of the daemon; docs/benchmarks.md.
        "max_requests_per_second": 0,
    },
    "watch": {"stable_seconds": 2, "rescan_seconds": 300, "polling_interval_seconds": 2, "observer": "auto"},
    "upload": {
        "gzip_threshold_mb": 50,
        "gzip_level": 1,
        "concurrency": 4,
        "multipart_threshold_mb": 64,
        "multipart_chunk_mb": 16,
        "multipart_concurrency": 4,
    },
    "retry": {"max_attempts": 8, "initial_backoff_seconds": 1, "max_backoff_seconds": 60, "failed_retry_seconds": 300},
    "daemon": {
        "shutdown_timeout_seconds": 30,
        "heartbeat_seconds": 10,
        "health_max_age_seconds": 60,
        "keboola_max_silence_seconds": 900,
    },
    "logging": {"level": "INFO", "console": False, "progress_seconds": 5},
}


PROVIDERS = ("aws", "azure", "gcp")


@contextmanager
def emulator(*extra_args: str, provider: str = "aws") -> Iterator[Emulator]:
    """A fresh emulator for one benchmark (no state shared between benchmarks), its file storage on
    `provider`'s cloud (`--file-storage`: moto's S3, Azurite or gcp-storage-emulator, each on disk)."""
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {PROVIDERS}, got {provider!r}")
    # A gcp run leaves STORAGE_EMULATOR_HOST in os.environ (Emulator.client() sets it); no later run
    # on another provider should inherit a variable pointing at a stopped emulator.
    os.environ.pop("STORAGE_EMULATOR_HOST", None)
    storage = [] if provider == "aws" else ["--file-storage", provider]
    emu = start_emulator(extra_args=[*storage, *extra_args])
    try:
        yield emu
    finally:
        emu.close()


def bench_daemon(tmp: Path, emu: Emulator, overrides: dict[str, dict[str, Any]] | None = None) -> Daemon:
    """A daemon with production timings (PRODUCTION) plus `overrides`, its folders under `tmp`."""
    config: dict[str, dict[str, Any]] = {k: dict(v) for k, v in PRODUCTION.items()}
    for section, values in (overrides or {}).items():
        config.setdefault(section, {}).update(values)
    return Daemon(tmp, emu, config)


class RssSampler:
    """Peak RSS of a process plus all its children, sampled every `interval` seconds in a thread.
    Children are included because a daemon could hide work (and memory) in a helper process."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
                total = 0
                for proc in procs:
                    with suppress(psutil.Error):
                        total += proc.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, total)
            self.samples += 1
            self._stop.wait(self._interval)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class LogTail:
    """Reads a growing log file incrementally, so waiting for line N+1 costs nothing per old line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pos = 0
        self._partial = ""
        self.lines: list[str] = []

    def poll(self) -> list[str]:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                handle.seek(self._pos)
                data = handle.read()
                self._pos = handle.tell()
        except FileNotFoundError:
            return []
        text = self._partial + data
        new = text.split("\n")
        self._partial = new.pop()
        self.lines.extend(new)
        return new

    def wait(
        self, predicate: Callable[[str], bool], timeout: float, what: str, alive: Callable[[], bool] | None = None
    ) -> str:
        """The first new line matching `predicate` (polled every 10 ms; AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.poll():
                if predicate(line):
                    return line
            if alive is not None and not alive():
                raise AssertionError(f"the daemon exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            threading.Event().wait(0.01)


LOAD_LINE = re.compile(
    r"(created|loaded) (\S+) -> (\S+): (\S+) rows, ([\d.]+) MB(?:, gzip ([\d.]+) MB)?, "
    r"([\d.]+) s, ([\d.]+) MB/s"
)


@dataclass(frozen=True)
class LoadLine:
    """The daemon's final line for one load (issue 7: rows, bytes before/after compression, s, MB/s)."""

    status: str
    rel_path: str
    table_id: str
    rows: int | None
    mb: float
    gzip_mb: float | None
    seconds: float
    mb_per_s: float


def parse_load_line(line: str) -> LoadLine | None:
    m = LOAD_LINE.search(line)
    if not m:
        return None
    rows = int(m.group(4)) if m.group(4).isdigit() else None
    return LoadLine(
        m.group(1),
        m.group(2),
        m.group(3),
        rows,
        float(m.group(5)),
        float(m.group(6)) if m.group(6) else None,
        float(m.group(7)),
        float(m.group(8)),
    )


def jobs_of(emu: Emulator, page: int = 1000) -> list[dict[str, Any]]:
    """Every job, newest first: GET /v2/storage/jobs through the real SDK's endpoint, paged with the
    API's limit/offset (Jobs.list() itself sends no limit, so it sees only the first page)."""
    jobs = emu.client().jobs
    out: list[dict[str, Any]] = []
    while True:
        batch = jobs._get(jobs.base_url, params={"limit": page, "offset": len(out)})
        out.extend(batch or [])
        if not batch or len(batch) < page:
            return out


def job_seconds(job: dict[str, Any]) -> float | None:
    """Duration of a job from its startTime/endTime (1 s resolution: the API's timestamp format)."""
    from datetime import datetime

    fmt = "%Y-%m-%dT%H:%M:%S%z"
    try:
        return (datetime.strptime(job["endTime"], fmt) - datetime.strptime(job["startTime"], fmt)).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare a table with their own run."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "cpu": cpu or "unknown",
        "cores": psutil.cpu_count(logical=True),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load_at_start": [round(x, 2) for x in load],
        "git": _git_head(),
    }


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        # The daemon runs from the working tree: say when src/ differs from the commit.
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        return out.stdout.strip() + (" (src/ modified)" if dirty else "")
    except OSError:
        return "unknown"


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
