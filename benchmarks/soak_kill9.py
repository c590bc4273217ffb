"""Soak: start the daemon, kill -9 it at a random moment while loads run, change files, start again —
for as long as you like. At the end every table must equal its file, and no content may have been
loaded twice (the ledger and the job check before any re-send exist to guarantee that).

    .venv/bin/python benchmarks/soak_kill9.py --duration 600
    .venv/bin/python benchmarks/soak_kill9.py --duration 120 --big-mb 80 --fail-rate 0.05 --seed 3

How "loaded twice" is checked, from Keboola's side only: every create/import job of the emulator
(GET /v2/storage/jobs) names its uploaded file; the file is downloaded (its signed URL), gunzipped when
its name ends .gz, and hashed. Every version this script writes is unique, so the same hash in two
successful jobs of one table is a load of unchanged content; a hash that was never written is a
corrupt load. Exit 0 when everything holds, 1 otherwise; a summary is printed either way.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datagen import small_csv, write_csv
from harness import Daemon, Emulator, emulator, jobs_of, wait_for  # also puts tests/ on sys.path

from support.daemon import csv_rows, table_rows  # the tests' own read-back helpers

SOAK_CONFIG = {  # short intervals so many kill/restart cycles fit in a few minutes
    "watch": {"stable_seconds": 0.3, "rescan_seconds": 5, "polling_interval_seconds": 0.3},
    "upload": {"gzip_threshold_mb": 1, "multipart_threshold_mb": 8, "multipart_chunk_mb": 5},
    "logging": {"level": "INFO", "console": False, "progress_seconds": 1},
}


class Files:
    """The files this script owns in the watched folder, and every version it has written."""

    def __init__(self, root: Path, count: int, folders: int, big_mb: int, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.names = [f"soak{i % folders}/t{i:02d}.csv" for i in range(count)]
        if big_mb:
            self.names.append("soakbig/big.csv")
        self.big_mb = big_mb
        self.versions: dict[str, list[str]] = defaultdict(list)  # rel path -> sha256 of each version
        self.current: dict[str, bytes] = {}
        self.big_rows = 0
        self._serial = 0

    def table(self, rel: str) -> str:
        folder, name = rel.split("/")
        return f"in.c-{folder}.{name[:-4]}"

    def rewrite(self, rel: str) -> None:
        self._serial += 1
        path = self.root / rel
        if rel.startswith("soakbig/"):
            generated = write_csv(path, self.big_mb * 1_000_000 + self._serial * 1000, seed=self._serial)
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            self.big_rows = generated.rows
            self.versions[rel].append(digest.hexdigest())
            return
        data = small_csv(self._serial, self.rng.randint(300, 40_000))
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.rng.random() < 0.5:
            path.write_bytes(data)  # in place
        else:
            tmp = path.parent / f".{path.name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(path)  # an editor's atomic save
        self.current[rel] = data
        self.versions[rel].append(hashlib.sha256(data).hexdigest())


def _download_hash(emu: Emulator, file_id: int) -> str:
    files = emu.client().files
    detail = files.detail(file_id)
    digest = hashlib.sha256()
    with urllib.request.urlopen(detail["url"], timeout=120) as resp:  # noqa: S310 - the local emulator
        stream = gzip.GzipFile(fileobj=resp) if detail["name"].endswith(".gz") else resp
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check(emu: Emulator, files: Files) -> list[str]:
    """Every table equals its file; no content loaded twice; no load of content never written."""
    problems: list[str] = []
    for rel in files.names:
        table = files.table(rel)
        if rel in files.current:
            if table_rows(emu, table) != csv_rows(files.current[rel].decode()):
                problems.append(f"{table} differs from {rel}")
        else:
            rows = emu.client().tables.detail(table).get("rowsCount")
            if rows != files.big_rows:
                problems.append(f"{table} has {rows} rows, {rel} {files.big_rows}")
    loads: dict[str, list[str]] = defaultdict(list)
    sources: dict[str, list[str]] = defaultdict(list)  # "job J file F" beside each hash, for the report
    failed = 0
    for job in sorted(jobs_of(emu), key=lambda j: int(j["id"])):
        if job.get("operationName") not in ("tableImport", "tableCreate"):
            continue
        if job.get("status") != "success":
            failed += 1
            continue
        file_id = ((job.get("operationParams") or {}).get("source") or {}).get("fileId")
        loads[job["tableId"]].append(_download_hash(emu, int(file_id)))
        sources[job["tableId"]].append(f"job {job['id']} file {file_id}")
    for rel in files.names:
        table, written = files.table(rel), files.versions[rel]
        hashes = loads.get(table, [])
        twice = {h for h in hashes if hashes.count(h) > 1}
        if twice:
            where = "; ".join(
                " and ".join(src for src, h in zip(sources[table], hashes, strict=True) if h == dup)
                for dup in sorted(twice)
            )
            problems.append(
                f"{table}: {len(twice)} content(s) loaded more than once ({len(hashes)} loads, "
                f"{len(written)} versions written): {where}"
            )
        unknown = [h for h in hashes if h not in written]
        if unknown:
            problems.append(f"{table}: {len(unknown)} load(s) of content that was never written")
        if hashes and hashes[-1] != written[-1]:
            problems.append(f"{table}: the last load is not the last version")
    print(
        f"jobs: {sum(len(v) for v in loads.values())} successful loads over {len(loads)} tables, "
        f"{failed} failed jobs; versions written: {sum(len(v) for v in files.versions.values())}"
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=120, help="seconds of kill/restart cycles (default 120)")
    p.add_argument("--files", type=int, default=12, help="small CSVs (default 12)")
    p.add_argument("--folders", type=int, default=3, help="folders (buckets) they are spread over (default 3)")
    p.add_argument(
        "--big-mb",
        type=int,
        default=40,
        help="also one CSV of this size (gzipped, multipart upload); 0 = none (default 40)",
    )
    p.add_argument("--job-seconds", type=float, default=0.3, help="emulator: every job lasts at least this")
    p.add_argument("--fail-rate", type=float, default=0.0, help="emulator: fraction of API requests failing")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    print(
        f"soak: seed {seed}, {args.duration:.0f} s, {args.files} files + "
        f"{'a ' + str(args.big_mb) + ' MB file' if args.big_mb else 'no big file'}",
        flush=True,
    )
    extra = ["--job-seconds", str(args.job_seconds), "--fail-rate", str(args.fail_rate), "--seed", str(seed)]
    with tempfile.TemporaryDirectory(prefix="keboola-sync-soak-") as tmp, emulator(*extra) as emu:
        daemon = Daemon(Path(tmp) / "d", emu, SOAK_CONFIG)
        files = Files(daemon.watch, args.files, args.folders, args.big_mb, rng)
        for rel in files.names:
            files.rewrite(rel)
        cycles = kills = 0
        end = time.monotonic() + args.duration
        while time.monotonic() < end:
            cycles += 1
            daemon.start()
            assert daemon.proc is not None
            # Kill at a random moment: often while uploads or jobs are in flight, sometimes at start-up.
            deadline = time.monotonic() + rng.uniform(0.2, 4.0)
            while time.monotonic() < deadline and daemon.alive:
                if rng.random() < 0.2:
                    files.rewrite(rng.choice(files.names))
                threading.Event().wait(rng.uniform(0.05, 0.4))
            if daemon.alive:
                daemon.proc.send_signal(signal.SIGKILL)
                daemon.proc.wait(timeout=10)
                kills += 1
            else:
                print(f"cycle {cycles}: the daemon exited by itself ({daemon.proc.returncode})\n{daemon.log()[-2000:]}")
                return 1
            for rel in rng.sample(files.names, rng.randint(0, 2)):
                files.rewrite(rel)
        print(f"{cycles} cycles, {kills} kill -9; final start", flush=True)
        emu.reset_faults()
        daemon.health_file.unlink(missing_ok=True)
        daemon.start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        try:
            # Started (signal handlers in place) and idle once: then the tables must match.
            wait_for(lambda: _idle(daemon, pid), timeout=300, interval=0.1, message="the final start to be idle")
            wait_for(
                lambda: not check_quiet(emu, files), timeout=300, interval=0.5, message="every table equal to its file"
            )
        except AssertionError as exc:
            print(exc)
        daemon.stop(signal.SIGTERM)
        code = daemon.proc.returncode if daemon.proc else None
        problems = check(emu, files)
        if code != 0:
            problems.append(f"the final daemon exited {code} on SIGTERM")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("OK: every table equals its file; nothing loaded twice" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _idle(daemon: Daemon, pid: int) -> bool:
    try:
        health = json.loads(daemon.health_file.read_text())
    except (OSError, ValueError):
        return False
    return bool(health.get("pid") == pid and health.get("pending") == 0)


def check_quiet(emu: Emulator, files: Files) -> list[str]:
    """The cheap part of `check` (tables vs files), used while waiting for the final start to finish."""
    out = []
    for rel in files.names:
        if rel in files.current:
            if table_rows(emu, files.table(rel)) != csv_rows(files.current[rel].decode()):
                out.append(rel)
        else:
            try:
                rows = emu.client().tables.detail(files.table(rel)).get("rowsCount")
            except Exception:  # not created yet
                rows = None
            if rows != files.big_rows:
                out.append(rel)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
