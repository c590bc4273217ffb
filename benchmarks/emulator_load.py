"""Load and throughput benchmark of keboola-emulator (issue 2). One command, prints tables.

    .venv/bin/python benchmarks/emulator_load.py                     # 50 clients x 60 s
    .venv/bin/python benchmarks/emulator_load.py --seconds 10        # shorter
    .venv/bin/python benchmarks/emulator_load.py --fail-rate 0.05 --rate-limit-rate 0.02   # with faults
    .venv/bin/python benchmarks/emulator_load.py --clients 0 --import-mb 1024               # import MB/s only

Load phase: N threads, each a real kbcstorage client with its own bucket and table, loop over a
mix of reads (verify, bucket/table detail, lists, data-preview, jobs) and writes (file upload to
S3 + full load job). Every error is classified as injected (the emulator marks injected
responses) or not; the goal is zero non-injected errors and emulator peak RSS < 150 MB.
Import phase: a generated CSV of --import-mb MB is uploaded with boto3's transfer manager
(multipart, like the daemon) and loaded with tables-async and import-async; prints MB/s.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil
import requests
from boto3.s3.transfer import TransferConfig

TOKEN = "bench-token"
INJECTED_MARKERS = ("injected by keboola-emulator", "Injected maintenance")


# -- the emulator process -------------------------------------------------------------------------
@dataclass
class Emu:
    proc: subprocess.Popen[str]
    api: str
    s3: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=60)


def start_emulator(extra: list[str]) -> Emu:
    log = open(Path(tempfile.gettempdir()) / "keboola-emulator-bench.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "keboola_emulator", "--port", "0", "--token", TOKEN, *extra],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        raise SystemExit(f"emulator did not start: {line!r} (see {log.name})")
    parts = dict(p.split("=", 1) for p in line.split()[1:])
    os.environ["AWS_ENDPOINT_URL_S3"] = parts["s3"]
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    return Emu(proc, parts["api"], parts["s3"])


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._halt = threading.Event()
        self.peak = 0
        self.samples: list[int] = []

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                rss = self._proc.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self.samples.append(rss)
            self._halt.wait(self._interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


# -- load phase -----------------------------------------------------------------------------------
@dataclass
class Tally:
    ops: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    injected: Counter[str] = field(default_factory=Counter)
    real_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, seconds: float) -> None:
        with self.lock:
            self.ops[op] += 1
            self.latencies[op].append(seconds)

    def error(self, op: str, exc: BaseException, drops_possible: bool) -> None:
        text = str(exc)
        response = getattr(exc, "response", None)
        if response is not None:
            text += " " + response.text[:300]
        injected = any(m in text for m in INJECTED_MARKERS) or (
            drops_possible and isinstance(exc, requests.ConnectionError)
        )
        with self.lock:
            if injected:
                self.injected[op] += 1
            else:
                self.real_errors.append(f"{op}: {type(exc).__name__}: {text[:300]}")


def client_loop(index: int, emu: Emu, deadline: float, tally: Tally, workdir: Path, drops: bool) -> None:
    from kbcstorage.client import Client

    rnd = random.Random(index)
    client = Client(emu.api, TOKEN)
    bucket_id = f"in.c-load-{index}"
    table_id = f"{bucket_id}.t"
    csv_path = workdir / f"client-{index}.csv"

    def write_csv(rows: int) -> None:
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "name", "amount"])
            for i in range(rows):
                w.writerow([i, f"name {i} of client {index}", rnd.randint(0, 10_000)])

    def timed(op: str, fn: Any) -> Any:
        started = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # a benchmark counts every failure, whatever its type
            tally.error(op, exc, drops)
            return None
        tally.record(op, time.perf_counter() - started)
        return result

    def exists(fn: Any) -> bool:
        try:
            fn()
            return True
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                return False
            raise

    def setup() -> bool:
        """Idempotent: after an injected failure it is simply run again."""
        if not exists(lambda: client.buckets.detail(bucket_id)):
            client.buckets.create(f"load-{index}")
        if not exists(lambda: client.tables.detail(table_id)):
            write_csv(50)
            client.tables.create(bucket_id, "t", str(csv_path))
        return True

    while time.monotonic() < deadline and not timed("setup", setup):
        pass
    ops = [
        ("verify", 10, lambda: client.tokens.verify()),
        ("bucket_detail", 10, lambda: client.buckets.detail(bucket_id)),
        ("table_detail", 15, lambda: client.tables.detail(table_id)),
        ("tables_list", 5, lambda: client.tables.list(include=["columns"])),
        ("preview", 15, lambda: client.tables.preview(table_id)),
        ("jobs_list", 5, lambda: client.jobs.list()),
        ("files_list", 5, lambda: client.files.list(limit=10)),
        (
            "upload_and_load",
            10,
            lambda: (write_csv(rnd.randint(10, 2000)), client.tables.load(table_id, str(csv_path)))[1],
        ),
    ]
    names = [o[0] for o in ops]
    weights = [o[1] for o in ops]
    fns = {o[0]: o[2] for o in ops}
    while time.monotonic() < deadline:
        op = rnd.choices(names, weights)[0]
        timed(op, fns[op])


def run_load(args: argparse.Namespace) -> bool:
    fault_args = []
    for flag, value in (
        ("--fail-rate", args.fail_rate),
        ("--rate-limit-rate", args.rate_limit_rate),
        ("--drop-rate", args.drop_rate),
        ("--latency-ms", args.latency_ms),
        ("--fail-jobs", args.fail_jobs),
        ("--lost-response-rate", args.lost_response_rate),
    ):
        if value:
            fault_args += [flag, str(value)]
    emu = start_emulator(fault_args)
    sampler = RssSampler(emu.pid)
    sampler.start()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="emulator-load-") as tmp:
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(
                target=client_loop,
                args=(i, emu, deadline, tally, Path(tmp), args.drop_rate > 0 or args.lost_response_rate > 0),
                daemon=True,
            )
            for i in range(args.clients)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 300)
        elapsed = time.monotonic() - started
    stats = requests.get(f"{emu.api}/_emulator/stats", timeout=30).json()
    peak = sampler.stop()
    code = emu.stop()

    total = sum(tally.ops.values())
    print(
        f"\nLoad: {args.clients} clients x {args.seconds:.0f} s (ran {elapsed:.1f} s), faults: "
        f"{' '.join(fault_args) or 'none'}"
    )
    print(f"{'operation':<18}{'ok':>8}{'injected err':>14}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for op in sorted(set(tally.ops) | set(tally.injected)):
        lat = sorted(tally.latencies.get(op, [0.0]))
        p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
        print(
            f"{op:<18}{tally.ops[op]:>8}{tally.injected[op]:>14}{statistics.median(lat) * 1000:>10.1f}"
            f"{p95 * 1000:>10.1f}{lat[-1] * 1000:>10.1f}"
        )
    print(f"{'total':<18}{total:>8}{sum(tally.injected.values()):>14}   ({total / elapsed:.1f} ok ops/s)")
    print(f"\n{'metric':<44}{'value':>14}{'target':>12}")
    rows = [
        ("non-injected errors", len(tally.real_errors), "0"),
        ("emulator peak RSS (MB)", f"{peak / 1e6:.1f}", "< 150"),
        ("API requests served", sum(stats["requests"].values()), ""),
        ("jobs run", sum(stats["jobs"].values()), ""),
        ("S3 bytes uploaded", stats["s3_put_bytes"], ""),
        (
            "faults injected (emulator count, w/o latency)",
            sum(v for k, v in stats["faults_injected"].items() if k != "latency"),
            "",
        ),
        ("emulator exit code after SIGTERM", code, "0"),
    ]
    for name, value, target in rows:
        print(f"{name:<44}{value!s:>14}{target:>12}")
    for line in tally.real_errors[:20]:
        print("  ERROR", line)
    ok = not tally.real_errors and peak < 150e6 and code == 0
    print(f"\nLOAD RESULT: {'PASS' if ok else 'FAIL'}")
    return ok


# -- import phase ---------------------------------------------------------------------------------
def generate_csv(path: Path, megabytes: float) -> int:
    target = int(megabytes * 1024 * 1024)
    rows, size = 0, 0
    with open(path, "w", buffering=1 << 20) as f:
        f.write("id,name,date,amount,note,country\n")
        while size < target:
            chunk = "".join(
                f'{i},"customer {i}",2026-11-{i % 28 + 1:02d},{i % 1000}.{i % 100:02d},"free text, with a comma",DE\n'
                for i in range(rows, rows + 10_000)
            )
            f.write(chunk)
            size += len(chunk)
            rows += 10_000
    return rows


def wait_job(api: str, job_id: int) -> dict[str, Any]:
    headers = {"X-StorageApi-Token": TOKEN}
    while True:
        job = requests.get(f"{api}/v2/storage/jobs/{job_id}", headers=headers, timeout=60).json()
        if job["status"] in ("success", "error"):
            return job
        time.sleep(0.2)  # a benchmark polls at a fixed rate; tests never do this


def run_import(args: argparse.Namespace) -> bool:
    from kbcstorage.client import Client

    with tempfile.TemporaryDirectory(prefix="emulator-import-") as tmp:
        path = Path(args.import_file) if args.import_file else Path(tmp) / "big.csv"
        if not args.import_file:
            print(f"\ngenerating a {args.import_mb:.0f} MB CSV ...", flush=True)
            generate_csv(path, args.import_mb)
        size_mb = path.stat().st_size / 1e6
        emu = start_emulator([])
        client = Client(emu.api, TOKEN)
        bucket_id = client.buckets.create("import-bench")["id"]
        results: list[tuple[str, float, float, str]] = []

        def upload() -> int:
            prepared = client.files.prepare_upload(path.name, size_bytes=path.stat().st_size)
            params = prepared["uploadParams"]
            s3 = boto3.client("s3", region_name="us-east-1")
            started = time.monotonic()
            s3.upload_file(
                str(path),
                params["bucket"],
                params["key"],
                Config=TransferConfig(multipart_chunksize=args.part_mb * 1024 * 1024),
                ExtraArgs={"ServerSideEncryption": params["x-amz-server-side-encryption"]},
            )
            results.append(("S3 multipart upload", time.monotonic() - started, size_mb, ""))
            return int(prepared["id"])

        sampler = RssSampler(emu.pid)
        sampler.start()
        file_id = upload()
        upload_peak = sampler.stop()
        rss_before_jobs = psutil.Process(emu.pid).memory_info().rss
        sampler = RssSampler(emu.pid)
        sampler.start()
        headers = {"X-StorageApi-Token": TOKEN}
        for label, url, data in (
            (
                "tables-async (create)",
                f"{emu.api}/v2/storage/buckets/{bucket_id}/tables-async",
                {"name": "big", "dataFileId": file_id},
            ),
            (
                "import-async (full load)",
                f"{emu.api}/v2/storage/tables/{bucket_id}.big/import-async",
                {"dataFileId": file_id, "incremental": 0},
            ),
        ):
            started = time.monotonic()
            job = requests.post(url, data=data, headers=headers, timeout=120).json()
            job = wait_job(emu.api, job["id"])
            detail = (
                job.get("error", {}).get("message", "")
                if job["status"] == "error"
                else (f"{job['results'].get('totalRowsCount', job['results'].get('rowsCount', ''))} rows")
            )
            results.append((label, time.monotonic() - started, size_mb, f"{job['status']} {detail}"))
        peak = sampler.stop()
        emu.stop()
    print(f"\nImport of a {size_mb:.0f} MB CSV (MB = 10^6 bytes)")
    print(f"{'step':<28}{'seconds':>10}{'MB/s':>10}  result")
    for label, seconds, mb, note in results:
        print(f"{label:<28}{seconds:>10.1f}{mb / seconds:>10.1f}  {note}")
    print(
        f"emulator RSS: peak during the upload {upload_peak / 1e6:.0f} MB, after it {rss_before_jobs / 1e6:.0f} MB, "
        f"peak during the load jobs {peak / 1e6:.0f} MB"
    )
    return all("error" not in r[3] for r in results)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (0 = skip the load phase)")
    p.add_argument("--seconds", type=float, default=60.0, help="load phase duration")
    p.add_argument("--fail-rate", type=float, default=0.0)
    p.add_argument("--rate-limit-rate", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--fail-jobs", type=float, default=0.0)
    p.add_argument("--lost-response-rate", type=float, default=0.0)
    p.add_argument("--import-mb", type=float, default=0.0, help="also measure import MB/s of a generated CSV")
    p.add_argument("--import-file", default=None, help="measure import MB/s of this CSV instead")
    p.add_argument("--part-mb", type=int, default=8, help="multipart part size for the import upload")
    args = p.parse_args()
    ok = True
    if args.clients > 0:
        ok = run_load(args) and ok
    if args.import_mb > 0 or args.import_file:
        ok = run_import(args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
