"""Logging set-up: a rotating file and the console, text or JSON lines, and token redaction.

Redaction sits in the formatter, i.e. on the finished line, because that is the only place that sees
everything a line is made of: the message, its %-args, `extra=` fields and the rendered traceback of an
exception (whose text may quote a URL or header holding the token). A filter on the record would miss
the traceback text.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keboola_sync.config import LoggingConfig
from keboola_sync.errors import ConfigError

REDACTED = "***"
MIN_SECRET_LENGTH = 4  # shorter strings would blank out ordinary words
NOISY_LOGGERS = ("urllib3", "watchdog", "werkzeug", "kbcstorage")
# The AWS SDK logs signed requests and temporary S3 credentials at DEBUG: never let it below WARNING.
AWS_LOGGERS = ("botocore", "boto3", "s3transfer")

# Characters that must never reach a log line or a terminal raw: C0 and C1 controls (a newline would
# split one outcome over two lines, ESC would drive the terminal), the Unicode line and paragraph
# separators (editors and `splitlines` break lines there too), bidirectional overrides and isolates
# (they reorder what is shown, e.g. "cod.exe" shown as "exe.doc") and lone surrogates (the bytes of a
# name that is not UTF-8; writing them would fail).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_MARK = "_keboola_sync_handler"  # attribute that tells our handlers from anybody else's (pytest, ...)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(logging.LogRecord("x", logging.INFO, "x", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def add_secret(secret: str) -> None:
    """Redact `secret` from every line formatted from now on, by every handler we installed."""
    if secret and len(secret) >= MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by ***; longest first so overlaps vanish whole."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def printable(text: str) -> str:
    """`text` with every character that could break a line or a terminal written as Python escapes it
    (`\\n`, `\\x1b`, `\\u202e`, `\\udcff`): the one place that makes a file or folder name, whatever people
    called it, safe to show. Used by the text log and by `status`; JSON encoders escape on their own."""
    return _UNSAFE.sub(lambda match: repr(match.group())[1:-1], text)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, in the order they were given."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """`2026-11-22 10:00:00,123 INFO keboola_sync.sync: message key=value`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        # Render the traceback ourselves so a cached exc_text from another handler is not reused.
        saved = record.exc_text
        record.exc_text = None
        try:
            line = logging.Formatter.format(self, _without_exc(record))
            extras = extra_fields(record)
            if extras:
                line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in extras.items())
            line = printable(line)  # one line per record, whatever a file name holds
            if record.exc_info:
                line += "\n" + self.formatException(record.exc_info)
            if record.stack_info:
                line += "\n" + self.formatStack(record.stack_info)
        finally:
            record.exc_text = saved
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the extra fields, exc_info as text."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": printable(record.getMessage()),
        }
        for key, value in extra_fields(record).items():
            payload.setdefault(key, value)
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        # Redact the values before encoding (a secret may contain characters JSON escapes) and the
        # finished line after (a secret may hide inside a repr of an odd extra value).
        # json escapes C0 controls itself; what else `printable` escapes (C1 controls, line separators,
        # bidi overrides, the lone surrogates of a name that is not UTF-8) becomes a JSON \u escape, so the
        # line stays one line of valid UTF-8 and a field such as `file` still decodes to the real name.
        line = json.dumps(_redact_tree(payload, redact), default=str, ensure_ascii=False)
        return redact(_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", line))


class WatchedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Rotates at `max_bytes` like RotatingFileHandler and, like WatchedFileHandler, reopens the file
    when it was removed or replaced under it (its directory deleted, logrotate, a user's `rm`).

    Without the watch, a removed log file keeps receiving every later line in an unlinked inode nobody
    can read. Before each line we compare the path's device and inode with the open stream's (one
    stat(), the cost WatchedFileHandler pays) and, if they differ, create the directory again and reopen.
    """

    def __init__(self, filename: Path, max_bytes: int, backup_count: int) -> None:
        super().__init__(filename, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        self._identity: tuple[int, int] | None = None
        self._remember_identity()

    def _remember_identity(self) -> None:
        if self.stream is None:
            self._identity = None
            return
        st = os.fstat(self.stream.fileno())
        self._identity = (st.st_dev, st.st_ino)

    def reopen_if_needed(self) -> None:
        """Reopen the file if the path no longer names the file we write to."""
        try:
            st = os.stat(self.baseFilename)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        if current is not None and current == self._identity:
            return
        if self.stream is not None:
            self.stream.flush()
            self.stream.close()
            self.stream = None
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        self.stream = self._open()
        self._remember_identity()

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds the handler's lock here, so the check and the write are one step.
        try:
            self.reopen_if_needed()
        except OSError:
            self.handleError(record)
            return
        super().emit(record)

    def doRollover(self) -> None:
        super().doRollover()
        self._remember_identity()


def setup_logging(cfg: LoggingConfig, secrets: Iterable[str] = ()) -> None:
    """Install our handlers on the root logger, replacing any we installed before (idempotent).

    The root logger is used so warnings from libraries (kbcstorage, boto3) land in the same file.
    """
    for secret in secrets:
        add_secret(secret)
    formatter: logging.Formatter = JsonFormatter() if cfg.format == "json" else TextFormatter()
    handlers: list[logging.Handler] = []
    try:
        cfg.file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = WatchedRotatingFileHandler(cfg.file, cfg.max_bytes, cfg.backup_count)
    except OSError as exc:
        raise ConfigError(
            "logging.file",
            f"logging.file: cannot write the log file {cfg.file} ({exc.strerror or exc}). Point logging.file"
            " to a writable directory or fix its permissions.",
        ) from None
    handlers.append(file_handler)
    if cfg.console:
        handlers.append(logging.StreamHandler(sys.stderr))

    reset_logging()
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    _set_levels(cfg.level)


def reconfigure_logging(cfg: LoggingConfig) -> None:
    """A reloaded configuration: level, format, console and rotation change on the running handlers.
    The log file stays open (logging.file needs a restart), so no line is lost while this runs."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, _MARK, False)]
    formatter: logging.Formatter = JsonFormatter() if cfg.format == "json" else TextFormatter()
    consoles = [h for h in ours if not isinstance(h, WatchedRotatingFileHandler)]
    if cfg.console and not consoles:
        console = logging.StreamHandler(sys.stderr)
        setattr(console, _MARK, True)
        ours.append(console)
        root.addHandler(console)
    elif not cfg.console:
        for handler in consoles:
            root.removeHandler(handler)
            ours.remove(handler)
    for handler in ours:
        handler.setFormatter(formatter)
        if isinstance(handler, WatchedRotatingFileHandler):
            handler.maxBytes, handler.backupCount = cfg.max_bytes, cfg.backup_count
    _set_levels(cfg.level)


def _set_levels(level_name: str) -> None:
    level = logging.getLevelName(level_name.upper())
    logging.getLogger().setLevel(level)
    noisy_level = logging.NOTSET if level <= logging.DEBUG else logging.WARNING
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(noisy_level)
    for name in AWS_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def setup_console_logging(level: str = "WARNING") -> None:
    """For the short commands (check, status, health): warnings from the rooms they use reach the
    console through the same redacting formatter, never through Python's bare last-resort handler."""
    reset_logging()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.getLevelName(level.upper()))
    for name in (*NOISY_LOGGERS, *AWS_LOGGERS):
        logging.getLogger(name).setLevel(logging.WARNING)


def reset_logging() -> None:
    """Remove and close the handlers setup_logging installed (for tests and a clean shutdown)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()


def _without_exc(record: logging.LogRecord) -> logging.LogRecord:
    if not record.exc_info and not record.stack_info:
        return record
    clone = logging.makeLogRecord(record.__dict__)
    clone.exc_info = None
    clone.exc_text = None
    clone.stack_info = None
    return clone


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _redact_tree(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: _redact_tree(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(v, fn) for v in value]
    return value
