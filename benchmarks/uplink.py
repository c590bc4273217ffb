"""Issue 18's uplink grid: one CSV size at 20, 100 and 1000 Mbit/s, on a RUNNING daemon.

Per uplink (the emulator's S3 cap, changed live through its faults endpoint) three things run in this
order, against one emulator:

1. ours: `keboola-sync run` is already running (warmed up by one small load, and by an untimed 60 MB load
   at this uplink so its automatic gzip level has measured it); the CSV is copied into a
   staging folder outside the watched one and renamed into it. Saved = the rename. Loaded = the
   daemon's load line (its log timestamp, ms resolution): the daemon writes it after it saw the job
   end, marked the table and read it back, i.e. when the load is done as far as the daemon knows.
   The job's end alone (what `lastImportDate` records, to the second) would hide the daemon's job
   polling, which is part of the fixed cost issue 18.1 removes.
2. before (with --baseline-src): the same with a second daemon running an older checkout's src/.
3. kbcstorage: large_files.run_sdk_plain (upload_file(compress=False) + create_raw, polled every 0.1 s).

Keboola's job time is subtracted on both sides: a JobClock polls the emulator every 50 ms and times
the job from its creation (the stats counter) to its end (the job's status), so to about 0.1 s; the
job's startTime/endTime only have 1 s resolution. Client side = saved -> loaded - settle - job.
The compressed bytes' transfer = the bytes the daemon really sent to S3 (the emulator's
`s3_put_bytes`) / the cap. Definitions of every column: docs/benchmarks.md, "Uplink grid".
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen import Generated, write_csv
from harness import PRODUCTION, Daemon, Emulator, LogTail, RssSampler, emulator, parse_load_line
from large_files import log_time, run_sdk_plain
from result import Result

MB = 1_000_000
CAPS_MBPS = (20, 100, 1000)
ACCLIMATE_MB = 60  # _acclimating_file: ~12 MB gzipped
SETTLE_SECONDS = 1.0  # watch.stable_seconds, as issue 18 measured it
TARGET_MB, TARGET_MBPS, TARGET_RATIO = 300, 100, 1.2  # issue 18 "How we will know"
BEFORE_MARGIN = 1.1  # "no slower than before", with room for a noisy shared machine
LEVEL_LINE = re.compile(r"gzip level (\d)")
UNKNOWN_KEY = re.compile(r"configuration error: (\w+)\.(\w+): unknown key")
STARTED = "watching with"  # the daemon's start-up line once the watcher runs


class JobClock:
    """The next job the emulator runs: wall times of its creation and its end, polled every
    `interval` s (stats counter first, then the job itself), so its duration is good to ~2 intervals."""

    def __init__(self, emu: Emulator, interval: float = 0.05) -> None:
        self._emu = emu
        self._client = emu.client()
        self._interval = interval
        self._jobs0 = sum(emu.stats()["jobs"].values())
        latest = self._client.jobs._get(self._client.jobs.base_url, params={"limit": 1}) or []
        self._id0 = latest[0]["id"] if latest else 0
        self.created: float | None = None
        self.ended: float | None = None
        self.job: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._follow()
        except OSError:  # the emulator stopped answering: seconds() reports the job as unseen
            return

    def _follow(self) -> None:
        while not self._stop.is_set() and self.created is None:
            if sum(self._emu.stats()["jobs"].values()) > self._jobs0:
                self.created = time.time()
                break
            self._stop.wait(self._interval)
        jobs = self._client.jobs
        while not self._stop.is_set() and self.job is None:
            newer = [j for j in jobs._get(jobs.base_url, params={"limit": 5}) or [] if j["id"] > self._id0]
            self.job = min(newer, key=lambda j: j["id"]) if newer else None
            if self.job is None:
                self._stop.wait(self._interval)
        while not self._stop.is_set() and self.job is not None:
            self.job = jobs.detail(self.job["id"])
            if self.job["status"] in ("success", "error"):
                self.ended = time.time()
                return
            self._stop.wait(self._interval)

    def seconds(self, timeout: float = 60) -> float:
        """The job's duration once it ended (waits up to `timeout` for that)."""
        self._thread.join(timeout)
        self._stop.set()
        if self.created is None or self.ended is None:
            raise RuntimeError("the emulator's job was not seen to end")
        return self.ended - self.created


