"""`sync --once` start-up (issue 18.3): process start -> the first byte read of the first file.

    .venv/bin/python benchmarks/startup.py                      # 5 runs of the working tree's src/
    .venv/bin/python benchmarks/startup.py --runs 9
    .venv/bin/python benchmarks/startup.py --src /tmp/old/src   # A/B: the working tree, then /tmp/old/src,
                                                                # interleaved run by run, one emulator

Each run is `python -m keboola_sync sync --once` (production timings: stable_seconds 2, INFO logs) on a
fresh folder holding one small CSV whose mtime is a minute old, with a fresh ledger, so every run does the
same work: token check, a new bucket, a new table. One emulator serves all runs (its start is not timed).

The marker needs no help from the daemon, so old and new code are measured the same way: the benchmark
watches the CSV with Linux inotify, and the kernel reports the first `read()` of the file (IN_ACCESS) by
any process. The daemon is the only reader, and a rescan only stats, so the first IN_ACCESS is the first
byte of the streaming pass. Both ends of the interval are this process's monotonic clock: taken just
before `Popen` (what a user typing the command sees) and when the event arrives. Total wall time runs
from the same start to the process's exit. At the first read the process's CPU time (every thread) is
sampled too: on a busy machine it varies far less than the wall time.

Python runs as from an installed package, with bytecode: a first run per source tree, not counted, writes
it into a cache of the benchmark's own (PYTHONPYCACHEPREFIX), whatever PYTHONDONTWRITEBYTECODE says.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import select
import statistics
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datagen import small_csv
from harness import REPO, Emulator, bench_daemon, emulator, machine
from result import Result

IN_ACCESS = 0x00000001  # <sys/inotify.h>: a read() of the file
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then `len` bytes of name)
TARGET_SECONDS = 1.0  # issue 18.3
CSV_BYTES = 20_000


class FirstRead:
    """The monotonic time of the first read() of one file, by any process (inotify IN_ACCESS)."""

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self._fd < 0 or libc.inotify_add_watch(self._fd, os.fsencode(path), IN_ACCESS) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {path}")
        self.at: float | None = None
        self.pid: int | None = None  # the reader, once started: its CPU time is sampled at the first read
        self.cpu: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._wait, name="first-read", daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            now = time.monotonic()
            data = os.read(self._fd, 4096)
            if any(mask & IN_ACCESS for mask in _masks(data)):
                self.at = now
                self.cpu = _cpu_seconds(self.pid)
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._fd)


def _masks(data: bytes) -> list[int]:
    """The mask of every event in one read() of an inotify descriptor."""
    masks, offset = [], 0
    while offset + _EVENT.size <= len(data):
        _, mask, _, name_len = _EVENT.unpack_from(data, offset)
        masks.append(mask)
        offset += _EVENT.size + name_len
    return masks


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (every thread), or None."""
    if pid is None:
        return None
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


@dataclass(frozen=True)
class Run:
    src: str  # "" = the working tree
    first_byte: float  # seconds from Popen to the first read of the CSV
    total: float  # seconds from Popen to exit
    cpu_first_byte: float | None  # CPU seconds the process had used by its first read (all its threads)


