"""The configuration in force while the daemon runs, and how an edit of config.yaml or .env reaches it.

Why one holder: `Config` is frozen, so a reload never mutates it. The edited file is validated exactly as
at start-up (`config.load_config`) into a new `Config`, which is swapped into `LiveConfig` in one
assignment; the rooms that behave by it (sync, load, scheduler, daemon) read `live.config` per use, so
each use sees the old or the new configuration, never half of each. The keys in `LIVE_KEYS` take effect
at once; every other key shaped something built at start-up (a path, the Keboola URL, the stage) and
keeps its running value until a restart, which one WARNING says. A key added to the schema later is
restart-only until someone makes its room read it per use and lists it here.

Files are watched by their stat, not by file events: a stat every few seconds is cheap, notices an
editor's atomic replace (a new inode) and works where events never arrive (Docker Desktop bind mounts).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import TOKEN_ENV, Config, env_file_token, load_config, schema_keys, values, with_values
from .errors import ConfigError
from .layout import Layout
from .state import FileRecord, LedgerState

# How often the daemon looks at config.yaml and .env (one stat each).
FILES_POLL_SECONDS = 2.0

LIVE_KEYS = frozenset(
    {
        "keboola.request_timeout_seconds",
        "keboola.job_timeout_seconds",
        "keboola.job_poll_max_seconds",
        "keboola.max_requests_per_second",
        "watch.stable_seconds",
        "watch.rescan_seconds",
        "watch.observer",
        "watch.polling_interval_seconds",
        "watch.csv_extensions",
        "watch.ignore_patterns",
        "mapping.on_invalid_name",
        "mapping.existing_tables",
        "csv.on_header_change",
        "csv.sniff_bytes",
        "csv.delimiters",
        "upload.concurrency",
        "upload.gzip_threshold_mb",
        "upload.gzip_level",
        "upload.gzip_threads",
        "upload.multipart_threshold_mb",
        "upload.multipart_chunk_mb",
        "upload.multipart_concurrency",
        "retry.max_attempts",
        "retry.initial_backoff_seconds",
        "retry.max_backoff_seconds",
        "retry.failed_retry_seconds",
        "retry.failed_retry_max_seconds",
        "daemon.shutdown_timeout_seconds",
        "daemon.heartbeat_seconds",
        "daemon.health_max_age_seconds",
        "daemon.keboola_max_silence_seconds",
        "logging.level",
        "logging.max_bytes",
        "logging.backup_count",
        "logging.format",
        "logging.console",
        "logging.progress_seconds",
    }
)

# Keys every content verdict may depend on without naming them (the dialect sniffer): when one changes,
# every skipped file is judged again. Other skips are judged again when their message names a changed key
# (each skip names its fix, e.g. "or set csv.on_header_change: load").
REJUDGE_EVERY_SKIP = frozenset({"csv.delimiters", "csv.sniff_bytes"})
# A failed load may have failed because of these settings (a timeout, too few attempts): try again now.
RETRY_FAILED_SECTIONS = ("keboola.", "retry.", "upload.")

DEFAULT_TOKEN_ADVICE = "Put a valid KBC_STORAGE_API_TOKEN in .env and restart keboola-sync"  # noqa: S105 - advice
_token_advice = DEFAULT_TOKEN_ADVICE


def restart_keys() -> tuple[str, ...]:
    """Every key whose change needs a restart (the schema minus `LIVE_KEYS`)."""
    return tuple(key for key in schema_keys() if key not in LIVE_KEYS)


def token_advice() -> str:
    """How to replace a refused token in this deployment (the 401 line of a load ends with it)."""
    return _token_advice


def set_token_advice(advice: str) -> None:
    """Said once at start-up by `run`, which knows where its token came from and watches .env."""
    global _token_advice  # one process-wide fact, decided once at start-up
    _token_advice = advice


def advice_for(env_file: Path, environ: Mapping[str, str], *, in_container: bool) -> str:
    """The rotation that works here: .env is re-read while running; a variable of the process
    environment is not (Compose's `env_file:` is one: `docker compose up -d` recreates the container)."""
    from_file = (
        f"Put a valid KBC_STORAGE_API_TOKEN in {env_file}: the running daemon checks it with Keboola and uses it"
        " within seconds, no restart"
    )
    if env_file.is_file() or TOKEN_ENV not in environ:
        return from_file
    if in_container:
        return (
            "Put a valid KBC_STORAGE_API_TOKEN in .env and run `docker compose up -d` (it recreates the container;"
            " `docker compose restart` does not read .env again), or mount .env at /app/.env to rotate without a"
            " restart (docs/deployment.md)"
        )
    return (
        "Set a valid KBC_STORAGE_API_TOKEN in the environment and restart keboola-sync, or put it in"
        f" {env_file}: the running daemon checks it with Keboola and uses it within seconds"
    )


def in_container() -> bool:
    """Docker and Podman leave these files in every container."""
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()


@dataclass
class ConfigFiles:
    """The files the CLI loads the configuration from, to load them again the same way. Their stats and
    the token in .env are taken when this is made, BEFORE the files are read: an edit made while the
    daemon starts is then noticed as a change, never missed."""

    config_path: Path
    env_file: Path
    explicit: bool  # --config was given: a missing file is an error, as at start-up
    config_watch: FileWatch = field(init=False)
    env_watch: FileWatch = field(init=False)
    env_token: str | None = field(init=False)  # KBC_STORAGE_API_TOKEN as written in .env

    def __post_init__(self) -> None:
        self.config_watch = FileWatch(self.config_path)
        self.env_watch = FileWatch(self.env_file)
        try:
            self.env_token = env_file_token(self.env_file)
        except ConfigError:
            self.env_token = None  # loading says what is wrong with the file

    def load(self) -> Config:
        return load_config(self.config_path, self.env_file, config_path_explicit=self.explicit)


@dataclass(frozen=True)
class _Snapshot:
    config: Config
    layout: Layout


class LiveConfig:
    """The configuration in force and the Layout built from it, swapped together in one assignment.
    `layout`: one built already (e.g. with the bucket prefix the project's features give); a reload
    rebuilds it from the new configuration and keeps that prefix."""

    def __init__(self, config: Config, layout: Layout | None = None) -> None:
        self._now = _Snapshot(config, layout or Layout.from_config(config))

    @property
    def config(self) -> Config:
        return self._now.config

    @property
    def layout(self) -> Layout:
        return self._now.layout

    def swap(self, config: Config) -> None:
        self._now = _Snapshot(config, Layout.from_config(config, bucket_prefix=self._now.layout.bucket_prefix))

    def use_bucket_prefix(self, prefix: str) -> None:
        """The prefix Keboola gives bucket names in this project ("c-" or none), known once connected."""
        now = self._now
        self._now = _Snapshot(now.config, replace(now.layout, bucket_prefix=prefix))


class FollowsLiveConfig:
    """For a room holding the LiveConfig: `config` and `layout` are read per use, so a reload reaches
    it without the room keeping a copy that goes stale."""

    live: LiveConfig

    @property
    def config(self) -> Config:
        """The configuration in force now."""
        return self.live.config

    @property
    def layout(self) -> Layout:
        """The naming and ignore rules of the configuration in force."""
        return self.live.layout


@dataclass(frozen=True)
class Reload:
    """What one reload does: `applied` runs from now on; `changed` are the live keys that changed (with
    their new values); `restart` the keys that differ from the running values but wait for a restart."""

    applied: Config
    changed: dict[str, Any]
    restart: dict[str, Any]


def plan(running: Config, loaded: Config) -> Reload:
    """Compare key by key; restart-only keys keep their running value, the token in use stays."""
    old, new = values(running), values(loaded)
    changed = {key: value for key, value in new.items() if key in LIVE_KEYS and value != old[key]}
    restart = {key: value for key, value in new.items() if key not in LIVE_KEYS and value != old[key]}
    applied = with_values(loaded, {key: old[key] for key in restart})
    return Reload(replace(applied, token=running.token, source=loaded.source), changed, restart)


def show(value: Any) -> str:
    """A value as config.yaml writes it, for the one INFO line of a reload."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return str(value)


def to_judge_again(records: Iterable[FileRecord], changed: Iterable[str]) -> tuple[list[FileRecord], list[FileRecord]]:
    """(skipped files whose verdict depended on a changed key, failed files to try again now)."""
    keys = set(changed)
    every_skip = bool(keys & REJUDGE_EVERY_SKIP)
    retry_failed = any(key.startswith(RETRY_FAILED_SECTIONS) for key in keys)
    skipped, failed = [], []
    for record in records:
        if record.in_flight:
            continue
        if record.state == LedgerState.SKIPPED and (every_skip or any(k in (record.error or "") for k in keys)):
            skipped.append(record)
        elif record.state == LedgerState.FAILED and retry_failed:
            failed.append(record)
    return skipped, failed


_UNSEEN = (-1, -1, -1, -1)  # a stat no file has: nothing was looked at yet


class FileWatch:
    """Notices that a file changed by its stat (device, inode, size, mtime; None while it is missing).
    A change counts once the stat stayed the same for one more look, so a file caught half-written by an
    editor is not read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._known = self._stat()
        self._candidate: tuple[int, int, int, int] | None = _UNSEEN

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)  # follows a symlink: /app/config.yaml -> /config/config.yaml
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> bool:
        now = self._stat()
        if now == self._known:
            self._candidate = _UNSEEN
            return False
        if now != self._candidate:
            self._candidate = now
            return False
        self._known, self._candidate = now, _UNSEEN
        return True

    def settle(self) -> None:
        """The file was just read (a SIGHUP reload): its current stat is the known one."""
        self._known, self._candidate = self._stat(), _UNSEEN