@dataclass
class Side:
    """One load of the file: saved -> loaded, the job inside it, the bytes that went up."""

    saved_to_loaded: float
    job: float
    settle: float
    uploaded_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def client_side(self) -> float:
        return self.saved_to_loaded - self.settle - self.job


class RunningDaemon:
    """A `keboola-sync run` with production timings and stable_seconds 1, warmed up by one small load
    into `folder` (bucket created, S3 client built), so a measured load pays neither."""

    def __init__(self, tmp: Path, emu: Emulator, folder: str, src: Path | None = None) -> None:
        config: dict[str, dict[str, Any]] = {k: dict(v) for k, v in PRODUCTION.items()}
        config["watch"]["stable_seconds"] = SETTLE_SECONDS
        config["upload"].pop("gzip_level")  # the daemon's own choice (issue 18.2), not a pinned level
        env = {"PYTHONPATH": str(src)} if src is not None else None
        self.daemon = Daemon(tmp, emu, config, env)
        self.emu = emu
        self.folder = folder
        self.staging = tmp / "staging"
        self.staging.mkdir(exist_ok=True)
        self.tail = LogTail(self.daemon.log_file)
        try:
            self._start(config)
            self.drop(write_csv(tmp / "warmup.csv", 20_000), "warmup")
        except BaseException:
            self.daemon.kill()  # a daemon that never got going must not outlive the benchmark
            raise

    def _start(self, config: dict[str, dict[str, Any]]) -> None:
        """Start and wait for the watcher. An older checkout (--baseline-src) refuses config keys it
        predates (e.g. keboola.max_requests_per_second): those are dropped, it never had them."""
        for _ in range(10):
            self.daemon.start()
            alive = lambda: self.daemon.alive  # noqa: E731
            try:
                self.tail.wait(lambda line: STARTED in line, 120, "the daemon's start-up line", alive=alive)
                return
            except AssertionError:
                unknown = UNKNOWN_KEY.search(self.daemon.output())
                if self.daemon.alive or unknown is None or unknown.group(2) not in config.get(unknown.group(1), {}):
                    raise AssertionError(f"the daemon did not start: {self.daemon.output()[-1500:]}") from None
                del config[unknown.group(1)][unknown.group(2)]
                self.daemon.write_config(config)
        raise AssertionError(f"the daemon did not start: {self.daemon.output()[-1500:]}")

    def drop(self, data: Generated, name: str, timeout: float = 3600) -> Side:
        """Copy `data` in beside the watched folder, rename it in, wait for its load line."""
        staged = self.staging / f"{name}.csv"
        shutil.copyfile(data.path, staged)
        target = self.daemon.watch / self.folder / f"{name}.csv"
        target.parent.mkdir(exist_ok=True)
        rel = f"{self.folder}/{name}.csv"
        stats0 = self.emu.stats()
        clock = JobClock(self.emu)
        first_line = len(self.tail.lines)
        assert self.daemon.proc is not None
        with RssSampler(self.daemon.proc.pid) as rss:
            os.replace(staged, target)
            saved = time.time()
            line = self.tail.wait(
                lambda x: (p := parse_load_line(x)) is not None and p.rel_path == rel,
                timeout,
                f"the load line of {rel}",
                alive=lambda: self.daemon.alive,
            )
        job = clock.seconds()
        load = parse_load_line(line)
        assert load is not None
        if load.rows is not None and load.rows != data.rows:
            raise RuntimeError(f"{rel}: the daemon loaded {load.rows} rows, the file has {data.rows}")
        level = next((m.group(1) for x in self.tail.lines[first_line:] if (m := LEVEL_LINE.search(x))), None)
        loaded = log_time(line)
        stats = self.emu.stats()
        jobs = sum(stats["jobs"].values()) - sum(stats0["jobs"].values())
        if jobs != 1:  # the JobClock times one job: a second one would be Keboola time counted as ours
            raise RuntimeError(f"{rel}: expected one job per load, the emulator ran {jobs}")
        return Side(
            saved_to_loaded=loaded - saved,
            job=job,
            settle=SETTLE_SECONDS,
            uploaded_bytes=stats["s3_put_bytes"] - stats0["s3_put_bytes"],
            extra={
                "job_end_to_load_line_s": loaded - (clock.ended or loaded),
                "daemon_line_s": load.seconds,
                "gzip_level": level,
                "peak_rss_mb": rss.peak / 2**20,
            },
        )

    def __enter__(self) -> RunningDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        """SIGTERM, and SIGKILL if it has not exited in time: never left running."""
        try:
            self.daemon.stop()
        finally:
            self.daemon.kill()