def one_run(work: Path, emu: Emulator, name: str, src: Path | None) -> Run:
    """One `sync --once` of a folder `name` holding one small CSV, with a ledger of its own."""
    daemon = bench_daemon(work / name, emu)
    csv = daemon.watch / name / "orders.csv"
    csv.parent.mkdir(parents=True)
    csv.write_bytes(small_csv(len(name), CSV_BYTES))
    old = time.time() - 60  # saved a minute ago: the settle rule must not make it wait stable_seconds
    os.utime(csv, (old, old))
    env = daemon.env()
    # As installed (pip compiles every module): bytecode is written and reused, in a cache of the
    # benchmark's own so neither the source trees nor the interpreter's folders are written to.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    if src is not None:
        env["PYTHONPATH"] = str(src)  # before site-packages, so this tree's keboola_sync is imported
    watch = FirstRead(csv)
    try:
        started = time.monotonic()
        proc = subprocess.Popen(
            daemon.command("sync", "--once"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        watch.pid = proc.pid
        _, err = proc.communicate(timeout=120)
        ended = time.monotonic()
    finally:
        watch.close()
    if proc.returncode != 0 or watch.at is None:
        raise RuntimeError(
            f"sync --once exited {proc.returncode} (first read seen: {watch.at is not None}): "
            f"{err[-1500:]} {daemon.log()[-1500:]}"
        )
    return Run(str(src or ""), watch.at - started, ended - started, watch.cpu)


def measure(work: Path, runs: int, sources: list[Path | None]) -> dict[str, list[Run]]:
    """`runs` runs per source tree, interleaved (A B A B ...) against one emulator, so a busy moment of a
    shared machine hits every tree alike."""
    out: dict[str, list[Run]] = {str(s or ""): [] for s in sources}
    with emulator() as emu:
        for k, src in enumerate(sources):
            one_run(work, emu, f"warmup{k}", src)  # not counted: it writes the bytecode cache
        for i in range(runs):
            for k, src in enumerate(sources):
                run = one_run(work, emu, f"start{i}t{k}", src)
                out[run.src].append(run)
    return out


def bench_startup(work: Path, runs: int = 5, *, number: int = 0) -> list[Result]:
    """The benchmark-table rows: median start -> first byte (target < 1 s) and median total wall time."""
    got = measure(work, runs, [None])[""]
    first = [r.first_byte for r in got]
    total = [r.total for r in got]
    cpu = [r.cpu_first_byte for r in got if r.cpu_first_byte is not None]
    median_first = statistics.median(first)
    details = {"runs": runs, "first_byte_s": first, "total_s": total, "cpu_to_first_byte_s": cpu}
    details["csv_bytes"] = CSV_BYTES
    return [
        Result(
            number,
            "sync --once: start -> first byte read",
            "s",
            median_first,
            None,
            "",
            None,
            f"< {TARGET_SECONDS:.0f} s",
            median_first < TARGET_SECONDS,
            details,
            [
                f"median of {runs}; min {min(first):.2f} s, max {max(first):.2f} s; CPU used by then "
                f"{statistics.median(cpu) if cpu else float('nan'):.2f} s (all threads)"
            ],
        ),
        Result(
            number,
            "sync --once: one small CSV, start -> exit",
            "s",
            statistics.median(total),
            None,
            "",
            None,
            "-",
            None,
            details,
            [f"median of {runs}; min {min(total):.2f} s, max {max(total):.2f} s (bucket, table, upload, job)"],
        ),
    ]


def _say(label: str, runs: list[Run]) -> None:
    first = [r.first_byte for r in runs]
    total = [r.total for r in runs]
    cpu = [r.cpu_first_byte for r in runs if r.cpu_first_byte is not None]
    print(
        f"{label}: {len(runs)} runs\n"
        f"    start -> first byte: median {statistics.median(first):.3f} s (min {min(first):.3f}, "
        f"max {max(first):.3f}); CPU used by then: median {statistics.median(cpu) if cpu else float('nan'):.3f} s\n"
        f"    start -> exit:       median {statistics.median(total):.3f} s (min {min(total):.3f}, max {max(total):.3f})"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs per source tree (default 5)")
    p.add_argument(
        "--src",
        type=Path,
        action="append",
        default=[],
        help="also measure this src/ folder (another checkout's keboola_sync), interleaved with the working tree",
    )
    args = p.parse_args(argv)
    if not sys.platform.startswith("linux"):
        p.error("the first-read marker uses Linux inotify")
    import tempfile

    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_at_start']}, commit {info['git']}")
    with tempfile.TemporaryDirectory(prefix="kbsync-startup-") as tmp:
        results = measure(Path(tmp), args.runs, [None, *args.src])
    for label, runs in results.items():
        _say(label or f"{REPO / 'src'} (working tree)", runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
