"""config.yaml + .env -> one frozen, validated `Config`.

Why so strict: a daemon that guesses (clamps a bad value, ignores a misspelt key) fails much later,
far from the mistake. Every key is declared once below, with its type, default and the values that
make sense; anything else stops start-up with a `ConfigError` that names the dotted key, the bad value
and what is allowed. The schema mirrors config.yaml.example key for key (a test keeps them equal).

The token is read from the environment only (KBC_STORAGE_API_TOKEN, possibly via .env) and is kept out
of `repr`, so printing a Config never leaks it.
"""

from __future__ import annotations

import math
import os
import tempfile
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from keboola_sync import configcheck as rule
from keboola_sync.configcheck import LOG_LEVELS as LOG_LEVELS  # re-exported: the CLI and tests name them here
from keboola_sync.configcheck import MAX_SECONDS as MAX_SECONDS
from keboola_sync.configcheck import Check
from keboola_sync.configfile import kind_of as _kind
from keboola_sync.configfile import read_env_file, read_yaml
from keboola_sync.errors import ConfigError

TOKEN_ENV = "KBC_STORAGE_API_TOKEN"  # noqa: S105 - the variable name, not a token
HOST_ENV = "KBC_STORAGE_API_HOST"


def _opt(default: Any, check: Check | None = None) -> Any:
    return field(default=default, metadata={"check": check})


# --- the schema: one frozen dataclass per section, field names = keys -------------------------------
@dataclass(frozen=True)
class KeboolaConfig:
    url: str = _opt("https://connection.keboola.com", rule.http_url)
    stage: str = _opt("in", rule.one_of("in", "out"))
    request_timeout_seconds: float = _opt(60.0, rule.seconds())
    job_timeout_seconds: float = _opt(3600.0, rule.seconds())
    job_poll_max_seconds: float = _opt(5.0, rule.seconds())
    # Storage API requests a second at most (a token bucket, issue 16.7); 0 = no limit.
    max_requests_per_second: float = _opt(50.0, rule.requests_per_second)


@dataclass(frozen=True)
class WatchConfig:
    path: Path = _opt(Path("/data"))  # noqa: RUF009 - Path is immutable
    stable_seconds: float = _opt(2.0, rule.seconds(zero_ok=True))
    rescan_seconds: float = _opt(300.0, rule.seconds())
    observer: str = _opt("auto", rule.one_of("auto", "native", "polling"))
    polling_interval_seconds: float = _opt(2.0, rule.seconds())
    csv_extensions: tuple[str, ...] = _opt((".csv",), rule.extensions)
    ignore_patterns: tuple[str, ...] = _opt((), rule.patterns)


@dataclass(frozen=True)
class MappingConfig:
    on_invalid_name: str = _opt("sanitize", rule.one_of("sanitize", "reject"))
    # A table that exists in Keboola without keboola-sync's mark is someone else's data: not loaded unless
    # adopted (architecture §1, a fixed key).
    existing_tables: str = _opt("skip", rule.one_of("skip", "adopt"))


@dataclass(frozen=True)
class CsvConfig:
    on_header_change: str = _opt("skip", rule.one_of("skip", "load"))
    # The sniffer needs a few complete lines; 64 MiB keeps a huge sample from eating memory.
    sniff_bytes: int = _opt(65536, rule.between(1024, 64 << 20))
    delimiters: str = _opt(",;\t|", rule.delimiters)


@dataclass(frozen=True)
class UploadConfig:
    gzip_threshold_mb: float = _opt(50.0, rule.non_negative)
    # A fixed level 0-9, or `auto`: chosen per load from the measured uplink (gziplevel.py).
    gzip_level: int | str = _opt("auto", rule.gzip_level)
    gzip_threads: int = _opt(0, rule.between(0, 64))  # 0: one per CPU, at most 4
    concurrency: int = _opt(4, rule.at_least(1))
    multipart_threshold_mb: float = _opt(64.0, rule.at_least(5, " (S3 parts are at least 5 MB)"))
    multipart_chunk_mb: float = _opt(16.0, rule.at_least(5, " (S3 parts are at least 5 MB)"))
    multipart_concurrency: int = _opt(4, rule.at_least(1))
    spool_dir: Path = _opt(Path("/tmp/keboola-sync"))  # noqa: RUF009, S108 - documented default

    @property
    def gzip_threshold_bytes(self) -> int:
        return int(self.gzip_threshold_mb * 1024 * 1024)


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = _opt(8, rule.at_least(1))
    initial_backoff_seconds: float = _opt(1.0, rule.seconds())
    max_backoff_seconds: float = _opt(60.0, rule.seconds())
    failed_retry_seconds: float = _opt(300.0, rule.seconds())
    # A file that keeps failing is retried at growing spacing, doubling up to this (issue 13: never a loop).
    failed_retry_max_seconds: float = _opt(21600.0, rule.seconds())


