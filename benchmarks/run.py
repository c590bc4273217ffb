"""The benchmarks of issues 7 and 18 in one command: prints a table and the machine, writes JSON.

    .venv/bin/python benchmarks/run.py            # full sizes (1 GB, 5 GB, 10,000 files, ...)
    .venv/bin/python benchmarks/run.py --quick    # scaled down: a few minutes
    .venv/bin/python benchmarks/run.py --only 2 --only 4
    .venv/bin/python benchmarks/run.py --only 8 --baseline-src OLD/src   # uplink grid, also "before"
    .venv/bin/python benchmarks/run.py --quick --only 1 --provider gcp   # rows 1-3 on one file storage

Data is generated into a temporary folder outside the repository (or --work DIR) and removed at the
end unless --keep. Results go to benchmarks/results/<utc-time>.json (gitignored).
What each number means and what limits it: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gzip_levels
import large_files
import small_files
import startup
import uplink
from harness import PROVIDERS, REPO, machine
from result import Result, fmt


@dataclass(frozen=True)
class Sizes:
    big_mb: int  # benchmarks 1 and 2
    huge_mb: int  # benchmark 3
    latency_samples: int  # benchmark 4
    unchanged_files: int  # benchmark 5 (in 100 folders)
    idle_seconds: float  # benchmark 5
    dropped_files: int  # benchmark 6
    grid_mb: tuple[int, int, int] = (30, 300, 1000)  # benchmarks 7-9 (each at 20/100/1000 Mbit/s) and 10


FULL = Sizes(big_mb=1000, huge_mb=5000, latency_samples=30, unchanged_files=10_000, idle_seconds=20, dropped_files=1000)
QUICK = Sizes(big_mb=100, huge_mb=500, latency_samples=10, unchanged_files=1000, idle_seconds=10, dropped_files=300)
QUICK = replace(QUICK, grid_mb=(3, 30, 100))  # the uplink grid scaled down: a quick run stays a few minutes


def _plan(
    sizes: Sizes, work: Path, baseline_src: Path | None = None, providers: tuple[str, ...] = PROVIDERS
) -> dict[int, Callable[[], Result | list[Result]]]:
    cache: dict[int, large_files.Generated] = {}
    grid_cache: dict[int, list[uplink.Cell]] = {}

    def big(mb: int) -> large_files.Generated:
        if mb not in cache:
            cache[mb] = large_files.generate(work, mb, f"orders{mb}")
        return cache[mb]

    def grid(mb: int) -> list[uplink.Cell]:
        if mb not in grid_cache:
            grid_cache[mb] = uplink.measure(work, big(mb), mb, baseline_src)
        return grid_cache[mb]

    gzipped_mb = uplink.gzipped_size_mb(sizes.grid_mb)  # benchmarks 10 and 12: a file the daemon gzips
    return {
        # rows 1-3 once per file storage (issue 14): "1 aws", "1 azure", "1 gcp"
        1: lambda: large_files.per_provider(
            1, providers, lambda p: large_files.bench_capped(work, big(sizes.big_mb), provider=p)
        ),
        2: lambda: large_files.per_provider(
            2, providers, lambda p: large_files.bench_uncapped(work, big(sizes.big_mb), p)
        ),
        3: lambda: large_files.per_provider(
            3, providers, lambda p: large_files.bench_rss(work, big(sizes.huge_mb), provider=p)
        ),
        4: lambda: small_files.bench_latency(work, sizes.latency_samples),
        5: lambda: small_files.bench_unchanged(work, sizes.unchanged_files, sizes.idle_seconds),
        6: lambda: small_files.bench_dropped(work, sizes.dropped_files),
        7: lambda: uplink.grid_rows(7, grid(sizes.grid_mb[0])),
        8: lambda: uplink.grid_rows(8, grid(sizes.grid_mb[1])),
        9: lambda: uplink.grid_rows(9, grid(sizes.grid_mb[2])),
        10: lambda: uplink.level_rows(10, grid(gzipped_mb)),
        11: lambda: startup.bench_startup(work, number=11),
        12: lambda: gzip_levels.rows(work, big(gzipped_mb).path, 12),
    }


def _table(results: list[Result]) -> str:
    head = ("#", "benchmark", "ours", "baseline", "ratio", "target", "result")
    rows = []
    for r in results:
        base = f"{fmt(r.baseline, r.unit)} ({r.baseline_name})" if r.baseline is not None else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        rows.append((r.label, r.name, fmt(r.ours, r.unit), base, ratio, r.target, r.verdict))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    out = [line, "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="scaled-down sizes (a few minutes in total)")
    p.add_argument(
        "--only", type=int, action="append", choices=range(1, 13), metavar="N", help="run only benchmark N (repeatable)"
    )
    p.add_argument(
        "--provider",
        choices=(*PROVIDERS, "all"),
        default="all",
        help="the file storage rows 1-3 run on (emulator --file-storage; default: all three in turn)",
    )
    p.add_argument("--work", type=Path, default=None, help="where to generate data (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the generated data")
    p.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="benchmarks 7-9 also run a daemon from DIR (an older checkout's src/) for 'no slower than before'",
    )
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    work = args.work or Path(tempfile.mkdtemp(prefix="kbsync-issue7-run-"))
    work.mkdir(parents=True, exist_ok=True)
    if REPO in work.resolve().parents or work.resolve() == REPO:
        p.error("--work must be outside the repository (generated data is never committed)")
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM, Python {info['python']}, "
        f"{info['os']}, load {info['load_at_start']}, commit {info['git']}"
    )
    print(f"mode: {'quick' if args.quick else 'full'} {asdict(sizes)}; data in {work}", flush=True)
    providers = PROVIDERS if args.provider == "all" else (args.provider,)
    plan = _plan(sizes, work, args.baseline_src, providers)
    results: list[Result] = []
    started = time.monotonic()
    try:
        for number in sorted(set(args.only or plan)):
            t0 = time.monotonic()
            print(f"[{number}] running...", flush=True)
            try:
                outcome = plan[number]()
                batch = outcome if isinstance(outcome, list) else [outcome]
            except Exception as exc:  # one broken benchmark must not hide the others
                traceback.print_exc()
                batch = [
                    Result(
                        number,
                        f"benchmark {number}",
                        "",
                        None,
                        None,
                        "",
                        None,
                        "",
                        None,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                ]
            for result in batch:
                results.append(result)
                print(
                    f"[{result.label}] {result.verdict} after {time.monotonic() - t0:.0f} s: {result.name}: "
                    f"ours {fmt(result.ours, result.unit)}"
                    + "".join(f"\n    - {n}" for n in result.notes)
                    + (f"\n    ! {result.error}" if result.error else ""),
                    flush=True,
                )
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(_table(results))
    print(
        f"\ntotal {time.monotonic() - started:.0f} s; command: python benchmarks/run.py"
        + (" --quick" if args.quick else "")
        + "".join(f" --only {n}" for n in (args.only or []))
        + (f" --baseline-src {args.baseline_src}" if args.baseline_src else "")
        + ("" if args.provider == "all" else f" --provider {args.provider}")
    )
    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = out_dir / f"{stamp}{'-quick' if args.quick else ''}.json"
    out.write_text(
        json.dumps(
            {
                "machine": info,
                "mode": "quick" if args.quick else "full",
                "sizes": asdict(sizes),
                "results": [asdict(r) | {"verdict": r.verdict} for r in results],
            },
            indent=2,
            default=str,
        )
    )
    print(f"JSON: {out}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
