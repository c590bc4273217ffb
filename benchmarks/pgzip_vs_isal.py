"""Benchmark: the spool's parallel gzip (keboola_sync.pgzip) against isal's own threaded gzip.

    .venv/bin/python benchmarks/pgzip_vs_isal.py                      # 300 MB CSV, 3 runs, 1 and 2 threads
    .venv/bin/python benchmarks/pgzip_vs_isal.py --size-mb 100 --runs 1

Both compress the same generated CSV (benchmarks/datagen.py) at level 1 in 4 MiB blocks into a file, each
in a fresh subprocess so its peak RSS is its own. pgzip is driven the way the spool writer drives it
(submit in file order, CRC-32 and writes on the calling thread); `isal.igzip_threaded` owns its own
writer thread. The table shows the best wall-clock time, the process CPU time, the peak RSS, the output
size, whether the output is one gzip member that decompresses to the input, and whether it is
byte-identical for 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BLOCK = 4 << 20
LEVEL = 1


def compress_pgzip(source: Path, target: Path, threads: int) -> None:
    from keboola_sync.pgzip import ParallelGzip

    gzip = ParallelGzip(LEVEL, threads)
    pending: collections.deque[tuple[bytes, Future[bytes]]] = collections.deque()
    with open(source, "rb") as src, open(target, "wb") as out:
        out.write(gzip.header())
        while chunk := src.read(BLOCK):
            pending.append((chunk, gzip.submit(chunk)))
            if len(pending) > threads + 1:
                done, block = pending.popleft()
                gzip.account(done)
                out.write(block.result())
        while pending:
            done, block = pending.popleft()
            gzip.account(done)
            out.write(block.result())
        out.write(gzip.trailer())
    gzip.close()


def compress_isal(source: Path, target: Path, threads: int) -> None:
    from isal import igzip_threaded

    with (
        open(source, "rb") as src,
        igzip_threaded.open(target, "wb", compresslevel=LEVEL, threads=threads, block_size=BLOCK) as out,
    ):
        while chunk := src.read(BLOCK):
            out.write(chunk)


def check_member(source: Path, target: Path) -> bool:
    """One gzip member (nothing after its trailer) whose content is the source, streamed."""
    decompressor = zlib.decompressobj(31)
    expected = hashlib.sha256()
    with open(source, "rb") as handle:
        while block := handle.read(BLOCK):
            expected.update(block)
    got = hashlib.sha256()
    with open(target, "rb") as handle:
        while block := handle.read(BLOCK):
            got.update(decompressor.decompress(block))
            if decompressor.eof:
                break
        rest = decompressor.unused_data + handle.read()
    return decompressor.eof and not rest and got.hexdigest() == expected.hexdigest()


def child(kind: str, threads: int, source: Path, target: Path) -> None:
    start = time.perf_counter()
    (compress_pgzip if kind == "pgzip" else compress_isal)(source, target, threads)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)  # before the hash below, which reads the output
    digest = hashlib.sha256()
    with open(target, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": usage.ru_utime + usage.ru_stime,
                "rss_mb": usage.ru_maxrss / 1024,
                "out": target.stat().st_size,
                "sha": digest.hexdigest(),
            }
        )
    )


def run(kind: str, threads: int, source: Path, target: Path) -> dict[str, float | str]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(threads), str(source), str(target)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), Path(args.child[2]), Path(args.child[3]))
        return 0
    from datagen import write_csv

    work = Path(tempfile.mkdtemp(prefix="keboola-sync-pgzip-"))
    try:
        source = write_csv(work / "orders.csv", args.size_mb << 20).path
        cases = [(kind, threads) for kind in ("pgzip", "isal") for threads in (1, 2)]
        results: dict[tuple[str, int], list[dict[str, float | str]]] = {case: [] for case in cases}
        load = os.getloadavg()[0]
        for _ in range(args.runs):  # interleaved, so a burst of load hits every case alike
            for kind, threads in cases:
                results[(kind, threads)].append(run(kind, threads, source, work / f"{kind}{threads}.gz"))
        size = source.stat().st_size
        print(f"{size / 1e6:.0f} MB CSV, level {LEVEL}, {BLOCK >> 20} MiB blocks, best of {args.runs}, ", end="")
        print(f"{os.cpu_count()} CPUs, load average {load:.1f} -> {os.getloadavg()[0]:.1f}")
        print(f"{'compressor':<22} {'seconds':>8} {'MB/s':>6} {'CPU s':>6} {'RSS MB':>7} {'out MB':>7}  one member")
        for kind, threads in cases:
            best = min(results[(kind, threads)], key=lambda r: float(r["seconds"]))
            seconds = float(best["seconds"])
            member = check_member(source, work / f"{kind}{threads}.gz")
            print(
                f"{kind + f', {threads} thread(s)':<22} {seconds:>8.2f} {size / 1e6 / seconds:>6.0f}"
                f" {float(best['cpu']):>6.2f} {max(float(r['rss_mb']) for r in results[(kind, threads)]):>7.0f}"
                f" {float(best['out']) / 1e6:>7.1f}  {member}"
            )
        for kind in ("pgzip", "isal"):
            same = results[(kind, 1)][0]["sha"] == results[(kind, 2)][0]["sha"]
            print(f"{kind}: byte-identical for 1 and 2 threads: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