def sdk_side(emu: Emulator, data: Generated, bucket: str) -> Side:
    """kbcstorage's plain upload + import (large_files.run_sdk_plain) with the same job clock."""
    bytes0 = emu.stats()["s3_put_bytes"]
    clock = JobClock(emu)
    sdk = run_sdk_plain(emu, data, bucket=bucket)
    return Side(
        saved_to_loaded=sdk["seconds"],
        job=clock.seconds(),
        settle=0.0,
        uploaded_bytes=emu.stats()["s3_put_bytes"] - bytes0,
        extra={"upload_s": sdk["upload_done_s"]},
    )


@dataclass
class Cell:
    """One row of the grid: one file size at one uplink."""

    size_mb: int
    mbps: int
    file_bytes: int
    ours: Side
    sdk: Side
    before: Side | None

    @property
    def transfer(self) -> float:
        return self.ours.uploaded_bytes / (self.mbps * 125_000)


def measure(work: Path, data: Generated, size_mb: int, baseline_src: Path | None = None) -> list[Cell]:
    """The three uplinks for one file, on one emulator and one running daemon (two with a baseline)."""
    cells: list[Cell] = []
    with emulator() as emu, ExitStack() as running:
        ours = running.enter_context(RunningDaemon(work / f"grid{size_mb}-ours", emu, "grid"))
        before = None
        if baseline_src is not None:
            before = running.enter_context(RunningDaemon(work / f"grid{size_mb}-before", emu, "before", baseline_src))
        acclimate = _acclimating_file(work)
        for mbps in CAPS_MBPS:
            emu.set_faults(s3_bandwidth_mbps=mbps)
            name = f"t{size_mb}mb_{mbps}mbit"
            print(f"    {size_mb} MB at {mbps} Mbit/s ...", flush=True)
            ours.drop(acclimate, f"acclimate{size_mb}mb_{mbps}mbit")  # not timed: see _acclimating_file
            mine = ours.drop(data, name)
            old = before.drop(data, name) if before else None
            sdk = sdk_side(emu, data, f"sdk{size_mb}mb{mbps}")
            cells.append(Cell(size_mb, mbps, data.size, mine, sdk, old))
    return cells


def _acclimating_file(work: Path) -> Generated:
    """A file our daemon loads, untimed, at each uplink before the measured one: the gzip level follows
    the uplink measured on earlier big uploads (upload.gzip_level: auto), so a user whose uplink is X has
    a daemon that has seen X. Without it the first cell at a new cap would be timed at the previous cap's
    level. Big enough to be gzipped (over gzip_threshold_mb, 50) and measured (8 MB or more on the wire)."""
    return write_csv(work / "data" / f"acclimate{ACCLIMATE_MB}.csv", ACCLIMATE_MB * 1_000_000)


