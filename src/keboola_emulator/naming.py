"""Keboola's name rules: bucket/table names (§3.3, §4.3) and CSV-header column sanitising (§4.4).

The column algorithm follows keboola/php-utils `sanitizeColumnName()` as described in
keboola-storage-api.md §4.4: transliterate to ASCII, runs of non-[A-Za-z0-9_] -> "_", trim "_",
append "_" to Postgres system column names, keep case; the result must be 1..64 chars.
"""

from __future__ import annotations

import re
import unicodedata

MAX_COLUMN_NAME = 64  # §4.4 "Column name cannot be longer than 64 characters."
SYSTEM_COLUMNS = frozenset({"oid", "tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})  # §4.4 step 4

# Letters NFKD cannot decompose that iconv's //TRANSLIT maps to ASCII (§4.4 step 1, toAscii).
_TRANSLIT = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "œ": "oe",
        "Œ": "OE",
        "þ": "th",
        "Þ": "TH",
        "ð": "d",
        "Ð": "D",
        "ı": "i",
        "€": "EUR",
    }
)
# toAscii first removes control characters (keeping tab, LF, CR) and U+007F-U+009F; quotes, `^`
# and `~` already in the input survive it (only ones produced by transliteration are dropped).
_DROPPED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NOT_WORD = re.compile(r"[^A-Za-z0-9_]+")
_BUCKET_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_DISPLAY_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def sanitize_column_name(raw: str) -> str:
    """§4.4: the stored name of a CSV header cell (may be empty — the caller validates)."""
    name = _NOT_WORD.sub("_", _to_ascii_keep_unknown(raw)).strip("_")
    if name.lower() in SYSTEM_COLUMNS:
        name += "_"
    return name


def _to_ascii_keep_unknown(text: str) -> str:
    """toAscii (UTILS): decompose, drop combining marks; no ASCII form -> `?` (iconv), a separator."""
    text = _DROPPED.sub("", text.translate(_TRANSLIT))
    out: list[str] = []
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch):
            continue
        out.append(ch if ch.isascii() else "?")
    return "".join(out)


def column_name_problem(raw: str, sanitized: str) -> str | None:
    """Why a header cell cannot become a column (§4.4 limits), or None when it can."""
    if not sanitized:
        return (
            f"Invalid columns: {raw!r}: Only alphanumeric characters and underscores are allowed "
            "in column name. Column name cannot be empty."
        )
    if len(sanitized) > MAX_COLUMN_NAME:
        return f"Invalid columns: {sanitized}: Column name cannot be longer than {MAX_COLUMN_NAME} characters."
    return None


def bucket_name_problem(name: str) -> str | None:
    """§3.3: alphanumerics, dash and underscore (dashes and upper case work on real stacks)."""
    if not name:
        return "Invalid data - name: This value should not be blank."
    if not _BUCKET_NAME.match(name):
        return (
            f"Invalid data - name: '{name}' contains not allowed characters. Only alphanumeric "
            "characters dash and underscores are allowed."
        )
    if len(name) > 96:  # §3.3: server max UNCONFIRMED; GO validates 1..96 client-side
        return f"Invalid data - name: '{name}' is longer than 96 characters."
    return None


def display_name_problem(display_name: str) -> str | None:
    """§3.3 displayName message, verbatim from PHPT BucketsTest."""
    if not _DISPLAY_NAME.match(display_name):
        return (
            f"Invalid data - displayName: '{display_name}' contains not allowed characters. Only "
            "alphanumeric characters dash and underscores are allowed."
        )
    return None


def table_name_problem(name: str) -> str | None:
    """§4.3: alphanumerics, dash, underscore; a dot is rejected with this exact message."""
    if not name or not _TABLE_NAME.match(name):
        return (
            f"Invalid table name: '{name}' contains not allowed characters. Only alphanumeric "
            "characters dash and underscores are allowed."
        )
    if len(name) > 96:  # §4.3 max UNCONFIRMED (GO client-side <= 96)
        return f"Invalid table name: '{name}' is longer than 96 characters."
    if name.startswith("_"):
        return f"Invalid table name: '{name}' contains not allowed characters. Cannot start with underscore."
    return None
