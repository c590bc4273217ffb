"""Benchmarks 1-3 of issue 7, per file storage (issue 14): one large CSV, file on disk -> table loaded,
on an emulator whose files live in moto's S3 (`aws`), Azurite (`azure`) or gcp-storage-emulator (`gcp`).

Ours is the real daemon (`keboola-sync sync --once`, a subprocess, production config) timed from
process start to exit, so Python start-up, the token check, the streaming pass, the upload and the
emulator's import job are all inside the number. Phases are read from outside, from the emulator's
counters (`/_emulator/stats`, polled every 50 ms): the first job marks the end of the upload;
`files/prepare` marks the end of the pass only when the upload does not overlap it.

The SDK baseline is kbcstorage 0.12.0 doing exactly what `Tables.create` does (Files.upload_file
with compress=False: one PutObject; then tables-async), except that the job is polled every 0.1 s
instead of the SDK's 4, 8, 16, 20 s pauses, which would add up to 20 s of pure waiting to its time.
So the baseline is the SDK's plain path at its best, and the ratio is not flattered by its polling.
On each provider the baseline is that provider's own SDK uploader as kbcstorage calls it (§9.8): boto3
PutObject, azure-storage-blob `BlobClient.upload_blob`, google-cloud-storage `blob.upload_from_file`,
all plain (no gzip). The bandwidth cap (`--s3-bandwidth-mbps`) is applied by the emulator to every
provider's uploads (its front door before Azurite / gcp-storage-emulator); every row 1 checks that it held
by dividing the bytes the emulator received by the time they took.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from csv_pass import run_child
from datagen import Generated, write_csv
from harness import Emulator, RssSampler, bench_daemon, emulator, job_seconds, jobs_of, parse_load_line
from isal import isal_zlib
from result import Result

MB = 1_000_000
CHUNK = 1 << 20
# What the file storage is called in a row's name, and the uploader kbcstorage's Files.upload_file uses there.
STORAGE = {"aws": "S3", "azure": "Azure Blob", "gcp": "GCS"}
SDK_UPLOADER = {
    "aws": "kbcstorage, plain PUT",
    "azure": "kbcstorage, upload_blob",
    "gcp": "kbcstorage, upload_from_file",
}
CAP_SLACK = 1.05  # a measured rate above cap x this means the cap did not hold


def per_provider(number: int, providers: Iterable[str], bench: Callable[[str], Result | list[Result]]) -> list[Result]:
    """`bench(provider)` for each provider in turn, each row tagged with its provider; one provider's
    failure is an ERROR row of its own and does not hide the others' rows."""
    out: list[Result] = []
    for provider in providers:
        started = time.monotonic()
        print(f"[{number} {provider}] running...", flush=True)
        try:
            outcome = bench(provider)
            batch = outcome if isinstance(outcome, list) else [outcome]
        except Exception as exc:  # reported as the row's error, the run goes on
            traceback.print_exc()
            err = f"{type(exc).__name__}: {exc}"
            batch = [Result(number, f"benchmark {number}", "", None, None, "", None, "", None, error=err)]
        for result in batch:
            if result.provider is None:  # "" = a row no provider is part of (row 2's pass alone)
                result.provider = provider
        print(f"[{number} {provider}] done in {time.monotonic() - started:.0f} s", flush=True)
        out.extend(batch)
    return out


