"""`keboola-emulator`: parse flags, start both servers, print the READY line, run until SIGTERM.

The READY line is a fixed interface (architecture.md §1): exactly
`READY api=http://127.0.0.1:P s3=http://127.0.0.1:Q`, flushed, once both ports listen; with
`--file-storage azure|gcp` it adds ` azure=URL` or ` gcs=URL` after them.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from keboola_emulator.faults import FaultSettings
from keboola_emulator.naming import COLUMN_LOCALES, set_column_locale

DESCRIPTION = """\
A local emulator of the Keboola Storage API (/v2/storage/...) plus S3-compatible file storage
(moto) on a second port. Point kbcstorage at the API URL and set AWS_ENDPOINT_URL_S3 to the
S3 URL. Prints `READY api=... s3=...` on stdout when both listen; stops on SIGTERM/SIGINT.

Fault flags (also at run time: GET/POST /_emulator/faults, POST /_emulator/faults/reset;
counters at GET /_emulator/stats). Faults apply to /v2/storage requests only, never to
/_emulator/*.
"""


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="keboola-emulator", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--port", type=int, default=0, metavar="P", help="API port on 127.0.0.1 (0 = pick a free one)")
    p.add_argument("--s3-port", type=int, default=0, metavar="Q", help="S3 port on 127.0.0.1 (default: a free one)")
    p.add_argument(
        "--token",
        default="local-dev-token",
        metavar="T",
        help="the accepted master token (default: local-dev-token); others get 401",
    )
    p.add_argument(
        "--readonly-token",
        default=None,
        metavar="T",
        help="also accept this token with read-only rights (canManageBuckets=false, writes -> 403)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="D",
        help="keep buckets, tables, files, jobs and S3 objects here across restarts "
        "(default: a temporary directory removed at exit)",
    )
    p.add_argument(
        "--feature",
        action="append",
        default=[],
        metavar="NAME",
        help="a project feature, listed in the index's `features` and the token's `owner.features` "
        "(repeatable); `disable-legacy-bucket-prefix` creates buckets without `c-` (in.sales)",
    )
    p.add_argument(
        "--column-locale",
        choices=COLUMN_LOCALES,
        default="C.UTF-8",
        help="the server locale Keboola's column-name sanitizer runs in (§12: UNCONFIRMED for production); "
        "it decides letters outside Windows-1250: C.UTF-8 gives Ørsted -> Orsted, C gives Ørsted -> rsted",
    )
    p.add_argument(
        "--file-storage",
        choices=("aws", "azure", "gcp"),
        default="aws",
        help="which cloud the stack keeps files in (§2.1): aws = S3 (moto, in process), azure = Azurite, "
        "gcp = gcp-storage-emulator; the READY line then adds azure=URL or gcs=URL "
        "(GCS clients: STORAGE_EMULATOR_HOST=<gcs URL>)",
    )
    p.add_argument("--log-level", default="WARNING", help="stderr log level (DEBUG logs each request line)")
    p.add_argument("--seed", type=int, default=None, help="seed the fault dice (reproducible runs)")
    f = p.add_argument_group("faults")
    f.add_argument(
        "--fail-rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="fraction R of API requests answered 500, 502 or 503 (503 = maintenance, Retry-After)",
    )
    f.add_argument(
        "--rate-limit-rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="fraction R of API requests answered 429 with Retry-After: 1",
    )
    f.add_argument(
        "--drop-rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="fraction R of API requests whose connection is closed without any response",
    )
    f.add_argument(
        "--latency-ms",
        type=_non_negative,
        default=0,
        metavar="N",
        help="add N milliseconds before every API request is handled",
    )
    f.add_argument(
        "--job-seconds",
        type=_non_negative,
        default=0.0,
        metavar="N",
        help="every job lasts at least N seconds (stays `processing`)",
    )
    f.add_argument(
        "--fail-jobs",
        type=_rate,
        default=0.0,
        metavar="R",
        help="fraction R of jobs end in `error` with code storage.jobs.internalError",
    )
    f.add_argument(
        "--s3-bandwidth-mbps",
        type=_non_negative,
        default=0.0,
        metavar="N",
        help="cap total S3 upload throughput at N megabits/s (0 = unlimited)",
    )
    f.add_argument(
        "--lost-response-rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="fraction R of API requests that are fully processed, then their connection is "
        "closed without the response (a lost answer: did my import POST happen?)",
    )
    f.add_argument(
        "--cloud-chunk-fail-rate",
        type=_rate,
        default=0.0,
        metavar="R",
        help="with --file-storage azure|gcp: fraction R of Azure Put Block / GCS resumable-chunk requests "
        "that are stored, then answered 503 (the client must re-send the block / resume the session)",
    )
    f.add_argument(
        "--fault-path",
        action="append",
        default=[],
        metavar="SUBSTRING",
        help="limit request faults to paths containing SUBSTRING (repeatable; default: all)",
    )
    return p


def _limit_malloc_arenas() -> None:
    """glibc gives each thread its own malloc arena; with a thread per request that fragments RSS
    far beyond the live data (the 150 MB target). Two arenas are plenty for an I/O-bound server.
    A fixed mmap threshold keeps multi-MB request bodies (S3 parts) in mmap'ed blocks that go back
    to the OS when freed (glibc's adaptive threshold would move them into the arenas)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def _sqlite_without_memory_statistics() -> None:
    """SQLite counts every allocation in global statistics under a global mutex (MEMSTATUS, on by
    default); a table import makes several allocations per cell, and that bookkeeping was ~10 % of
    an import's CPU. Nothing here reads the statistics (no soft heap limit, no
    sqlite3_memory_used), so switch them off. sqlite3_config works only before SQLite initialises,
    which importing Python's sqlite3 module does, hence here, before the server's imports; when it
    is too late (or the library is not found) SQLite just keeps its default."""
    if "_sqlite3" in sys.modules or sys.platform != "linux":  # variadic call: the Linux ABIs only
        return
    try:
        sqlite = ctypes.CDLL("libsqlite3.so.0")  # the library Python's _sqlite3 links on Linux
        sqlite.sqlite3_config(9, ctypes.c_int(0))  # SQLITE_CONFIG_MEMSTATUS, off
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _limit_malloc_arenas()
    _sqlite_without_memory_statistics()
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s keboola-emulator %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("azure").setLevel(logging.WARNING)  # per-request header dumps at INFO
    try:
        from keboola_emulator.server import EmulatorServer, Options  # heavy imports after --help
    except ModuleNotFoundError as exc:  # moto, Flask, ...: the optional extra, not in the runtime image
        print(
            f"keboola-emulator: {exc}. The emulator needs its extra: pip install 'keboola-sync[emulator]'"
            " (in Docker: the image's `emulator` target, docker build --target emulator).",
            file=sys.stderr,
        )
        return 2

    faults = FaultSettings(
        fail_rate=args.fail_rate,
        rate_limit_rate=args.rate_limit_rate,
        drop_rate=args.drop_rate,
        latency_ms=int(args.latency_ms),
        job_seconds=args.job_seconds,
        fail_jobs=args.fail_jobs,
        s3_bandwidth_mbps=args.s3_bandwidth_mbps,
        lost_response_rate=args.lost_response_rate,
        cloud_chunk_fail_rate=args.cloud_chunk_fail_rate,
        paths=tuple(args.fault_path),
    )
    set_column_locale(args.column_locale)
    options = Options(
        port=args.port,
        s3_port=args.s3_port,
        token=args.token,
        readonly_token=args.readonly_token,
        data_dir=args.data_dir,
        faults=faults,
        seed=args.seed,
        file_storage=args.file_storage,
        features=tuple(dict.fromkeys(args.feature)),
    )
    try:
        server = EmulatorServer(options)
    except RuntimeError as exc:  # a cloud emulator that is not installed or did not start
        print(f"keboola-emulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    print(server.ready_line, flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
