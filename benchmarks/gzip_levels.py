"""Benchmark: bytes and time per gzip level on the benchmark file, and what each level costs at an uplink.

    .venv/bin/python benchmarks/gzip_levels.py                   # 300 MB CSV, levels 0-9, 20/100/1000 Mbit/s
    .venv/bin/python benchmarks/gzip_levels.py --size-mb 100 --libraries   # + zlib-ng and libdeflate, if installed

Per level, the daemon's own pass (`csvfile.inspect_and_spool`: CSV check, SHA-256, and the spool's parallel
gzip, `pgzip.ParallelGzip`, on every core up to 4) runs over the generated CSV (benchmarks/datagen.py):
compressed bytes, ratio, the pass's wall time and the process CPU seconds it used. The predicted time from
"saved" to "uploaded" at an uplink of U is max(pass time, compressed bytes / U): the upload overlaps the
pass, so the slower of the two sets the pace (what `gziplevel.choose_level` maximises). The level `auto`
picks (the daemon's own calibration on the file's first chunk, then `gziplevel.choose_level`) is printed
per uplink. Levels run in one sitting, in order, so a change in the machine's load hits neighbours alike;
read the ratios between rows, and the CPU seconds, which the load changes far less than the wall time.

`--libraries` adds a compress-only comparison (one thread, 4 MiB blocks primed with the previous 32 KiB,
as the spool does) of the daemon's compressors against zlib-ng (`zlib-ng` on PyPI) and libdeflate
(`deflate` on PyPI; it cannot prime a block or end one on a byte boundary, so its blocks are separate
gzip members, a format the spool does not write: shown only for its bytes and CPU). Neither is a
dependency of the daemon; install them into the venv to see their rows.

`rows()` returns the same numbers as result.Result rows for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datagen import write_csv
from isal import isal_zlib
from result import Result

MB = 1_000_000
BLOCK = 4 << 20
WINDOW = 32 << 10
UPLINKS_MBIT = (20, 100, 1000)
LEVELS = tuple(range(10))


@dataclass(frozen=True)
class LevelRun:
    """One level over the benchmark file."""

    library: str
    level: int
    source_bytes: int
    compressed_bytes: int
    seconds: float  # wall time of the pass (or of the compress-only run)
    cpu_seconds: float  # process CPU time used meanwhile (every thread)

    @property
    def ratio(self) -> float:
        return self.source_bytes / max(self.compressed_bytes, 1)

    def predicted_seconds(self, uplink_mbit: float) -> float:
        """Saved -> uploaded when the upload overlaps the pass: the slower of the two sets the pace."""
        transfer = self.compressed_bytes / (uplink_mbit * MB / 8)
        return max(self.seconds, transfer)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def daemon_pass(source: Path, spool_dir: Path, level: int) -> LevelRun:
    """The daemon's own pass over `source` at `level`, gzipping whatever the size (threshold 0)."""
    from keboola_sync.csvfile import inspect_and_spool

    cpu, start = _cpu(), time.perf_counter()
    info, spool = inspect_and_spool(
        source,
        spool_dir=spool_dir,
        gzip_threshold_bytes=0,
        gzip_level=level,
        sniff_bytes=65536,
        delimiters=",;\t|",
        display_path=source.name,
    )
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    spool.discard()
    return LevelRun("daemon", level, info.size, spool.size, seconds, cpu)


def measure_levels(source: Path, spool_dir: Path, levels: tuple[int, ...] = LEVELS) -> list[LevelRun]:
    """The daemon's pass at every level, in order, once (the first run warms the page cache)."""
    daemon_pass(source, spool_dir, 1)
    return [daemon_pass(source, spool_dir, level) for level in levels]


# -- compress-only comparison of libraries -----------------------------------------------------------