@dataclass(frozen=True)
class StateConfig:
    path: Path = _opt(Path("/state/state.db"))  # noqa: RUF009 - Path is immutable


@dataclass(frozen=True)
class DaemonConfig:
    shutdown_timeout_seconds: float = _opt(30.0, rule.seconds(zero_ok=True))
    health_file: Path = _opt(Path("/state/health.json"))  # noqa: RUF009 - Path is immutable
    heartbeat_seconds: float = _opt(10.0, rule.seconds())
    health_max_age_seconds: float = _opt(60.0, rule.seconds())
    keboola_max_silence_seconds: float = _opt(900.0, rule.seconds())
    # A start-up problem (token, stack, folder, directories, config): exit 2, or stay up unhealthy and look
    # again until it is fixed; `auto` waits in a container (no crash loop) and exits elsewhere.
    startup_problem: str = _opt("auto", rule.one_of("auto", "exit", "wait"))
    startup_retry_max_seconds: float = _opt(300.0, rule.seconds())


@dataclass(frozen=True)
class LoggingConfig:
    file: Path = _opt(Path("/app/logs/keboola-sync.log"))  # noqa: RUF009 - Path is immutable
    level: str = _opt("INFO", rule.log_level)
    max_bytes: int = _opt(104857600, rule.at_least(1024))
    # 0 would make RotatingFileHandler never rotate, i.e. an unbounded log: not allowed.
    backup_count: int = _opt(5, rule.at_least(1, " (0 would never rotate the log)"))
    format: str = _opt("text", rule.one_of("text", "json"))
    console: bool = _opt(True)
    progress_seconds: float = _opt(5.0, rule.seconds())


@dataclass(frozen=True)
class MonitoringConfig:
    listen: str = _opt("", rule.listen)


@dataclass(frozen=True)
class NotifyConfig:
    urls: tuple[str, ...] = _opt((), rule.notify_urls)


# Keys whose values may carry secrets (webhook tokens, passwords): an error never shows the value.
SECRET_KEYS = frozenset({"notify.urls"})

_SECTIONS: dict[str, type] = {
    "keboola": KeboolaConfig,
    "watch": WatchConfig,
    "mapping": MappingConfig,
    "csv": CsvConfig,
    "upload": UploadConfig,
    "retry": RetryConfig,
    "state": StateConfig,
    "daemon": DaemonConfig,
    "logging": LoggingConfig,
    "monitoring": MonitoringConfig,
    "notify": NotifyConfig,
}


