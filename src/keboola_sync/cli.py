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
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import Config, load_config
from .errors import ConfigError
from .logs import add_secret, redact, setup_console_logging, setup_logging

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


def _load(args: argparse.Namespace) -> Config:
    explicit = hasattr(args, "config")
    return load_config(
        getattr(args, "config", DEFAULT_CONFIG), getattr(args, "env_file", DEFAULT_ENV), config_path_explicit=explicit
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    held: list[int] = []
    if args.command in ("run", "sync"):
        # Until the daemon's own handlers are in place (its modules take a second or more to load), a
        # stop is held, not obeyed: SIGTERM there used to kill the process with exit 143, mid start-up.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, frame: held.append(signum))
    try:
        config = _load(args)
    except ConfigError as exc:
        _print(f"keboola-sync: configuration error: {exc}", err=True)
        return 2
    if config.token:
        add_secret(config.token)  # from here on nothing we print or log can show it
    try:
        if args.command in ("run", "sync"):
            return _run(config, once=args.command == "sync", held=held)
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


def _print(text: str, *, err: bool = False) -> None:
    """Every line the CLI prints goes through the token redaction: an error from a server that is not
    Keboola may echo the token back, and stdout/stderr are not log files we control."""
    print(redact(text), file=sys.stderr if err else sys.stdout)


def _run(config: Config, *, once: bool, held: list[int]) -> int:
    from .daemon import Daemon
    from .memory import return_big_buffers_to_the_os
    from .preflight import check_writable_dirs

    return_big_buffers_to_the_os()
    check_writable_dirs(config)
    setup_logging(config.logging, secrets=[config.token] if config.token else [])
    for warning in config.warnings:
        log.warning("%s", warning)
    daemon = Daemon(config)
    daemon.install_signal_handlers(early=held)
    code = daemon.run(once=once)
    if daemon.abandon.is_set():
        # An abandoned upload may still sit in boto3's (non-daemon) transfer threads; the ledger is
        # closed and consistent, so leave now instead of waiting for them at interpreter exit.
        logging.shutdown()
        os._exit(code)
    return code


def _check(config: Config) -> int:
    """Everything `run` checks at start-up, printed as it goes, without starting to sync."""
    from .config import check_writable_dir
    from .preflight import check_folder, connect

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
    try:
        _, info = connect(config)
        say(
            True,
            f"Keboola {config.keboola.url}: token accepted, project '{info.project_name}' "
            f"({info.project_id}), can create buckets: {'yes' if info.can_manage_buckets else 'no'}, "
            f"file storage: {info.file_storage_provider}",
        )
    except ConfigError as exc:
        say(False, str(exc))
    return 0 if ok else 2


def _status(config: Config, *, as_json: bool) -> int:
    from .status import collect

    rows = collect(config)
    if as_json:
        for row in rows:
            _print(json.dumps(row))
        return 0
    if not rows:
        _print(f"no CSV files in {config.watch.path}")
        return 0
    headers = ("FILE", "TABLE", "STATE", "LAST LOAD", "ROWS", "ERROR")
    table = [headers] + [
        (
            r["file"],
            r["table_id"] or "-",
            r["state"],
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["last_load_at"])) if r["last_load_at"] else "-",
            str(r["rows"]) if r["rows"] is not None else "-",
            (r["error"] or "")[:120],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    for row in table:
        _print("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)) + "  " + row[-1])
    return 0


def _health(config: Config) -> int:
    from .health import Health

    healthy, why = Health.check(config)
    _print(why)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