def _primed(module: object, level: int) -> Callable[[bytes, bytes], bytes]:
    """A block compressor the way pgzip.deflate_block works, on a zlib-compatible module."""

    def compress(chunk: bytes, dictionary: bytes) -> bytes:
        make = module.compressobj  # type: ignore[attr-defined]
        obj = make(level, 8, -15, 9, 0, dictionary) if dictionary else make(level, 8, -15)
        return bytes(obj.compress(chunk) + obj.flush(2))  # 2: Z_SYNC_FLUSH

    return compress


def _compressors() -> dict[str, tuple[tuple[int, ...], Callable[[int], Callable[[bytes, bytes], bytes]]]]:
    """Library -> (its levels, level -> block compressor); only the libraries that are installed."""
    found: dict[str, tuple[tuple[int, ...], Callable[[int], Callable[[bytes, bytes], bytes]]]] = {
        "isal": ((0, 1, 2, 3), lambda level: _primed(isal_zlib, level)),
        "zlib": (tuple(range(1, 10)), lambda level: _primed(zlib, level)),
    }
    try:
        from zlib_ng import zlib_ng

        found["zlib-ng"] = (tuple(range(1, 10)), lambda level: _primed(zlib_ng, level))
    except ImportError:
        pass
    try:
        import deflate

        def libdeflate(level: int) -> Callable[[bytes, bytes], bytes]:
            return lambda chunk, _dictionary: bytes(deflate.gzip_compress(chunk, level))

        found["libdeflate"] = ((1, 3, 6, 9), libdeflate)  # 12: 60+ CPU s for 300 MB
    except ImportError:
        pass
    return found


def compress_only(source: Path, library: str, level: int, compress: Callable[[bytes, bytes], bytes]) -> LevelRun:
    """One thread, 4 MiB blocks: CPU seconds per level, free of the pass and of thread scheduling."""
    size = out = 0
    previous = b""
    cpu, start = _cpu(), time.perf_counter()
    with open(source, "rb") as handle:
        while chunk := handle.read(BLOCK):
            out += len(compress(chunk, previous))
            previous = chunk[-WINDOW:]
            size += len(chunk)
    return LevelRun(library, level, size, out, time.perf_counter() - start, _cpu() - cpu)


def measure_libraries(source: Path) -> list[LevelRun]:
    runs = []
    for library, (levels, make) in _compressors().items():
        runs += [compress_only(source, library, level, make(level)) for level in levels]
    return runs


# -- output -------------------------------------------------------------------------------------------


def table(runs: list[LevelRun], *, predict: bool) -> str:
    head = f"{'library':<10} {'level':>5} {'out MB':>8} {'ratio':>6} {'s':>7} {'MB/s':>6} {'CPU s':>7}"
    if predict:
        head += "".join(f" {f'@{u} Mbit/s':>12}" for u in UPLINKS_MBIT)
    lines = [head]
    for r in runs:
        line = (
            f"{r.library:<10} {r.level:>5} {r.compressed_bytes / MB:>8.1f} {r.ratio:>6.2f} {r.seconds:>7.2f}"
            f" {r.source_bytes / MB / max(r.seconds, 1e-9):>6.0f} {r.cpu_seconds:>7.2f}"
        )
        if predict:
            line += "".join(f" {r.predicted_seconds(u):>10.1f} s" for u in UPLINKS_MBIT)
        lines.append(line)
    return "\n".join(lines)


def best_level(runs: list[LevelRun], uplink_mbit: float) -> LevelRun:
    """The level with the shortest predicted saved -> uploaded time (fewer bytes on a tie)."""
    return min(runs, key=lambda r: (round(r.predicted_seconds(uplink_mbit), 1), r.compressed_bytes))


def cpu_share(runs: list[LevelRun]) -> float:
    """The share of the cores this run really had, from the passes the compressor bounds (zlib's levels):
    their CPU seconds over wall seconds times cores. What the daemon's CpuShare sees on a busy machine."""
    bound = [r for r in runs if r.level >= 4] or runs
    cores = os.cpu_count() or 1
    return min(1.0, sum(r.cpu_seconds for r in bound) / max(sum(r.seconds for r in bound) * cores, 1e-9))