def grid_rows(number: int, cells: list[Cell], target_size_mb: int = TARGET_MB) -> list[Result]:
    """Two rows per cell (three with a baseline): ours vs the compressed bytes' transfer, ours vs
    kbcstorage, ours vs before. Only the target cell (300 MB at 100 Mbit/s) is judged."""
    rows: list[Result] = []
    for c in cells:
        label = f"{c.file_bytes / MB:.0f} MB CSV at {c.mbps} Mbit/s"
        judged = c.size_mb == target_size_mb and c.mbps == TARGET_MBPS
        ratio = c.ours.client_side / c.transfer if c.transfer else None
        details = {"cell": _asdict(c), "transfer_s": c.transfer}
        rows.append(
            Result(
                number,
                f"{label}: ours client side vs the compressed bytes' transfer",
                "s",
                c.ours.client_side,
                c.transfer,
                f"{c.ours.uploaded_bytes / MB:.1f} MB at the cap",
                ratio,
                f"<= {TARGET_RATIO}x" if judged else f"report (<= {TARGET_RATIO}x at {TARGET_MB} MB/{TARGET_MBPS})",
                (ratio is not None and ratio <= TARGET_RATIO) if judged else None,
                details=details,
                notes=_notes(c),
            )
        )
        rows.append(
            Result(
                number,
                f"{label}: kbcstorage plain upload + import, client side",
                "s",
                c.ours.client_side,
                c.sdk.client_side,
                "kbcstorage",
                c.sdk.client_side / c.ours.client_side if c.ours.client_side > 0 else None,
                "report (x faster; ~4x at 300 MB/100)",
                None,
                details=details,
            )
        )
        if c.before is not None:
            slower = c.ours.client_side / c.before.client_side if c.before.client_side > 0 else None
            rows.append(
                Result(
                    number,
                    f"{label}: ours client side vs before (--baseline-src)",
                    "s",
                    c.ours.client_side,
                    c.before.client_side,
                    "before",
                    slower,
                    f"no slower (<= {BEFORE_MARGIN}x)",
                    slower is not None and slower <= BEFORE_MARGIN,
                    details=details,
                )
            )
    return rows


def gzipped_size_mb(sizes_mb: tuple[int, ...]) -> int:
    """The smallest grid size the daemon gzips (upload.gzip_threshold_mb): the gzip-level rows' file,
    so that --quick's rows show a level too (its 30 MB file goes up as it is)."""
    threshold = float(PRODUCTION["upload"]["gzip_threshold_mb"])
    return min((mb for mb in sizes_mb if mb >= threshold), default=max(sizes_mb))


def level_rows(number: int, cells: list[Cell]) -> list[Result]:
    """The gzip level the daemon chose per uplink and the bytes it sent (issue 18.2), from the grid's
    own loads: the level from the daemon's log when it names one, else the configured default."""
    rows = []
    for c in cells:
        level = c.ours.extra.get("gzip_level") or "not logged (upload.gzip_level default)"
        up_mb = c.ours.uploaded_bytes / MB
        rows.append(
            Result(
                number,
                f"gzip level at {c.mbps} Mbit/s ({c.file_bytes / MB:.0f} MB CSV): level {level}",
                "MB",
                up_mb,
                c.file_bytes / MB,
                "the CSV",
                c.file_bytes / MB / up_mb if up_mb else None,
                "report (x smaller)",
                None,
                details={"cell": _asdict(c)},
                notes=[f"{up_mb:.1f} MB on the wire: {c.transfer:.1f} s at the cap"],
            )
        )
    return rows


def _notes(c: Cell) -> list[str]:
    o, s = c.ours, c.sdk
    notes = [
        f"ours saved -> loaded {o.saved_to_loaded:.2f} s = settle {o.settle:.0f} s + job {o.job:.2f} s + client "
        f"{o.client_side:.2f} s; job end -> load line {o.extra['job_end_to_load_line_s']:.2f} s; "
        f"peak RSS {o.extra['peak_rss_mb']:.0f} MB",
        f"kbcstorage saved -> loaded {s.saved_to_loaded:.2f} s = job {s.job:.2f} s + client {s.client_side:.2f} s "
        f"(upload {s.extra['upload_s']:.2f} s of {s.uploaded_bytes / MB:.0f} MB)",
    ]
    if c.before is not None:
        b = c.before
        notes.append(
            f"before saved -> loaded {b.saved_to_loaded:.2f} s = job {b.job:.2f} s + client {b.client_side:.2f} s "
            f"({b.uploaded_bytes / MB:.1f} MB up)"
        )
    return notes


def _asdict(c: Cell) -> dict[str, Any]:
    def side(s: Side | None) -> dict[str, Any] | None:
        if s is None:
            return None
        return {
            "saved_to_loaded_s": s.saved_to_loaded,
            "job_s": s.job,
            "settle_s": s.settle,
            "client_side_s": s.client_side,
            "uploaded_bytes": s.uploaded_bytes,
            **s.extra,
        }

    sides = {"ours": side(c.ours), "sdk": side(c.sdk), "before": side(c.before)}
    return {"size_mb": c.size_mb, "mbps": c.mbps, "file_bytes": c.file_bytes, **sides}
