"""Start-up checks: everything `run`, `sync --once` and `check` must know before anything is synced.

Each check raises a `ConfigError` naming the setting and the fix (exit code 2), so a wrong folder, an
unwritable directory or a refused token stops the daemon at once instead of failing file by file.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from .config import Config, check_writable_dir
from .errors import ConfigError
from .lock import FileLock, read_holder
from .spool import claim_run_dir
from .storage import Meter, Storage, StorageError, TokenInfo, TokenRejected
from .storage.probe import probe_stack

log = logging.getLogger("keboola_sync.daemon")


class StartupError(ConfigError):
    """Start-up cannot go on (bad token, unreachable stack, missing folder): exit code 2."""


def check_folder(path: Path) -> None:
    """The watched folder exists, is a folder and can be listed."""
    if not path.exists():
        raise StartupError(
            "watch.path",
            f"the watched folder {path} does not exist. Create it or fix watch.path (in Docker: the WATCH_DIR mount)",
        )
    if not path.is_dir():
        raise StartupError("watch.path", f"{path} is not a folder. Point watch.path at a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise StartupError("watch.path", f"the watched folder {path} cannot be read. Fix its permissions")


def writable_dirs(config: Config) -> tuple[tuple[str, Path], ...]:
    """(config key, directory) the daemon writes to; `check` also lists the health file's folder."""
    return (
        ("logging.file", config.logging.file.parent),
        ("state.path", config.state.path.parent),
        ("upload.spool_dir", config.upload.spool_dir),
    )


def check_writable_dirs(config: Config) -> None:
    """Before logging is set up: the log, ledger and spool directories can be created and written."""
    for key, path in writable_dirs(config):
        check_writable_dir(path, key)


def ledger_lock_path(config: Config) -> Path:
    """`<state.path>.lock`: beside the ledger, so every process that could open the ledger sees it."""
    return config.state.path.with_name(config.state.path.name + ".lock")


def lock_ledger(config: Config) -> FileLock:
    """One process per ledger: a second `run` or a `sync --once` beside a running daemon would load every
    change twice, race on creates and clean up the other's spools. The OS drops the lock when its process
    dies (kill -9 included), so it is never stale. `status` and `health` only read and take no lock."""
    path = ledger_lock_path(config)
    try:
        config.state.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock.try_acquire(path)
    except OSError as exc:
        raise StartupError(
            "state.path",
            f"cannot create the lock file {path} ({exc.strerror or exc}). Make {path.parent} writable "
            "or point state.path at a writable folder",
        ) from exc
    if lock is None:
        raise StartupError(
            "state.path",
            f"another keboola-sync process ({read_holder(path).describe()}) is using the state database "
            f"{config.state.path}; only one process may use a state.path at a time. Stop it first (it "
            "already syncs every change; `keboola-sync status` and `health` work beside it), or point "
            "state.path at another file",
        )
    if lock.unsupported is not None:
        log.warning(
            "cannot lock %s (%s): the filesystem of state.path does not support file locks, so nothing stops "
            "a second keboola-sync from using the same ledger; make sure only one runs",
            path,
            lock.unsupported.strerror or lock.unsupported,
        )
    lock.write_holder()
    return lock


def claim_spool(config: Config) -> tuple[Path, FileLock]:
    """This process's own spool sub-directory (see `spool.claim_run_dir`), as a start-up check."""
    try:
        return claim_run_dir(config.upload.spool_dir)
    except OSError as exc:
        raise StartupError(
            "upload.spool_dir",
            f"cannot create a spool folder in {config.upload.spool_dir} ({exc.strerror or exc}). "
            "Free disk space or fix upload.spool_dir",
        ) from exc


def unreachable(config: Config, why: str) -> StartupError:
    """The one wording for a stack URL that does not lead to Keboola (`run`, `sync --once` and `check`)."""
    return StartupError(
        "keboola.url",
        f"cannot reach Keboola at {config.keboola.url}: {why}. Check KBC_STORAGE_API_HOST (or keboola.url) "
        "and the network",
    )


def check_stack(config: Config) -> None:
    """One quick probe of the stack URL (no token sent): raises the StartupError that says plainly why not."""
    probe = probe_stack(config.keboola.url)
    if not probe.ok:
        raise unreachable(config, probe.problem)


def connect(
    config: Config, abandon: threading.Event | None = None, meter: Meter | None = None, *, preload: bool = False
) -> tuple[Storage, TokenInfo]:
    """Verify the token and that it may write (§1.3). Any problem is a StartupError naming the fix.
    `preload`: the caller will read tables or load files, so the SDK's table and file endpoints are
    imported in the background while the token check waits for Keboola (`Storage.preload`)."""
    token = config.require_token()
    storage = Storage(
        config.keboola.url,
        token,
        keboola=config.keboola,
        retry=config.retry,
        upload=config.upload,
        progress_seconds=config.logging.progress_seconds,
        abandon=abandon,
        meter=meter,
    )
    if preload:
        storage.preload()
    try:
        info = storage.verify_token()
    except TokenRejected as exc:
        raise StartupError(
            "KBC_STORAGE_API_TOKEN",
            f"Keboola at {config.keboola.url} refused the token ({exc.code or exc.status}). "
            "Check KBC_STORAGE_API_TOKEN in .env and that KBC_STORAGE_API_HOST is the stack of "
            "your project",
        ) from exc
    except StorageError as exc:
        probe = probe_stack(config.keboola.url)
        raise unreachable(config, probe.problem if not probe.ok else str(exc)) from exc
    writable = [b for b, p in info.bucket_permissions.items() if p in ("write", "manage")]
    if not info.can_manage_buckets and not writable:
        raise StartupError(
            "KBC_STORAGE_API_TOKEN",
            "the token can neither create buckets nor write to any bucket. Create a token "
            "with 'Full access to all buckets' (canManageBuckets) in Keboola",
        )
    if not info.can_manage_buckets:
        log.warning(
            "the token cannot create buckets; only folders whose buckets exist and are writable (%s) will sync",
            ", ".join(writable),
        )
    return storage, info