class PhaseWatcher:
    """Times, relative to start, at which the emulator first saw a prepared file and a job, and the CPU
    seconds the daemon (`watch(pid)`) and the emulator had used by the time of that job."""

    def __init__(self, emu: Emulator, interval: float = 0.05) -> None:
        self._emu = emu
        self._emu_proc = psutil.Process(emu.pid)
        self._emu_cpu0 = _cpu(self._emu_proc)
        self._daemon: psutil.Process | None = None
        self.daemon_cpu: float | None = None
        self.emulator_cpu: float | None = None
        self._interval = interval
        self._stop = threading.Event()
        base = emu.stats()
        self._files0 = base["files_prepared"]
        self._jobs0 = sum(base["jobs"].values())
        self.prepared_at: float | None = None
        self.job_at: float | None = None
        self.start = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                stats = self._emu.stats()
            except OSError:
                self._stop.wait(self._interval)
                continue
            now = time.monotonic() - self.start
            if self.prepared_at is None and stats["files_prepared"] > self._files0:
                self.prepared_at = now
            if self.job_at is None and sum(stats["jobs"].values()) > self._jobs0:
                self.job_at = now
                self.emulator_cpu = _cpu(self._emu_proc) - self._emu_cpu0
                with contextlib.suppress(psutil.Error):
                    self.daemon_cpu = _cpu(self._daemon) if self._daemon is not None else None
                return
            self._stop.wait(self._interval)

    def watch(self, pid: int) -> None:
        self._daemon = psutil.Process(pid)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def run_daemon_once(
    tmp: Path, emu: Emulator, data: Generated, *, sample_rss: bool = False, timeout: float = 7200
) -> dict[str, Any]:
    """`sync --once` on a folder holding only `sales/orders.csv` (hard-linked from the generated file).
    Returns seconds, phases, the daemon's own load line and (optionally) the peak RSS."""
    shutil.rmtree(tmp, ignore_errors=True)  # a --work folder kept from an earlier run
    daemon = bench_daemon(tmp, emu)
    target = daemon.watch / "sales" / "orders.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.hardlink_to(data.path)
    put0 = emu.stats()["s3_put_bytes"]
    phases = PhaseWatcher(emu)
    wall_start = time.time()
    proc = subprocess.Popen(
        daemon.command("sync", "--once"), env=daemon.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    phases.watch(proc.pid)
    sampler = RssSampler(proc.pid) if sample_rss else None
    # The emulator too (with its Azurite / gcp-storage-emulator child): not part of the row, but it
    # shows whether the cloud emulator held the file on disk or in memory.
    emu_sampler = RssSampler(emu.pid, interval=0.5) if sample_rss else None
    for s in (sampler, emu_sampler):
        if s:
            s.__enter__()
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        for s in (sampler, emu_sampler):
            if s:
                s.__exit__(None, None, None)
    seconds = time.monotonic() - phases.start
    phases.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"sync --once exited {proc.returncode}: {err[-2000:]}\n{daemon.log()[-3000:]}")
    line = next((x for x in daemon.log().splitlines() if parse_load_line(x)), "")
    load = parse_load_line(line)
    # The load began `load.seconds` before its line was written: that splits start-up from the load.
    load_start = log_time(line) - load.seconds - wall_start if load else None
    table = emu.client().tables.detail("in.c-sales.orders")
    if table.get("rowsCount") != data.rows:
        raise RuntimeError(f"table has {table.get('rowsCount')} rows, the file {data.rows}")
    job = next(j for j in jobs_of(emu) if j.get("tableId") == "in.c-sales.orders")
    put_mb = (emu.stats()["s3_put_bytes"] - put0) / MB
    upload_s = (phases.job_at or seconds) - (load_start or 0.0)
    return {
        "seconds": seconds,
        "load_start_s": load_start,
        "pass_done_s": phases.prepared_at,
        "upload_done_s": phases.job_at,
        "job_s": job_seconds(job),
        "daemon_line_s": load.seconds if load else None,
        "upload_mb": load.gzip_mb if load else None,
        "daemon_cpu_s": phases.daemon_cpu or 0.0,
        "emulator_cpu_s": phases.emulator_cpu or 0.0,
        "peak_rss_mb": sampler.peak / 2**20 if sampler else None,
        "rss_samples": sampler.samples if sampler else None,
        "emulator_peak_rss_mb": emu_sampler.peak / 2**20 if emu_sampler else None,
        # bytes the file storage received over load start -> import submitted: the upload overlaps the
        # pass, so this is a floor of the rate the upload ran at
        "put_mb": put_mb,
        "put_mb_per_s": put_mb / upload_s if upload_s > 0 else None,
    }


def log_time(line: str) -> float:
    """Epoch seconds of a text-format log line (`2026-11-22 05:55:25,943 INFO ...`, local time)."""
    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def run_sdk_plain(emu: Emulator, data: Generated, bucket: str = "sdk") -> dict[str, Any]:
    """kbcstorage's Tables.create path without compression, polled every 0.1 s (module docstring), on
    whatever file storage the emulator runs (the SDK picks the uploader from files/prepare's answer)."""
    client = emu.client()
    bucket_id = client.buckets.create(bucket)["id"]
    put0 = emu.stats()["s3_put_bytes"]
    start = time.monotonic()
    file_id = client.files.upload_file(str(data.path), tags=["file-import"], compress=False)
    uploaded = time.monotonic() - start
    put_mb = (emu.stats()["s3_put_bytes"] - put0) / MB
    job = client.tables.create_raw(bucket_id=bucket_id, name="orders", data_file_id=file_id)
    while job["status"] not in ("success", "error"):
        threading.Event().wait(0.1)
        job = client.jobs.detail(job["id"])
    seconds = time.monotonic() - start
    if job["status"] != "success":
        raise RuntimeError(f"SDK create failed: {job.get('error')}")
    rows = client.tables.detail(f"{bucket_id}.orders").get("rowsCount")
    if rows != data.rows:
        raise RuntimeError(f"SDK table has {rows} rows, the file {data.rows}")
    return {
        "seconds": seconds,
        "upload_done_s": uploaded,
        "job_s": job_seconds(job),
        "put_mb": put_mb,
        "put_mb_per_s": put_mb / uploaded,
    }


