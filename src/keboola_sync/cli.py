"""Command line: parse, load the config, call one function, map our errors to exit codes in one place.

Exit codes (architecture §1): 0 ok; 1 `sync --once` found files that failed or were skipped, or `health`
is unhealthy; 2 bad configuration, token, stack URL or folder at start-up.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .config import Config, defaults
from .errors import ConfigError
from .live import ConfigFiles
from .logs import add_secret, redact, setup_console_logging, setup_logging
from .startup import StartupWait, waits

log = logging.getLogger("keboola_sync.cli")

DEFAULT_CONFIG = Path("config.yaml")
DEFAULT_ENV = Path(".env")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="configuration file (default: ./config.yaml; missing default = all defaults)",
    )
    common.add_argument(
        "--env-file",
        type=Path,
        default=argparse.SUPPRESS,
        help="file with KBC_STORAGE_API_TOKEN / KBC_STORAGE_API_HOST (default: ./.env)",
    )
    parser = argparse.ArgumentParser(
        prog="keboola-sync",
        parents=[common],
        description="Keep a folder of CSV files in sync with Keboola Storage: each first-level folder is a "
        "bucket, each CSV in it a table, fully reloaded whenever the file changes.",
    )
    parser.add_argument("--version", action="version", version=f"keboola-sync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", parents=[common], help="watch the folder and sync until SIGTERM/SIGINT")
    once = commands.add_parser("sync", parents=[common], help="one full reconcile of the folder, then exit")
    once.add_argument("--once", action="store_true", required=True, help="required: run once and exit")
    once.add_argument(
        "--dry-run",
        action="store_true",
        help="print what the sync would do, file by file; read-only calls only, nothing is written",
    )
    commands.add_parser(
        "plan", parents=[common], help="the same as `sync --once --dry-run`: what a sync would do, changing nothing"
    )
    commands.add_parser(
        "check", parents=[common], help="validate config, token, connectivity and folder access; print what was found"
    )
    status = commands.add_parser("status", parents=[common], help="one row per CSV: table, state, last load")
    status.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    commands.add_parser(
        "health",
        parents=[common],
        help="exit 0 if the running daemon is healthy (heartbeat and Keboola contact), else 1",
    )
    return parser


def _files(args: argparse.Namespace) -> ConfigFiles:
    """The files the configuration comes from; `run` watches them and loads them again when they change."""
    return ConfigFiles(
        getattr(args, "config", DEFAULT_CONFIG), getattr(args, "env_file", DEFAULT_ENV), hasattr(args, "config")
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    held: list[int] = []
    if args.command in ("run", "sync"):
        # Until the daemon's own handlers are in place (its modules take a second or more to load), a
        # stop is held, not obeyed: SIGTERM there used to kill the process with exit 143, mid start-up.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, frame: held.append(signum))
    files = _files(args)
    try:
        config = files.load()
    except ConfigError as exc:
        if args.command == "run" and waits(None):
            return _serve(files, held, None)
        _print(f"keboola-sync: configuration error: {exc}", err=True)
        return 2
    if config.token:
        add_secret(config.token)  # from here on nothing we print or log can show it
    try:
        if args.command == "plan" or getattr(args, "dry_run", False):
            setup_console_logging()
            return _plan(config)
        if args.command == "run" and waits(config):
            return _serve(files, held, config)
        if args.command in ("run", "sync"):
            return _run(config, once=args.command == "sync", files=files, held=held)
        setup_console_logging()
        if args.command == "check":
            return _check(config)
        if args.command == "status":
            return _status(config, as_json=args.json)
        return _health(config)
    except ConfigError as exc:
        log.error("%s", exc)
        _print(f"keboola-sync: {exc}", err=True)
        return 2


def _serve(files: ConfigFiles, held: list[int], config: Config | None) -> int:
    """`run` that never exits 2 on a start-up problem: it stays up, unhealthy, and starts once the problem
    is fixed (in a container by default: `daemon.startup_problem`). Each attempt loads the configuration
    again, so a corrected config.yaml or `.env` counts."""
    from .preflight import check_stack

    stop = threading.Event()
    first = config
    setup_console_logging()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    def attempt() -> int:
        nonlocal first
        current, first = (first or files.load()), None
        if current.token:
            add_secret(current.token)
        if stop.is_set():
            return 0
        # One quick probe (no token, no retries) first: while the stack is down, each look is one request
        # and no retry lines, so the problem stays the one line said when it began.
        setup_logging(current.logging, secrets=[current.token] if current.token else [])
        check_stack(current)
        try:
            return _run(current, once=False, files=files, held=held, on_started=waiting.started)
        finally:
            waiting_handlers()  # the daemon's handlers went with it: ours until the next try

    for signum in (signal.SIGTERM, signal.SIGINT):
        if signum in held:
            stop.set()

    def waiting_handlers() -> None:
        """While waiting, SIGTERM/SIGINT end the wait (exit 0); SIGHUP asks nothing: each look reloads."""
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    waiting_handlers()
    settings = (config or defaults()).daemon
    waiting = StartupWait(stop, settings.startup_retry_max_seconds)

    def health_file() -> Path:
        return settings.health_file

    return waiting.run(attempt, health_file)


def _print(text: str, *, err: bool = False) -> None:
    """Every line the CLI prints goes through the token redaction: an error from a server that is not
    Keboola may echo the token back, and stdout/stderr are not log files we control."""
    print(redact(text), file=sys.stderr if err else sys.stdout)


def _run(
    config: Config, *, once: bool, files: ConfigFiles, held: list[int], on_started: Callable[[], None] | None = None
) -> int:
    from .daemon import Daemon
    from .memory import return_big_buffers_to_the_os
    from .preflight import check_writable_dirs

    return_big_buffers_to_the_os()
    check_writable_dirs(config)
    setup_logging(config.logging, secrets=[config.token] if config.token else [])
    for warning in config.warnings:
        log.warning("%s", warning)
    daemon = Daemon(config, None if once else files)
    daemon.on_started = on_started
    daemon.install_signal_handlers(early=held)
    code = daemon.run(once=once)
    if daemon.abandon.is_set():
        # An abandoned upload may still sit in boto3's (non-daemon) transfer threads; the ledger is
        # closed and consistent, so leave now instead of waiting for them at interpreter exit.
        logging.shutdown()
        os._exit(code)
    return code


def _plan(config: Config) -> int:
    """`sync --once --dry-run`: read-only calls (token, bucket and table details), the ledger opened
    read-only, the local checks without a spool. Exit codes as `sync --once`."""
    from .plan import Planner, Step, exit_code, summary
    from .preflight import check_folder, connect
    from .state import Ledger
    from .storage import StorageError

    check_folder(config.watch.path)
    storage, info = connect(config, preload=True)
    _print(
        f"dry run against {config.keboola.url}, project '{info.project_name}' ({info.project_id}): "
        "nothing is written to Keboola, the ledger or the spool"
    )
    steps: list[Step] = []
    ledger = Ledger(config.state.path, readonly=True)
    try:
        prefix = "c-" if info.legacy_bucket_prefix else ""  # as the daemon predicts it (daemon.py)
        for step in Planner(config, storage, ledger, bucket_prefix=prefix).plan():
            steps.append(step)
            for line in step.lines():
                _print(line)
    except StorageError as exc:
        _print(f"keboola-sync: the dry run stopped: Keboola did not answer a read ({exc})", err=True)
        return 1
    finally:
        ledger.close()
    _print(summary(steps))
    return exit_code(steps)


def _check(config: Config) -> int:
    """Everything `run` checks at start-up, printed as it goes, without starting to sync."""
    from .config import check_writable_dir
    from .preflight import check_folder

    ok = True

    def say(good: bool, text: str) -> None:
        nonlocal ok
        ok = ok and good
        _print(f"{'ok  ' if good else 'FAIL'} {text}")

    say(True, f"configuration: {config.source or 'defaults (no config file)'}")
    for warning in config.warnings:
        _print(f"warn {warning}")
    try:
        check_folder(config.watch.path)
        folders = [e.name for e in os.scandir(config.watch.path) if e.is_dir() and not e.name.startswith(".")]
        say(True, f"folder {config.watch.path}: readable, {len(folders)} folder(s)")
    except ConfigError as exc:
        say(False, str(exc))
    for key, path in (
        ("state.path", config.state.path.parent),
        ("logging.file", config.logging.file.parent),
        ("upload.spool_dir", config.upload.spool_dir),
        ("daemon.health_file", config.daemon.health_file.parent),
    ):
        try:
            check_writable_dir(path, key)
            say(True, f"{key}: {path} is writable")
        except ConfigError as exc:
            say(False, str(exc))
    say(*_check_keboola(config))
    return 0 if ok else 2


def _check_keboola(config: Config) -> tuple[bool, str]:
    """The stack first (one quick probe that tells DNS, refused, timeout and not-Keboola apart), then the
    token with one attempt and a short timeout: `check` answers within seconds, one line per problem."""
    from dataclasses import replace

    from .preflight import check_stack, connect
    from .storage.probe import PROBE_TIMEOUT_SECONDS

    quick = replace(
        config,
        retry=replace(config.retry, max_attempts=1),
        keboola=replace(
            config.keboola, request_timeout_seconds=min(config.keboola.request_timeout_seconds, PROBE_TIMEOUT_SECONDS)
        ),
    )
    try:
        check_stack(config)
        _, info = connect(quick)
    except ConfigError as exc:
        return False, str(exc)
    return True, (
        f"Keboola {config.keboola.url}: token accepted, project '{info.project_name}' "
        f"({info.project_id}), can create buckets: {'yes' if info.can_manage_buckets else 'no'}, "
        f"file storage: {info.file_storage_provider}"
    )


def _status(config: Config, *, as_json: bool) -> int:
    """The daemon's heartbeat first (running? doing what?), then one row per CSV. A watched folder that
    is missing or unreadable is an error (exit 2): an empty table would look like "nothing to sync"."""
    import shutil

    from .preflight import check_folder
    from .status import collect, daemon_state, describe_daemon, render_table

    daemon = daemon_state(config)
    if not as_json:
        for line in describe_daemon(daemon):
            _print(line)
    try:
        check_folder(config.watch.path)
    except ConfigError as exc:
        _print(f"keboola-sync: {exc}", err=True)
        return 2
    rows = collect(config)
    if as_json:
        loading = {job.get("file"): job for job in daemon["now"]}
        for row in rows:
            _print(json.dumps({**row, "now": loading.get(row["file"]), "daemon": daemon}))
        return 0
    if not rows:
        _print(f"no CSV files in {config.watch.path}")
        return 0
    for line in render_table(rows, shutil.get_terminal_size((120, 24)).columns):
        _print(line)
    return 0


def _health(config: Config) -> int:
    from .health import Health

    healthy, why = Health.check(config)
    _print(why)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
