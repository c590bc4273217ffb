"""Keboola's name rules: bucket/table names (§3.3, §4.3) and CSV-header column sanitising (§4.4, §12).

Column names follow keboola/sanitizer's glibc branch as keboola-storage-api.md §12 describes it:
drop control characters and combining marks; `iconv UTF-8 -> WINDOWS-1250//TRANSLIT`; a fixed
table maps the accented Windows-1250 letters (and `§`, `×`, `ß`) to ASCII; every run of
`[^A-Za-z0-9_]` becomes `_`; trim `_`; Postgres system names get a `_`; case is kept. Every other
Windows-1250 character (`€`, `™`, `°`, NBSP, ...) stays non-ASCII and so becomes a separator:
`Straße` -> `Strase`, `price €` -> `price`, `§5` -> `S5`.

Characters outside Windows-1250 go through glibc's transliteration, which depends on the server's
locale (§12: UNCONFIRMED which one production runs). The emulator models glibc's C.UTF-8 (its
`translit_combining`): accents and strokes are stripped (`Ørsted` -> `Orsted`), compatibility forms
decompose (`ﬁ` -> `fi`), and anything else (Cyrillic, CJK, emoji) is iconv's `?`, a separator.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MAX_COLUMN_NAME = 64  # §4.4 "Column name cannot be longer than 64 characters."
# Columns per table: help.keboola.com's backend table gives 1200 for Snowflake; a 1200-column table
# works (§4.6, PHPT TableExporterTest) and a 5000-column create fails with
# storage.tables.validation.tooManyColumns (PHPT CreateTableTest). §11/§12: hard limit UNCONFIRMED.
MAX_TABLE_COLUMNS = 1200
# Data preview: 130 columns fail with 400 storage.maxNumberOfColumnsExceed, 110 pass (§12, PHPT
# Snowflake TableExportTest "Max120cols"); the exact boundary is UNCONFIRMED.
MAX_PREVIEW_COLUMNS = 120
SYSTEM_COLUMNS = frozenset({"oid", "tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})  # §4.4 step 4

# toAscii's first step keeps tab, LF, CR, printable ASCII, U+00A0-U+02FF and U+0370 upwards: it
# drops the other control characters, U+007F-U+009F and the combining marks U+0300-U+036F (§12).
_DROPPED = re.compile("[^\t\n\r\x20-\x7e\xa0-\u02ff\u0370-\U0010ffff]")
_NOT_WORD = re.compile(r"[^A-Za-z0-9_]+")
# The sanitizer's fixed table maps these Windows-1250 characters to ASCII besides the accented
# letters that decompose to an ASCII letter (§12: `§5` -> `S5`, `2×3` -> `2x3`, `Straße` -> `Strase`).
_CP1250_EXTRA = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ß": "s", "§": "S", "×": "x"}
# C.UTF-8 transliterations of letters outside Windows-1250 that Unicode does not decompose.
_OUTSIDE_EXTRA = {
    "Ø": "O", "ø": "o", "Ħ": "H", "ħ": "h", "ı": "i", "Ŧ": "T", "ŧ": "t", "Ŀ": "L", "ŀ": "l",
    "Ð": "D", "ð": "d", "Þ": "TH", "þ": "th", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe",
}  # fmt: skip
_UNKNOWN = "?"  # what iconv //TRANSLIT writes for a character it cannot convert
# The sanitizer runs in the server's locale (§12): C.UTF-8 transliterates letters outside Windows-1250,
# plain C has no transliteration table (`Ørsted` -> `rsted`). Set once at start-up (`--column-locale`).
COLUMN_LOCALES = ("C.UTF-8", "C")
_locale = {"name": "C.UTF-8"}


def set_column_locale(name: str) -> None:
    if name not in COLUMN_LOCALES:
        raise ValueError(f"column locale must be one of {', '.join(COLUMN_LOCALES)}")
    _locale["name"] = name


_BUCKET_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_DISPLAY_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def sanitize_column_name(raw: str) -> str:
    """§4.4/§12: the stored name of a CSV header cell (may be empty — the caller validates)."""
    name = _NOT_WORD.sub("_", "".join(_ascii_of(ch) for ch in _DROPPED.sub("", raw))).strip("_")
    if name.lower() in SYSTEM_COLUMNS:
        name += "_"
    return name


def _ascii_of(ch: str) -> str:
    """One character after iconv + the fixed table; "?" stands for anything non-ASCII left over
    (the next step turns it into a separator either way)."""
    if ch.isascii():
        return ch
    cp1250 = _cp1250_letters()
    if ch in cp1250:
        return cp1250[ch]
    try:
        ch.encode("cp1250")
    except UnicodeEncodeError:
        return _outside_cp1250(ch)
    return _UNKNOWN  # in Windows-1250 but not in the sanitizer's table: `€`, `™`, `°`, ...


@lru_cache(maxsize=1)
def _cp1250_letters() -> dict[str, str]:
    """The sanitizer's table: Windows-1250 letters whose decomposition starts with an ASCII letter."""
    table = dict(_CP1250_EXTRA)
    for byte in range(0x80, 0x100):
        try:
            ch = bytes([byte]).decode("cp1250")
        except UnicodeDecodeError:
            continue
        base = unicodedata.normalize("NFD", ch)[0]
        if ch.isalpha() and base != ch and base.isascii() and base.isalpha():
            table.setdefault(ch, base)
    return table


def _outside_cp1250(ch: str) -> str:
    """glibc //TRANSLIT (locale-dependent, §12 UNCONFIRMED): in C.UTF-8 strip marks and decompose; in
    C nothing outside Windows-1250 has a transliteration."""
    if _locale["name"] == "C":
        return _UNKNOWN
    if ch in _OUTSIDE_EXTRA:
        return _OUTSIDE_EXTRA[ch]
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if not base or not base.isascii():
        return _UNKNOWN
    return base.translate(_TRANSLIT_QUOTES)  # toAscii drops the quotes iconv itself produced


_TRANSLIT_QUOTES = str.maketrans("", "", "`'\"^~")


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


def table_width_problem(width: int, limit: int = MAX_TABLE_COLUMNS) -> str | None:
    """Why a table cannot have `width` columns, or None when it can."""
    if width > limit:
        return f"Too many columns. The table would have {width} columns; at most {limit} columns are allowed."
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