def floor_seconds(data: Generated, level: int = 1) -> float:
    """The floor of benchmark 2: read the file and isal-compress it (the daemon's gzip_level), nothing
    else — no hash, no validation, no spool, no network. Page cache warm, like the daemon's read."""
    start = time.monotonic()
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    with open(data.path, "rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK):
            compressor.compress(chunk)
    compressor.flush()
    return time.monotonic() - start


def cap_note(mbps: float, ours: dict[str, Any], sdk: dict[str, Any]) -> tuple[bool, str]:
    """Did the emulator's cap hold on this provider? The SDK's plain upload is one stream of known
    bytes over a known time, so its rate must not be above the cap; ours is a floor (module docstring)."""
    cap = mbps * 125_000 / MB  # MB/s
    held = sdk["put_mb_per_s"] <= cap * CAP_SLACK and (ours["put_mb_per_s"] or 0) <= cap * CAP_SLACK
    slow = (
        f"; the SDK's upload ran well below the cap, so the file storage emulator, not the link, set its pace "
        f"(at the cap it would have taken {sdk['put_mb'] / cap:.0f} s)"
        if sdk["put_mb_per_s"] < 0.8 * cap
        else ""
    )
    return held, (
        f"cap {cap:.1f} MB/s {'held' if held else 'DID NOT HOLD'}: the emulator received {sdk['put_mb']:.0f} MB "
        f"from the SDK at {sdk['put_mb_per_s']:.1f} MB/s and {ours['put_mb']:.0f} MB from ours at "
        f">= {ours['put_mb_per_s'] or 0:.1f} MB/s (load start -> import submitted){slow}"
    )


def bench_capped(work: Path, data: Generated, mbps: float = 100, provider: str = "aws") -> list[Result]:
    """Benchmark 1: the provider's file storage capped at `mbps`; ours vs the SDK's plain upload of the
    same file. The second row leaves out the emulator's import job (the same work for both, and not what
    we can speed up). A cap that did not hold fails both rows: the ratio would mean nothing."""
    with emulator("--s3-bandwidth-mbps", str(mbps), provider=provider) as emu:
        ours = run_daemon_once(work / f"b1-daemon-{provider}", emu, data)
        sdk = run_sdk_plain(emu, data)
    ratio = sdk["seconds"] / ours["seconds"]
    sdk_up, ours_up = sdk["upload_done_s"], ours["upload_done_s"] or ours["seconds"]
    up_ratio = sdk_up / ours_up
    held, cap_line = cap_note(mbps, ours, sdk)
    size = f"{data.size / MB:.0f} MB CSV, {STORAGE[provider]} capped at {mbps:.0f} Mbit/s"
    baseline = SDK_UPLOADER[provider]
    details = {
        "ours": ours,
        "sdk": sdk,
        "file_mb": data.size / MB,
        "compression_ratio": round(data.size / MB / ours["upload_mb"], 2) if ours["upload_mb"] else None,
        "cap_held": held,
    }
    return [
        Result(
            1,
            f"{size}: saved -> table loaded",
            "s",
            ours["seconds"],
            sdk["seconds"],
            baseline,
            ratio,
            ">= 4x faster",
            held and ratio >= 4,
            details=details,
            notes=[
                cap_line,
                f"the emulator's import job took {ours['job_s'] or 0:.0f} s (ours) / {sdk['job_s'] or 0:.0f} s "
                "(SDK) of that: the same for both, it caps this ratio",
                f"gzip shrank the upload {data.size / MB:.0f} -> {ours['upload_mb'] or 0:.0f} MB "
                f"({details['compression_ratio']}x)",
            ],
        ),
        Result(
            1,
            f"{size}: start -> uploaded, import submitted",
            "s",
            ours_up,
            sdk_up,
            baseline,
            up_ratio,
            ">= 4x faster",
            held and up_ratio >= 4,
            details=details,
            notes=[
                f"ours: the load starts {ours['load_start_s'] or 0:.1f} s after the process, files/prepare at "
                f"{ours['pass_done_s'] or 0:.1f} s, import submitted at {ours_up:.1f} s"
            ],
        ),
    ]


_FLOORS: dict[Path, tuple[float, float]] = {}


def floor_and_pass(work: Path, data: Generated) -> tuple[float, float]:
    """The floor and the streaming pass alone, measured once per file (they involve no file storage,
    so every provider's row 2 compares against the same two numbers)."""
    if data.path not in _FLOORS:
        floor = min(floor_seconds(data) for _ in range(2))
        # The daemon's streaming pass alone (csvfile.inspect_and_spool: UTF-8, header, SHA-256, gzip into
        # the spool), in its own process as csv_pass.py measures it: ours without the upload and without
        # the emulator's storage side, which on this machine shares the same cores (a real cloud does not).
        pass_alone = min(run_child("spool-gzip", data.path, work / "b2-spool")["seconds"] for _ in range(2))
        _FLOORS[data.path] = (floor, pass_alone)
    return _FLOORS[data.path]


def bench_uncapped(work: Path, data: Generated, provider: str = "aws") -> list[Result]:
    """Benchmark 2: no cap; ours vs the floor (read + isal-compress). The second row is the daemon's
    own load work: from the moment it starts on the file to the import being submitted. The third (the
    pass alone, no file storage involved) is printed with the first provider only."""
    first = data.path not in _FLOORS
    floor, pass_alone = floor_and_pass(work, data)
    with emulator(provider=provider) as emu:
        ours = run_daemon_once(work / f"b2-daemon-{provider}", emu, data)
    ratio = ours["seconds"] / floor
    own = None
    if ours["upload_done_s"] is not None and ours["load_start_s"] is not None:
        own = ours["upload_done_s"] - ours["load_start_s"]
    own_ratio = own / floor if own else None
    pass_s = (ours["pass_done_s"] or 0) - (ours["load_start_s"] or 0)
    size = f"{data.size / MB:.0f} MB CSV, {STORAGE[provider]}, no cap"
    details = {"ours": ours, "floor_s": floor, "floor_mb_per_s": data.size / MB / floor}
    rows = [
        Result(
            2,
            f"{size}: saved -> table loaded",
            "s",
            ours["seconds"],
            floor,
            "read + isal-compress",
            ratio,
            "<= 1.3x the floor",
            ratio <= 1.3,
            details=details,
            notes=[
                f"the emulator's import job took {ours['job_s'] or 0:.0f} s of {ours['seconds']:.1f} s; "
                f"the load started {ours['load_start_s'] or 0:.1f} s after the process did",
                f"the daemon's load line says {ours['daemon_line_s'] or 0:.1f} s (pass + upload + job)",
            ],
        ),
        Result(
            2,
            f"{size}: load start -> uploaded, import submitted",
            "s",
            own,
            floor,
            "read + isal-compress",
            own_ratio,
            "<= 1.3x the floor",
            own_ratio is not None and own_ratio <= 1.3,
            details=details,
            notes=[
                f"files/prepare came {pass_s:.1f} s after the load started (the end of the pass when the "
                "upload follows it; just after the header check when the upload overlaps the pass)",
                f"CPU by the import's submission: daemon {ours['daemon_cpu_s']:.1f} s (start-up included), "
                f"emulator {ours['emulator_cpu_s']:.1f} s ({STORAGE[provider]} ingest of "
                f"{ours['upload_mb'] or 0:.0f} MB, its cloud emulator child not counted), on {os.cpu_count()} cores",
            ],
        ),
    ]
    if first:
        rows.append(pass_row(data, floor, pass_alone))
    return rows


def pass_row(data: Generated, floor: float, pass_alone: float) -> Result:
    return Result(
        2,
        f"{data.size / MB:.0f} MB CSV: the streaming pass alone (check, hash, gzip to spool)",
        "s",
        pass_alone,
        floor,
        "read + isal-compress",
        pass_alone / floor,
        "<= 1.3x the floor",
        pass_alone / floor <= 1.3,
        details={"pass_alone_s": pass_alone, "floor_s": floor},
        notes=["csvfile.inspect_and_spool in its own process (benchmarks/csv_pass.py), best of 2"],
        provider="",
    )


def bench_rss(work: Path, data: Generated, limit_mb: float = 120, provider: str = "aws") -> Result:
    """Benchmark 3: peak RSS (process + children) of the daemon while it loads one big CSV into the
    provider's file storage. The emulator's own peak (with Azurite / gcp-storage-emulator) is a note."""
    with emulator(provider=provider) as emu:
        ours = run_daemon_once(work / f"b3-daemon-{provider}", emu, data, sample_rss=True)
    peak = ours["peak_rss_mb"]
    return Result(
        3,
        f"peak RSS loading a {data.size / MB:.0f} MB CSV into {STORAGE[provider]}",
        "MB",
        peak,
        None,
        "",
        None,
        f"< {limit_mb:.0f} MB",
        peak is not None and peak < limit_mb,
        details={"ours": ours},
        notes=[
            f"{ours['rss_samples']} samples every 50 ms over {ours['seconds']:.0f} s (daemon + children, psutil RSS)",
            f"the emulator (with its cloud emulator child) peaked at {ours['emulator_peak_rss_mb'] or 0:.0f} MB "
            f"receiving {ours['put_mb']:.0f} MB",
        ],
    )


def generate(work: Path, size_mb: int, name: str) -> Generated:
    path = work / "data" / f"{name}.csv"
    if path.exists():
        path.unlink()
    return write_csv(path, size_mb * MB)
