"""`upload.gzip_level: auto`: measure this machine once, measure the uplink on every big upload, and
let gziplevel.choose_level pick each load's level.

Why measured here and not taken from a table: the CPU cost of a level differs by machine several times
over, and the ratio by data. Why once per process, on the first gzipped file's first 512 KiB: it costs
about 0.1 s of CPU (every level once), which a file above the gzip threshold repays, and a shared
machine's load changes its wall time, not its CPU time, so thread CPU time is what is measured.
The uplink is measured by the spool's reader (spool.SpoolReader.uploaded): bytes over the time the
uploader was sending rather than waiting for the compressor.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time

from isal import isal_zlib

from .gziplevel import MB, CpuShare, LevelCost, Machine, UplinkEstimate, choose_level
from .pgzip import MAX_GZIP_THREADS, deflate_block

log = logging.getLogger("keboola_sync.spool")

AUTO = "auto"
SAMPLE_BYTES = 512 << 10  # each level's ratio within a few percent of the whole file's; ~0.1 s in total
# Level 8 is left out: on CSV it sends the bytes of 9 (benchmarks/gzip_levels.py: 48.7 MB both) at about
# the same CPU, and measuring it would add a sixth of the calibration's cost.
LEVELS = (0, 1, 2, 3, 4, 5, 6, 7, 9)
# A small file (gzip_threshold_mb: 0 gzips every file) is no sample: its timings are noise and its ratio
# says nothing about the next big file. Until a big one comes, the level stays where it is.
MIN_SAMPLE_BYTES = 256 << 10
UNMEASURED = Machine(cores=1, base_cpu_per_mb=0.0, levels=())


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def measure_machine(sample: bytes, threads: int) -> Machine:
    """Every level's ratio and CPU cost on `sample`, and the pass's own CPU per MB (hash and CRC)."""
    sample = sample[:SAMPLE_BYTES]
    mb = max(len(sample), 1) / MB
    costs = []
    for level in LEVELS:
        started = time.thread_time()
        size = len(deflate_block(sample, b"", level))
        costs.append(LevelCost(level, len(sample) / max(size, 1), (time.thread_time() - started) / mb))
    started = time.thread_time()
    hashlib.sha256(sample).digest()
    isal_zlib.crc32(sample)
    base = (time.thread_time() - started) / mb
    workers = threads or min(usable_cpus(), MAX_GZIP_THREADS)
    cores = min(usable_cpus(), workers + 1)  # the pass's own thread beside the gzip workers
    return Machine(cores=cores, base_cpu_per_mb=base, levels=tuple(costs))


class AutoLevel:
    """The process's automatic gzip level: the machine measured once, the uplink kept up to date, the
    level of the last load (so the choice has hysteresis) and the gzip passes running now (two passes at
    once share the cores)."""

    def __init__(self, machine: Machine | None = None) -> None:
        """`machine`: already measured (a test's table); by default the first big pass measures it."""
        self.uplink = UplinkEstimate()
        self.cpu_share = CpuShare()
        self._machine = machine
        self._level: int | None = None
        self._passes = 0
        self._lock = threading.Lock()

    def begin(self, sample: bytes, threads: int) -> int:
        """The level for a gzip pass whose first chunk is `sample`; call `end` when the pass ends."""
        with self._lock:
            if self._machine is None and len(sample) >= MIN_SAMPLE_BYTES:
                wall, cpu = time.perf_counter(), time.thread_time()
                self._machine = measure_machine(sample, threads)
                self.cpu_share.observe(time.thread_time() - cpu, time.perf_counter() - wall)
                measured = len(sample[:SAMPLE_BYTES])
                log.debug("gzip levels measured on the first %d bytes: %s", measured, _show(self._machine))
            self._passes += 1
            machine = self._machine or UNMEASURED
            cores = machine.cores * self.cpu_share.value() / self._passes
            share = Machine(cores, machine.base_cpu_per_mb, machine.levels)
            choice = choose_level(share, self.uplink.mb_per_second(), self._level)
            self._level = choice.level
        log.debug("gzip level %d (auto): %s", choice.level, choice.reason)
        return choice.level

    def end(self, cpu_seconds: float = 0.0, wall_seconds: float = 0.0) -> None:
        """The pass is over; its workers' CPU and wall time while compressing say how much of a core
        they got (see CpuShare)."""
        self.cpu_share.observe(cpu_seconds, wall_seconds)
        with self._lock:
            self._passes = max(0, self._passes - 1)


def _show(machine: Machine) -> str:
    levels = ", ".join(f"{c.level}: x{c.ratio:.2f} {c.cpu_per_mb * 1000:.1f} ms/MB" for c in machine.levels)
    return f"{machine.cores:g} core(s), pass {machine.base_cpu_per_mb * 1000:.1f} ms/MB; {levels}"


AUTO_LEVEL = AutoLevel()  # one per process: one uplink, one machine