def auto_choice(source: Path, uplink_mbit: float, share: float = 1.0) -> tuple[int, str]:
    """The level `upload.gzip_level: auto` picks for this file at this uplink: the daemon's own calibration
    on the file's first chunk, the cores scaled by `share` (1.0: an idle machine), then
    gziplevel.choose_level (no current level: no hysteresis)."""
    from keboola_sync.gzipauto import measure_machine
    from keboola_sync.gziplevel import Machine, choose_level

    with open(source, "rb") as handle:
        machine = measure_machine(handle.read(BLOCK), threads=0)
    machine = Machine(machine.cores * share, machine.base_cpu_per_mb, machine.levels)
    choice = choose_level(machine, uplink_mbit / 8)
    return choice.level, choice.reason


def rows(work: Path, source: Path, number: int) -> list[Result]:
    """One result.Result per uplink: the best level's predicted saved -> uploaded time against level 1
    (the old default), with every level's numbers in `details`. Measured, not judged (passed=None)."""
    spool_dir = work / "gzip-levels-spool"
    runs = measure_levels(source, spool_dir)
    by_level = {r.level: r for r in runs}
    results = []
    for uplink in UPLINKS_MBIT:
        best, old = best_level(runs, uplink), by_level[1]
        ours, base = best.predicted_seconds(uplink), old.predicted_seconds(uplink)
        results.append(
            Result(
                number,
                f"gzip level for {uplink} Mbit/s ({source.stat().st_size / MB:.0f} MB, predicted)",
                "s",
                ours,
                base,
                "level 1",
                ours / base if base else None,
                "best level <= level 1",
                None,
                details={
                    "best_level": best.level,
                    "auto_level": auto_choice(source, uplink)[0],
                    "auto_level_at_this_load": auto_choice(source, uplink, cpu_share(runs))[0],
                    "levels": {
                        r.level: {
                            "bytes": r.compressed_bytes,
                            "ratio": round(r.ratio, 3),
                            "pass_seconds": round(r.seconds, 3),
                            "cpu_seconds": round(r.cpu_seconds, 3),
                            "predicted_seconds": round(r.predicted_seconds(uplink), 2),
                        }
                        for r in runs
                    },
                },
            )
        )
    shutil.rmtree(spool_dir, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--libraries", action="store_true", help="add the compress-only library comparison")
    parser.add_argument("--work", type=Path, help="where to generate the file (default: a temporary folder)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="keboola-sync-gzip-levels-", dir=args.work))
    try:
        source = write_csv(work / "orders.csv", args.size_mb * MB).path
        load = os.getloadavg()[0]
        runs = measure_levels(source, work / "spool")
        by_level = {r.level: r for r in runs}
        print(
            f"{source.stat().st_size / MB:.0f} MB CSV, the daemon's pass per level, {os.cpu_count()} CPUs,"
            f" load average {load:.1f} -> {os.getloadavg()[0]:.1f}"
        )
        print("predicted saved -> uploaded = max(pass seconds, compressed bytes / uplink)")
        print(table(runs, predict=True))
        share = cpu_share(runs)
        for uplink in UPLINKS_MBIT:
            best = best_level(runs, uplink)
            print(f"best at {uplink} Mbit/s: level {best.level} ({best.predicted_seconds(uplink):.1f} s)")
            for label, fraction in (("idle machine", 1.0), (f"this run's CPU share {share:.2f}", share)):
                level, reason = auto_choice(source, uplink, fraction)
                seconds = by_level[level].predicted_seconds(uplink)
                print(f"  auto, {label}: level {level} ({seconds:.1f} s): {reason}")
        if args.libraries:
            print("\ncompress only, one thread, 4 MiB blocks (no CSV check, no hash):")
            print(table(measure_libraries(source), predict=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