@dataclass(frozen=True)
class Config:
    keboola: KeboolaConfig = field(default_factory=KeboolaConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    csv: CsvConfig = field(default_factory=CsvConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    state: StateConfig = field(default_factory=StateConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    token: str | None = field(default=None, repr=False, compare=False)
    source: Path | None = None
    warnings: tuple[str, ...] = ()

    def require_token(self) -> str:
        """The token, or a start-up error that tells the user where to put it."""
        if not self.token or not self.token.strip():
            raise ConfigError(
                TOKEN_ENV,
                f"{TOKEN_ENV} is not set. Put KBC_STORAGE_API_TOKEN=<your Storage API token> in .env"
                " (Keboola: Project -> Settings -> API Tokens) or set it in the environment.",
            )
        return self.token


def defaults() -> Config:
    """Every key at its default, no token: handy for tests."""
    return Config()


def schema_keys() -> tuple[str, ...]:
    """Every dotted key of the schema (`watch.stable_seconds`, ...), in config.yaml.example's order."""
    return tuple(f"{section}.{f.name}" for section, cls in _SECTIONS.items() for f in fields(cls))


def values(config: Config) -> dict[str, Any]:
    """Every dotted key and its value: what a reload compares. The token is not a key."""
    return {
        f"{section}.{f.name}": getattr(getattr(config, section), f.name)
        for section, cls in _SECTIONS.items()
        for f in fields(cls)
    }


def with_values(config: Config, changes: Mapping[str, Any]) -> Config:
    """`config` with some dotted keys set to other values (a reload keeps the running value of a key that
    needs a restart). The sections stay frozen: each changed one is rebuilt whole."""
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        section, name = key.split(".", 1)
        by_section.setdefault(section, {})[name] = value
    rebuilt = {section: replace(getattr(config, section), **names) for section, names in by_section.items()}
    return replace(config, **rebuilt)


def env_file_token(env_file: Path | None) -> str | None:
    """KBC_STORAGE_API_TOKEN as written in the .env file itself (not the environment): what a running
    daemon compares to notice a rotated token. ConfigError when the file cannot be read."""
    token = read_env_file(env_file, []).get(TOKEN_ENV, "").strip()
    return token or None


# --- loading -----------------------------------------------------------------------------------------
def load_config(
    config_path: Path | None = None,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    config_path_explicit: bool = False,
) -> Config:
    """Read, validate and freeze the configuration. Never mutates os.environ.

    A missing config file is fine unless the user named it; a missing .env is always fine (the
    variables may already be in the environment, which wins over .env).
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    warnings: list[str] = []

    raw: dict[str, Any] = {}
    source: Path | None = None
    if config_path is not None:
        if config_path.is_file():
            raw = read_yaml(config_path)
            source = config_path
            # No "readable by other users" warning here: config.yaml never holds the token (.env does), and
            # `chmod 600` on it makes it unreadable for a container whose daemon runs as another uid.
        elif config_path.exists():
            raise ConfigError(str(config_path), f"{config_path} is not a file. Pass the path of a config.yaml.")
        elif config_path_explicit:
            raise ConfigError(
                str(config_path),
                f"{config_path}: config file not found. Check --config, or copy config.yaml.example to {config_path}.",
            )

    merged_env = dict(read_env_file(env_file, warnings))
    # A blank variable counts as unset, so it does not hide .env: Compose can blank the token it would pass
    # at creation and let the daemon read a mounted .env, which a rotation changes (deployment.md).
    merged_env.update({k: v for k, v in env.items() if k in (TOKEN_ENV, HOST_ENV) and v.strip()})

    sections = {name: _build_section(name, cls, raw.pop(name, None)) for name, cls in _SECTIONS.items()}
    if raw:
        key = sorted(raw, key=str)[0]
        raise ConfigError(str(key), f"{key}: unknown section. Allowed sections: {', '.join(_SECTIONS)}.")

    host = (merged_env.get(HOST_ENV) or "").strip()
    if host:
        url = host if "://" in host else f"https://{host}"
        allowed = rule.http_url(url)
        if allowed is not None:
            raise ConfigError(HOST_ENV, f"{HOST_ENV} is {host!r}; it must be {allowed}.")
        sections["keboola"] = KeboolaConfig(**{**_as_dict(sections["keboola"]), "url": url.rstrip("/")})
    else:
        sections["keboola"] = KeboolaConfig(
            **{**_as_dict(sections["keboola"]), "url": sections["keboola"].url.rstrip("/")}
        )

    token = (merged_env.get(TOKEN_ENV) or "").strip() or None
    config = Config(**sections, token=token, source=source, warnings=tuple(warnings))
    _check_outside_watch(config)
    _check_own_files_apart(config)
    return config


def check_writable_dir(path: Path, key: str) -> None:
    """Create `path` if needed and prove we can write there; ConfigError naming key and path if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".keboola-sync-write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            key,
            f"{key}: cannot create or write to {path} ({reason}). Point {key} to a writable directory or"
            " fix its permissions.",
        ) from None


def _build_section(section: str, cls: type, raw: Any) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(section, f"{section}: must be a mapping of keys, got {_kind(raw)} {_show(raw)}.")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = [k for k in raw if k not in known]
    if unknown:
        key = f"{section}.{unknown[0]}"
        hint = ""
        if "token" in str(unknown[0]).lower():
            hint = f" The token never goes in config.yaml: put {TOKEN_ENV} in .env."
        raise ConfigError(key, f"{key}: unknown key. Allowed keys in {section}: {', '.join(known)}.{hint}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{section}.{name}"
        converted = _convert(key, hints[name], value, known[name].default)
        check = known[name].metadata.get("check")
        allowed = check(converted) if check else None
        if allowed is not None:
            shown = "(not shown: it may hold a secret)" if key in SECRET_KEYS else _show(value)
            raise ConfigError(key, f"{key} is {shown}; it must be {allowed}.")
        values[name] = converted
    if cls is LoggingConfig and "level" in values:
        values["level"] = values["level"].upper()
    section_obj = cls(**values)
    _check_cross_field(section, section_obj)
    return section_obj


def _convert(key: str, hint: Any, value: Any, default: Any) -> Any:
    """Type-check one value; an int is fine for a float, a bool is never a number."""
    example = f"e.g. {key.rsplit('.', 1)[-1]}: {_show_default(default)}"
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"{key} is {_show(value)}; it must be true or false ({example}).")
    if hint in (int, int | str):
        return _whole_number(key, hint, value, example)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(key, f"{key} is {_show(value)}; it must be a finite number ({example}).")
            return float(value)
        raise ConfigError(key, f"{key} is {_show(value)}; it must be a number ({example}).")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key, f"{key} is {_show(value)}; it must be a text value ({example}).")
    if hint is Path:
        if isinstance(value, str) and value.strip():
            path = Path(value).expanduser()
            return path if path.is_absolute() else Path.cwd() / path
        raise ConfigError(key, f"{key} is {_show(value)}; it must be a path ({example}).")
    if typing.get_origin(hint) is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        shown = "(not shown: it may hold a secret)" if key in SECRET_KEYS else _show(value)
        raise ConfigError(key, f"{key} is {shown}; it must be a list of text values ({example}).")
    raise AssertionError(f"no converter for {hint!r}")  # pragma: no cover - schema bug


def _whole_number(key: str, hint: Any, value: Any, example: str) -> Any:
    """A whole number, or (hint `int | str`, e.g. upload.gzip_level: 0-9 or auto) a text value too; the
    key's check then says which words and numbers are allowed."""
    if isinstance(value, bool):
        pass  # YAML's true/false is never a number
    elif isinstance(value, int) or (hint is not int and isinstance(value, str)):
        return value
    what = "a whole number" if hint is int else "a whole number or a text value"
    raise ConfigError(key, f"{key} is {_show(value)}; it must be {what} ({example}).")


def _check_cross_field(section: str, obj: Any) -> None:
    if isinstance(obj, RetryConfig) and obj.max_backoff_seconds < obj.initial_backoff_seconds:
        raise ConfigError(
            "retry.max_backoff_seconds",
            f"retry.max_backoff_seconds is {obj.max_backoff_seconds:g}; it must be >= "
            f"retry.initial_backoff_seconds ({obj.initial_backoff_seconds:g}).",
        )
    if isinstance(obj, DaemonConfig) and obj.health_max_age_seconds <= obj.heartbeat_seconds:
        raise ConfigError(
            "daemon.health_max_age_seconds",
            f"daemon.health_max_age_seconds is {obj.health_max_age_seconds:g}; it must be greater than "
            f"daemon.heartbeat_seconds ({obj.heartbeat_seconds:g}) or the daemon always looks unhealthy.",
        )


def _check_outside_watch(config: Config) -> None:
    """We never write into the watched folder (architecture §2): refuse paths that would."""
    watch = _resolved(config.watch.path)
    for key, path in (
        ("upload.spool_dir", config.upload.spool_dir),
        ("state.path", config.state.path),
        ("logging.file", config.logging.file),
        ("daemon.health_file", config.daemon.health_file),
    ):
        resolved = _resolved(path)
        if resolved == watch or watch in resolved.parents:
            raise ConfigError(
                key,
                f"{key} is {str(path)!r}, inside watch.path ({config.watch.path}); keboola-sync never writes"
                f" into the watched folder. Move {key} outside it.",
            )


def _check_own_files_apart(config: Config) -> None:
    """Each file the daemon writes needs a path of its own: a health file on the ledger's path would be
    overwritten by every heartbeat, i.e. the ledger destroyed every few seconds."""
    ledger = config.state.path
    taken: dict[Path, str] = {_resolved(ledger): "state.path"}
    for suffix in ("-wal", "-shm", "-journal"):  # SQLite's companion files of the ledger
        taken[_resolved(ledger.with_name(ledger.name + suffix))] = f"state.path's {suffix} file"
    for key, path in (
        ("logging.file", config.logging.file),
        ("daemon.health_file", config.daemon.health_file),
        ("upload.spool_dir", config.upload.spool_dir),
    ):
        resolved = _resolved(path)
        other = taken.get(resolved)
        if other is not None:
            raise ConfigError(
                key,
                f"{key} is {str(path)!r}, the same path as {other}; the daemon would overwrite one with"
                f" the other. Give {key} a path of its own.",
            )
        taken[resolved] = key


def _resolved(path: Path) -> Path:
    try:
        return path.resolve(strict=False)
    except OSError:  # pragma: no cover - e.g. a symlink loop; compare the plain absolute path
        return Path(os.path.abspath(path))


def _as_dict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _show(value: Any) -> str:
    """The bad value for an error message: short, and typed so `"5"` and `5` look different."""
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        text = {"inf": ".inf", "-inf": "-.inf"}.get(text, ".nan")  # as YAML spells them
    if value is None:
        text = "empty"
    if len(text) > 60:
        text = text[:57] + "..."
    return text


def _show_default(default: Any) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, tuple):
        return "[" + ", ".join(f'"{v}"' for v in default) + "]"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    if isinstance(default, Path):
        return str(default)
    return str(default)
