"""Issue 4's full-strength chaos run, too slow for the test suite (3 s of latency on every request):

    .venv/bin/python scripts/chaos_soak.py [--files 50] [--latency-ms 3000] [--rounds 2]

50 CSV files, then every file rewritten once more while Keboola (the emulator) answers 20 % of requests
with 5xx, 5 % with 429 + Retry-After, drops 5 % of connections, adds 3 s to every request and fails 10 %
of jobs. Passes when every table ends up equal to its file's final content, the daemon never died, and no
table got more loads than its file had versions. Prints a small table; exit 1 on any failure.
(The suite runs the same scenario with 100 ms latency: tests/e2e/test_reliability.py.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.daemon import Daemon, csv_rows, table_rows
from support.emulator import start_emulator, wait_for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2, help="versions written per file")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        emulator = start_emulator()
        try:
            daemon = Daemon(
                Path(tmp),
                emulator,
                {
                    "keboola": {"request_timeout_seconds": args.latency_ms / 1000 + 10},
                    "upload": {"concurrency": 16},
                    "retry": {"max_attempts": 12},
                    "logging": {"level": "INFO"},
                },
            )
            content: dict[str, str] = {}
            versions: Counter[str] = Counter()
            started = time.monotonic()
            daemon.start()
            emulator.set_faults(
                fail_rate=0.2, rate_limit_rate=0.05, drop_rate=0.05, latency_ms=args.latency_ms, fail_jobs=0.1
            )
            for round_no in range(args.rounds):
                for i in range(args.files):
                    name = f"t{i:03d}"
                    versions[name] += 1
                    content[name] = "id,round\n" + "".join(f"{r},{round_no}\n" for r in range(i + 1))
                    daemon.write(f"chaos/{name}.csv", content[name])
                if round_no + 1 < args.rounds:
                    daemon.wait_log("-> in.c-chaos.", count=args.files, timeout=args.timeout)
            daemon.wait_log("-> in.c-chaos.", count=args.files * args.rounds, timeout=args.timeout)
            elapsed = time.monotonic() - started
            alive = daemon.alive
            emulator.reset_faults()
            wrong = [n for n in content if table_rows(emulator, f"in.c-chaos.{n}") != csv_rows(content[n])]
            jobs = emulator.client().jobs
            listing = jobs._get(jobs.base_url, params={"limit": 10000})
            loads = Counter(j["tableId"] for j in listing if j.get("status") == "success")
            extra = [n for n in content if loads[f"in.c-chaos.{n}"] > versions[n]]
            injected = emulator.stats()["faults_injected"]
            exit_code = daemon.stop()
            wait_for(lambda: not daemon.alive, timeout=30)
        finally:
            emulator.stop()
    rows = [
        ("files x versions", f"{args.files} x {args.rounds}"),
        ("faults injected", ", ".join(f"{k}={v}" for k, v in sorted(injected.items()) if v)),
        ("time to converge", f"{elapsed:.0f} s"),
        ("daemon alive throughout", "yes" if alive else "NO"),
        ("tables not equal to their file", str(len(wrong)) + (f" {wrong[:5]}" if wrong else "")),
        ("tables loaded more than versions", str(len(extra)) + (f" {extra[:5]}" if extra else "")),
        ("exit code after SIGTERM", str(exit_code)),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return 0 if alive and not wrong and not extra and exit_code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
