"""The value checks of the configuration schema: each returns a description of the allowed values, or
None when the value is fine, so every error message says what would have been accepted.

Why apart from config.py: the schema reads as a table of keys; the rules behind its third column live here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The longest time any `*_seconds` key may ask for. Far above every sensible value, far below what
# threading and socket timeouts can hold (threading.TIMEOUT_MAX is about 292 years on Linux), so a
# huge value stops start-up naming its key instead of failing later inside an HTTP call.
MAX_SECONDS = 365 * 24 * 3600

Check = Callable[[Any], str | None]  # returns what is allowed when the value is not, else None


def non_negative(value: float) -> str | None:
    return None if value >= 0 else "a number >= 0"


def seconds(*, zero_ok: bool = False) -> Check:
    """A duration: finite (the float conversion refuses .inf/.nan), > 0 (or >= 0) and at most a year."""
    low = "a number >= 0" if zero_ok else "a number greater than 0"

    def check(value: float) -> str | None:
        if value < 0 or (value == 0 and not zero_ok):
            return low
        if value > MAX_SECONDS:
            return f"{low} and at most {MAX_SECONDS} (one year)"
        return None

    return check


def at_least(minimum: float, why: str = "") -> Check:
    def check(value: float) -> str | None:
        return None if value >= minimum else f"a number >= {minimum}{why}"

    return check


def between(low: int, high: int) -> Check:
    def check(value: int) -> str | None:
        return None if low <= value <= high else f"a whole number from {low} to {high}"

    return check


def gzip_level(value: int | str) -> str | None:
    """A fixed level (the message for a number out of range is the one it always was) or `auto`."""
    if isinstance(value, int):
        return between(0, 9)(value)
    return None if value == "auto" else "a whole number from 0 to 9, or auto"


def one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else "one of: " + ", ".join(choices)

    return check


def http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        return None
    return "an http:// or https:// URL, e.g. https://connection.keboola.com"


def log_level(value: str) -> str | None:
    return None if value.upper() in LOG_LEVELS else "one of: " + ", ".join(LOG_LEVELS)


def extensions(value: tuple[str, ...]) -> str | None:
    if not value:
        return 'at least one file ending, e.g. [".csv"]'
    for ext in value:
        if not ext.startswith(".") or len(ext) < 2 or "/" in ext:
            return 'file endings that start with ".", e.g. [".csv", ".tsv"]'
    return None


def patterns(value: tuple[str, ...]) -> str | None:
    return None if all(value) else "non-empty glob patterns, e.g. ['*.bak', 'archive']"


def delimiters(value: str) -> str | None:
    if not value:
        return 'one or more single-character delimiters, e.g. ",;\\t|"'
    if len(set(value)) != len(value):
        return "each delimiter once"
    bad = [c for c in value if c.isalnum() or c in "\"'\r\n\\"]
    if bad:
        return "delimiters that are not letters, digits, quotes, backslash or line breaks"
    return None


def requests_per_second(value: float) -> str | None:
    return None if 0 <= value <= 10_000 else "a number from 0 (no limit) to 10000"


def listen(value: str) -> str | None:
    """Empty (off) or HOST:PORT, as the monitoring endpoint parses it (monitor.parse_listen)."""
    if not value:
        return None
    from .monitor import parse_listen  # lazy: `health` and `status` never need http.server

    try:
        parse_listen(value)
    except ValueError as exc:
        return f'empty (off) or {exc}; "0.0.0.0:8484" in a container'
    return None


def notify_urls(value: tuple[str, ...]) -> str | None:
    if all("://" in url and url.split("://", 1)[0] for url in value):
        return None
    return "Apprise URLs such as slack://... or json://host/path, each with its scheme"
